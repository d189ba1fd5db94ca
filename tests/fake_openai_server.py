"""A stand-in for `llama-server` and `vllm serve`: parses their flags, speaks OpenAI-compatible HTTP + SSE.

Behaviour from the environment, so tests can stage what users hit:
  FAKE_SERVER_MODE   serve (default) | exit (fail at start-up) | hang (never become ready) | crash (fail at start-up
                     for a reason other than memory, once past the memory checks below)
  FAKE_SERVER_MAX_CTX  fail at start-up as the engine does when memory runs out, for a context above this:
                       llama.cpp's words for --ctx-size, vLLM's for --max-model-len
  FAKE_SERVER_OOM_KILL  fail that way by SIGKILL instead, as the kernel's out-of-memory killer does
  FAKE_SERVER_MIN_CPU_MOE  fail as llama.cpp on CUDA does when the GPU's memory runs out, for --n-cpu-moe below this
  FAKE_SERVER_MAX_UTILIZATION  fail as vLLM does when another process holds GPU memory, above this
                               --gpu-memory-utilization
  FAKE_SERVER_MODEL  the model id to list instead of the one asked for (a foreign server)
  FAKE_SERVER_MODELS_FILE  list the model ids this file holds, one a line, read at each request
  FAKE_SERVER_NO_HEALTH     answer /health with 404 (servers without one: LM Studio, Foundry Local)
  FAKE_SERVER_RECORD a file to write {"argv": [...], "env": {...}} into, for assertions
  VLLM_API_KEY       when set, requests without `Authorization: Bearer <key>` get 401 (as vLLM does);
                     --api-key-file FILE does the same with the file's first line (as llama-server does)
  FAKE_SERVER_TIMINGS_TPS   report llama-server `timings` with this decode speed
  FAKE_SERVER_STOP_AFTER    stop after this many tokens, whatever max_tokens says
  FAKE_SERVER_THINK_S       pause this long between the reasoning and the answer
  FAKE_ANSWER               answer this after reasoning as long as the effort asks, and stop (fake_reply.py)
  FAKE_SERVER_NO_USAGE      leave usage out of the stream
  FAKE_SERVER_ECHO          a line to print at start-up (as servers print their configuration)
  FAKE_SERVER_ECHO_KEY      print the API key it was given (as a server logging its settings might)
  FAKE_SERVER_IGNORE_TERM   ignore SIGTERM (a server stuck in shutdown)
  FAKE_SERVER_SLOW_REQUEST  the Nth chat request (1 = the first) streams 4x slower (a machine busy for a moment)
  FAKE_SERVER_STALL_REQUEST the Nth chat request stops sending halfway and never finishes
  FAKE_SERVER_TOKEN_INTERVAL_S  seconds between tokens (default 0.002: a fast machine)
"""
from __future__ import annotations

import itertools
import json
import os
import signal
import sys
import time
from http.server import ThreadingHTTPServer

from fake_http import JsonHandler
from fake_reply import first_answer, reply

TOKEN_INTERVAL_S = 0.002


def flag(argv: list[str], name: str, default: str | None = None) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else default


class Handler(JsonHandler):
    model = "unknown"
    api_key = None
    chats = itertools.count(1)

    def _authorized(self) -> bool:
        if self.api_key and self.headers.get("Authorization") != f"Bearer {self.api_key}":
            self.send_json(401, {"error": "invalid api key"})
            return False
        return True

    def do_GET(self) -> None:
        if self.path == "/health" and not os.environ.get("FAKE_SERVER_NO_HEALTH"):
            self.send_json(200, {"status": "ok"})
        elif self.path == "/health":
            self.send_json(404, {"error": "not found"})
        elif self.path == "/v1/models" and self._authorized():
            self.send_json(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in self.models()]})

    def models(self) -> list[str]:
        listed = os.environ.get("FAKE_SERVER_MODELS_FILE")
        if listed:     # a server whose models come and go (LM Studio's: what `lms load` loaded)
            return [line for line in open(listed).read().splitlines() if line] if os.path.exists(listed) else []
        return [self.model]

    def do_POST(self) -> None:
        if not self._authorized():
            return
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        effort = request.get("reasoning_effort") or (request.get("chat_template_kwargs") or {}).get("reasoning_effort")
        chunks, cut = reply(min(request["max_tokens"], int(os.environ.get("FAKE_SERVER_STOP_AFTER", 1 << 30))), effort)
        number = next(self.chats)
        slow = number == int(os.environ.get("FAKE_SERVER_SLOW_REQUEST", 0))
        stall = number == int(os.environ.get("FAKE_SERVER_STALL_REQUEST", 0))
        interval = float(os.environ.get("FAKE_SERVER_TOKEN_INTERVAL_S", TOKEN_INTERVAL_S)) * (4 if slow else 1)
        for i, (channel, text) in enumerate(chunks):       # gpt-oss reasons first, as reasoning_content
            if i == first_answer(chunks):
                time.sleep(3600 if stall else float(os.environ.get("FAKE_SERVER_THINK_S", 0)))
            delta = {"reasoning_content": text} if channel == "reasoning" else {"content": text}
            self._event({"choices": [{"index": 0, "delta": delta}]})
            time.sleep(interval)
        n = len(chunks)
        final = {"choices": [{"index": 0, "delta": {}, "finish_reason": "length" if cut else "stop"}]}
        if not os.environ.get("FAKE_SERVER_NO_USAGE"):
            final["usage"] = {"prompt_tokens": 20, "completion_tokens": n, "total_tokens": n + 20}
        if os.environ.get("FAKE_SERVER_TIMINGS_TPS"):
            final["timings"] = {"predicted_n": n, "predicted_per_second": float(os.environ["FAKE_SERVER_TIMINGS_TPS"])}
        self._event(final)
        self.wfile.write(b"data: [DONE]\n\n")

    def _event(self, body: dict) -> None:
        self.wfile.write(f"data: {json.dumps(body)}\n\n".encode())
        self.wfile.flush()


def run_out_of_memory(context: int, vllm: bool) -> None:
    """Fail at start-up as the engine does when the KV cache for CONTEXT tokens does not fit."""
    print("loading model", flush=True)
    if os.environ.get("FAKE_SERVER_OOM_KILL"):
        os.kill(os.getpid(), signal.SIGKILL)
    if vllm:
        print("ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when "
              "initializing the engine.", flush=True)
    else:
        print(f"ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer of size {context * 49152}",
              flush=True)
        print("llama_init_from_model: failed to initialize the context: failed to allocate buffer for kv cache",
              flush=True)
    sys.exit(1)


def report_vllm_memory(context: int) -> None:
    """What vLLM 0.33's worker logs once it has profiled the GPU, in its words: by default the single-H100 120b
    figures vLLM printed there (vllm#33155: 64.38 GiB loaded; vllm#27508: 1.71 GiB of KV cache)."""
    prefix = "(EngineCore_DP0 pid=4242) INFO 12-05 10:00:00"
    print(f"{prefix} [gpu_model_runner.py:5089] Model loading took "
          f"{os.environ.get('FAKE_VLLM_LOADED_GIB', '64.38')} GiB memory and 41.250000 seconds", flush=True)
    print(f"{prefix} [gpu_worker.py:773] Available KV cache memory: {os.environ.get('FAKE_VLLM_KV_GIB', '1.71')} GiB",
          flush=True)
    if os.environ.get("FAKE_VLLM_CONCURRENCY"):
        print(f"{prefix} [kv_cache_utils.py:1149] GPU KV cache size: 24,896 tokens, Maximum concurrency for "
              f"{context:,} tokens per request: {os.environ['FAKE_VLLM_CONCURRENCY']}x", flush=True)


def config_key(path: str) -> str | None:
    """SGLang's --config YAML, as gptoss writes it: `api-key: "KEY"` (a JSON string is a YAML scalar)."""
    for line in open(path):
        if line.startswith("api-key:"):
            return json.loads(line.split(":", 1)[1])
    return None


class Listener(ThreadingHTTPServer):
    request_queue_size = 512        # llama-server's listen backlog: a burst waits its turn, as it does there


def main(argv: list[str]) -> None:
    if argv == ["--version"]:          # as llama-server prints it, on stderr
        print(f"version: {os.environ.get('FAKE_LLAMA_BUILD', '9300')} (0123abc)", file=sys.stderr)
        return
    if os.environ.get("FAKE_SERVER_RECORD"):
        with open(os.environ["FAKE_SERVER_RECORD"], "w") as out:
            json.dump({"argv": argv, "env": dict(os.environ)}, out)
    mode = os.environ.get("FAKE_SERVER_MODE", "serve")
    if os.environ.get("FAKE_SERVER_IGNORE_TERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print(f"fake server starting: {' '.join(argv)}", flush=True)
    print(os.environ.get("FAKE_SERVER_ECHO", ""), flush=True)
    if mode == "exit":
        print("error: failed to load model: out of memory", flush=True)
        sys.exit(1)
    context = int(flag(argv, "--ctx-size", None) or flag(argv, "--max-model-len", "0"))
    fits = int(os.environ.get("FAKE_SERVER_MAX_CTX", "0"))
    if fits and context > fits:
        run_out_of_memory(context, vllm="--max-model-len" in argv)
    if int(flag(argv, "--n-cpu-moe", "0")) < int(os.environ.get("FAKE_SERVER_MIN_CPU_MOE", "0")):
        print("ggml_backend_cuda_buffer_type_alloc_buffer: allocating 9216.00 MiB on device 0: cudaMalloc failed: "
              "out of memory", flush=True)
        print("llama_model_load: error loading model: unable to allocate CUDA0 buffer", flush=True)
        sys.exit(1)
    utilization = float(flag(argv, "--gpu-memory-utilization", "0"))
    if utilization > float(os.environ.get("FAKE_SERVER_MAX_UTILIZATION", "1")):
        print(f"ValueError: Free memory on device cuda:0 (68.20/79.19 GiB) on startup is less than desired GPU memory "
              f"utilization ({utilization}, {utilization * 79.19:.2f} GiB). Decrease GPU memory utilization or "
              "reduce GPU memory used by other processes.", flush=True)
        sys.exit(1)
    if mode == "crash":
        print("error: invalid argument: --chat-template-kwargs", flush=True)
        sys.exit(1)
    if mode == "hang":
        time.sleep(3600)
    if "--max-model-len" in argv:
        report_vllm_memory(context)
    Handler.model = os.environ.get("FAKE_SERVER_MODEL") or flag(argv, "--served-model-name") or flag(argv, "--alias")
    key_file, config = flag(argv, "--api-key-file"), flag(argv, "--config")
    Handler.api_key = (open(key_file).readline().strip() if key_file else
                       config_key(config) if config else os.environ.get("VLLM_API_KEY"))
    if os.environ.get("FAKE_SERVER_ECHO_KEY"):
        print(f"api key {Handler.api_key}", flush=True)
    server = Listener((flag(argv, "--host", "127.0.0.1"), int(flag(argv, "--port", "0"))), Handler)
    server.serve_forever()



if __name__ == "__main__":
    main(sys.argv[1:])
