"""The llama.cpp path end to end: the real llama.cpp server (xllamacpp) serving a real tiny GGUF (SmolLM2)."""
from __future__ import annotations

import json
import os
import resource
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest
from gguf import GGUFReader

from gptoss_deploy.runtime.process import port_in_use
from gptoss_deploy.verify.bench import TIMINGS_TOLERANCE
from helpers import bench_exit_code, free_port, measured

pytestmark = pytest.mark.usefixtures("roomy_bench_budget")


def engines(state) -> list[psutil.Process]:
    """The llama.cpp servers started for this test's state dir: the embedded engine or a real llama-server
    (GPTOSS_LLAMA_SERVER), told from the log filter that leads their group."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            cmdline = " ".join(process.info["cmdline"] or [])
            if ("llamacpp_embedded" in cmdline or "llama-server" in cmdline) and "log_filter" not in cmdline and \
                    process.environ().get("GPTOSS_STATE_DIR") == str(state.root):
                found.append(process)
        except psutil.Error:
            pass
    return found


def up(run_cli, gguf, port, *extra):
    code, out, err = run_cli("up", "--gguf", gguf, "--port", port, "--json", *extra)
    assert code == 0, err
    return json.loads(out)


@pytest.mark.long
def test_up_ready_bench_idempotent_down(run_cli, state, smollm2):
    port = free_port()
    first = up(run_cli, smollm2, port)
    bench = first["benchmark"]
    assert first["endpoint"]["base_url"] == f"http://127.0.0.1:{port}/v1"
    assert measured(bench) and bench["ttft_ms"] > 0
    # The client's decode figure agrees with llama-server's own timings, or the verdict says they did not (a busy
    # machine can starve the client between tokens).
    agree = bench["decode_tokens_per_s"] == pytest.approx(bench["server_decode_tokens_per_s"], rel=TIMINGS_TOLERANCE)
    assert agree or (bench["verdict"] == "invalid" and "the server's own" in bench["reasons"][0])

    # The engine's own report of its memory, recorded beside the plan's (which is for gpt-oss, not this file)
    reported = {(f["where"], f["part"]): f["reported_bytes"] for f in first["memory"]["figures"]}
    assert reported[("host", "weights")] == pytest.approx(tensor_bytes(smollm2), rel=0.01)
    context = int(first["argv"][first["argv"].index("--ctx-size") + 1])
    assert reported[("host", "kv_cache")] == kv_cache_bytes(smollm2, context)
    assert first["plan_applies"] is False and first["memory"]["warnings"] == []

    # The plan is gpt-oss's: the file's own prediction is the yardstick, and a benchmark that measured is kept for
    # this machine's next plans, whose prediction for the file is then what was measured
    assert first["yardstick"]["decode_tokens_per_s"] == bench["predicted_decode_tokens_per_s"]
    measurement = first.get("measurement")
    assert (measurement is not None) == (bench["verdict"] in ("pass", "fail"))
    if measurement:
        assert (measurement["model"], measurement["decode_tokens_per_s"]) == (first["model"],
                                                                              bench["decode_tokens_per_s"])
        code, out, _ = run_cli("up", "--gguf", smollm2, "--dry-run", "--json")
        learned = json.loads(out)["yardstick"]
        assert learned["decode_tokens_per_s"] == pytest.approx(bench["decode_tokens_per_s"], abs=0.2)
        assert learned["calibration"]["decode_ratio"] == pytest.approx(bench["measured_vs_predicted"], abs=0.002)

    again = up(run_cli, smollm2, port)
    assert again["pid"] == first["pid"]                  # found, not started twice
    assert len(engines(state)) == 1

    code, out, _ = run_cli("status", "--json")
    assert code == 0 and [d["name"] for d in json.loads(out)] == [first["name"]]

    code, _, _ = run_cli("down", first["name"])
    assert code == 0 and engines(state) == [] and not port_in_use("127.0.0.1", port)
    assert json.loads(run_cli("status", "--json")[1]) == []


def tensor_bytes(model: Path) -> int:
    return sum(int(t.n_bytes) for t in GGUFReader(model).tensors)


def kv_cache_bytes(model: Path, context: int) -> int:
    """An F16 K and V per layer, per KV head, per token: what llama.cpp allocates for CONTEXT cells."""
    fields = GGUFReader(model).fields

    def value(key: str) -> int:
        return int(fields[key].parts[fields[key].data[0]][0])
    head_dim = value("llama.embedding_length") // value("llama.attention.head_count")
    return 2 * value("llama.block_count") * value("llama.attention.head_count_kv") * head_dim * 2 * context


@pytest.mark.long
def test_bench_gate_missed_exits_5_and_keeps_the_measurement(run_cli, state, smollm2):
    record = up(run_cli, smollm2, free_port(), "--no-bench")
    assert record["benchmark"] is None
    code, out, err = run_cli("bench", record["name"], "--min-decode-tps", "1000000", "--json")
    assert code == 5 and "below --min-decode-tps" in err
    assert json.loads(out)["result"]["benchmark"]["verdict"] == "fail"
    assert state.records()[record["name"]].benchmark.verdict == "fail"   # recorded on the deployment


@pytest.mark.long
def test_bench_url_measures_any_openai_server(run_cli, state, smollm2):
    record = up(run_cli, smollm2, free_port(), "--no-bench")
    code, out, _ = run_cli("bench", "--url", record["endpoint"]["base_url"], "--json")
    document = json.loads(out)
    bench = document.get("result", document)["benchmark"]
    assert measured(bench) and code == bench_exit_code(bench) and bench["predicted_decode_tokens_per_s"] is None


@pytest.mark.long
def test_non_loopback_bind_requires_and_generates_an_api_key(run_cli, state, smollm2):
    port = free_port("0.0.0.0")
    record = up(run_cli, smollm2, port, "--host", "0.0.0.0")
    key_file = record["endpoint"]["api_key_file"]
    key = open(key_file).read().strip()
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600 and len(key) >= 32
    assert measured(record["benchmark"])                  # the benchmark authenticates with the key
    url = f"http://127.0.0.1:{port}/v1/models"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    # The key is in no argv, no state file, no log.
    process_args = " ".join(psutil.Process(record["pid"]).cmdline())
    assert key not in process_args and "--api-key-file" in process_args
    assert key not in state.path.read_text() and key not in open(record["log"]).read()


def test_port_held_by_our_own_deployment_is_named(run_cli, state, smollm2):
    port = free_port()
    first = up(run_cli, smollm2, port, "--no-bench")
    code, _, err = run_cli("up", "--gguf", smollm2, "--port", port, "--name", "second", "--no-bench")
    assert code == 4 and f"deployment {first['name']}" in err and "second" not in state.records()


@pytest.mark.long
def test_an_ipv6_loopback_bind_serves_and_is_benchmarked(run_cli, state, smollm2):
    port = free_port("::1")
    record = up(run_cli, smollm2, port, "--host", "::1")
    assert record["endpoint"]["base_url"] == f"http://[::1]:{port}/v1"
    assert record["endpoint"]["api_key_file"] is None                  # loopback: no key needed
    assert measured(record["benchmark"])
    assert run_cli("down", record["name"])[0] == 0 and not port_in_use("::1", port)


MB = 2 ** 20


def with_trained_context(model: Path, copy: Path, context: int) -> Path:
    """A copy of MODEL whose header says it was trained for CONTEXT tokens (gguf-py edits the field in place): the
    real engine is then asked a context above SmolLM2's own 8192, the ladder's bottom rung."""
    shutil.copyfile(model, copy)
    reader = GGUFReader(copy, "r+")
    field = reader.fields["llama.context_length"]
    field.parts[field.data[0]][0] = context
    reader.data.flush()
    return copy


def vm_peak(pid: int) -> int:
    """The most address space PID has held (Linux /proc: what RLIMIT_AS limits)."""
    line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmPeak:"))
    return int(line.split()[1]) * 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and limits RLIMIT_AS: Linux only")
@pytest.mark.long
def test_a_context_beyond_a_memory_limit_steps_down_on_the_real_engine(run_cli, state, smollm2, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")     # fewer malloc arenas: the engine's address space varies less
    model = with_trained_context(smollm2, tmp_path / "smollm2-32k.gguf", 32768)
    # What the engine's address space peaks at serving 16,384 tokens, with no limit.
    calibration = up(run_cli, model, free_port(), "--context", "16k", "--no-bench")
    [engine] = engines(state)
    peak = vm_peak(engine.pid)
    assert run_cli("down", calibration["name"])[0] == 0
    # 32,768 tokens need about 377 MB more KV cache than 16,384 (SmolLM2: 30 layers x 192 K and V values, f16).
    limit = peak + 200 * MB
    launched = subprocess.run(
        [sys.executable, "-c", "from gptoss_deploy.cli.app import main; main()", "up", "--gguf", str(model),
         "--context", "32k", "--port", str(free_port()), "--no-bench", "--json"],
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)),
        capture_output=True, text=True, timeout=180)
    assert launched.returncode == 0, launched.stderr
    record = json.loads(launched.stdout)
    assert record["state"] == "running" and record["plan"]["context_length"] == 16384
    [attempt] = record["attempts"]
    assert (attempt["model"], attempt["context_length"], attempt["next_step"]) == ("smollm2-32k", 32768,
                                                                                   "context 16,384")
    assert "insufficient memory (attempted to allocate 720.00 MB)" in attempt["log_line"]
    assert attempt["argv"][attempt["argv"].index("--model") + 1] == str(model)       # what ran, not the plan's -hf     # the KV cache at 32,768
    assert "out of memory at context 32,768" in launched.stderr


def test_the_embedded_engine_reads_llama_servers_thread_count_variable(monkeypatch):
    from gptoss_deploy.backends.llamacpp_embedded import _parser, params_from_args

    monkeypatch.setenv("LLAMA_ARG_THREADS", "3")
    params = params_from_args(_parser().parse_args(["--model", "m.gguf"]))
    assert params.cpuparams.n_threads == params.cpuparams_batch.n_threads == 3
    monkeypatch.setenv("LLAMA_ARG_THREADS", "all")
    with pytest.raises(SystemExit, match="LLAMA_ARG_THREADS='all': a number of threads"):
        _parser()
