"""llama.cpp's data parallelism end to end: a machine with two GPUs that each hold the model gets one real
llama.cpp server (xllamacpp) per GPU behind one address, benchmarked through it and taken down as one."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

from gptoss_deploy.backends.llamacpp_replicas import Copies
from gptoss_deploy.backends.process_groups import python_module
from gptoss_deploy.runtime.process import port_in_use
from helpers import fixture_path, free_port
from test_llamacpp_live import engines


def copies_of(state) -> list[psutil.Process]:
    """The llama.cpp servers of this state dir, without the router whose command line names them."""
    return [p for p in engines(state) if "llamacpp_replicas" not in " ".join(p.cmdline())]


CLIENTS = 256          # issue 25: a burst the router holds with no resets


def two_gpu_machine(tmp_path):
    """2x RTX 3090 (recorded), each holding a small GGUF whole: the plan copies it. Here both copies run on the CPU
    (the engine ignores a GPU it does not have), which is all the copying and routing need."""
    path = tmp_path / "2x-rtx3090.json"
    path.write_text(fixture_path("2x-rtx3090").read_text())
    return path


def test_two_copies_serve_one_address_side_by_side_and_go_down_together(run_cli, state, smollm2, tmp_path):
    port = free_port()
    code, out, err = run_cli("up", "--hardware", two_gpu_machine(tmp_path), "--force", "--model", "20b",
                             "--gguf", smollm2, "--port", port, "--no-bench", "--json")
    assert code == 0, err
    assert "gptoss: starting llama.cpp (llama-server)" in err          # what starts, not "python3"
    record = json.loads(out)
    assert record["plan"]["offload"]["data_parallel_size"] == 2
    assert record["argv"][3:9] == ["gptoss_deploy.backends.llamacpp_replicas", "--visible-env",
                                   "CUDA_VISIBLE_DEVICES", "--devices", "0,1", "--"]
    copies = copies_of(state)
    assert len(copies) == 2
    assert sorted(c.environ()["CUDA_VISIBLE_DEVICES"] for c in copies) == ["0", "1"]
    base = record["endpoint"]["base_url"]
    models = httpx.get(f"{base}/models", timeout=10).json()
    assert [m["id"] for m in models["data"]] == [record["endpoint"]["model"]]

    def ask(n: int) -> str:                        # streamed, as a client would: the router passes the events on
        body = {"model": record["endpoint"]["model"], "stream": True, "max_tokens": 8,
                "messages": [{"role": "user", "content": f"Say {n}."}]}
        with httpx.stream("POST", f"{base}/chat/completions", json=body, timeout=120) as answer:
            assert answer.status_code == 200
            return "".join(line for line in answer.iter_lines() if line.startswith("data:"))

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(ask, range(4)))
    assert all("[DONE]" in a for a in answers)
    assert run_cli("down", "--all")[0] == 0
    assert not any(psutil.pid_exists(c.pid) and c.status() != psutil.STATUS_ZOMBIE for c in copies)
    assert not port_in_use("127.0.0.1", port)


def test_each_request_goes_to_the_copy_with_the_fewest_in_flight():
    copies = Copies([1001, 1002, 1003])
    first, second, third = copies.take(), copies.take(), copies.take()
    assert sorted((first, second, third)) == [0, 1, 2]
    copies.give_back(second)
    assert copies.take() == second


def test_a_copy_that_dies_takes_the_deployment_down_and_status_says_so(run_cli, state, smollm2, tmp_path):
    port = free_port()
    code, out, err = run_cli("up", "--hardware", two_gpu_machine(tmp_path), "--force", "--model", "20b",
                             "--gguf", smollm2, "--port", port, "--no-bench", "--json")
    assert code == 0, err
    record = json.loads(out)
    copies_of(state)[0].kill()
    psutil.Process(record["pid"]).wait(timeout=30)            # the router stops the other copy and exits
    code, out, err = run_cli("status", "--json")
    assert code == 0 and json.loads(out) == []
    assert f"deployment {record['name']} ended: its server exited" in err
    assert not port_in_use("127.0.0.1", port)
    # in the words the fallback ladder reads as the out-of-memory killer's, had it happened while loading
    assert "a llama-server copy exited with status -9: stopping the others" in Path(record["log"]).read_text()


def ready(url: str) -> bool:
    try:
        return httpx.get(url).status_code == 200
    except httpx.TransportError:          # not listening yet, or a copy still loading
        return False


def test_a_burst_of_256_clients_at_the_copies_address_is_answered_whole(tmp_path):
    """The router in front of the copies takes a burst as llama-server itself does (its listen backlog of 512),
    rather than dropping the connections beyond Python's default queue of 5. tests/bench_router_burst.py measures
    the same burst with real engines."""
    port = free_port()
    fake = Path(__file__).parent / "fake_openai_server.py"
    router = subprocess.Popen([*python_module("gptoss_deploy.backends.llamacpp_replicas"), "--visible-env",
                               "CUDA_VISIBLE_DEVICES", "--devices", "0,1", "--", sys.executable, str(fake), "--alias",
                               "gpt-oss-20b", "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not ready(f"http://127.0.0.1:{port}/health"):
            assert time.monotonic() < deadline and router.poll() is None
            time.sleep(0.1)
        together = threading.Barrier(CLIENTS)
        body = json.dumps({"model": "gpt-oss-20b", "stream": True, "max_tokens": 4,
                           "messages": [{"role": "user", "content": "Say hi."}]}).encode()
        request = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body

        def ask(_) -> tuple[float, bytes]:
            """Seconds to connect (a connection the listen queue dropped waits a second for its SYN to be sent
            again), and the head of the answer where it did not come whole (empty where it did)."""
            together.wait()
            started = time.monotonic()
            with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
                connected = time.monotonic() - started
                client.sendall(request)
                answer = b"".join(iter(lambda: client.recv(65536), b""))
            whole = answer.startswith(b"HTTP/1.0 200") and b"[DONE]" in answer
            return connected, b"" if whole else answer[:200]
        with ThreadPoolExecutor(CLIENTS) as pool:
            results = list(pool.map(ask, range(CLIENTS)))
        assert [broken for _, broken in results if broken] == []
        assert max(connected for connected, _ in results) < 0.9
    finally:
        os.killpg(router.pid, signal.SIGTERM)
        router.wait(timeout=30)
