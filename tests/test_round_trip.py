"""The round trip a pipeline runs: `gptoss export`, apply the file with its own tools, gate with `gptoss bench --url`.

The node here is this machine: the exported compose service's command runs as its container would run it (the
embedded llama.cpp engine stands in for the image's /app/llama-server, the test model's file for the download into
the cache volume) with the environment compose would give it, and the pipeline's gate is `gptoss bench`.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import httpx
import pytest
import yaml

from gptoss_deploy.verify.measure import UNTRUSTED
from helpers import free_port

pytestmark = pytest.mark.usefixtures("roomy_bench_budget")

KEY = "round-trip-key"


@pytest.fixture
def exported_service(run_cli, smollm2, tmp_path) -> dict:
    code, out, err = run_cli("up", "--gguf", smollm2, "--dry-run", "--json")
    assert code == 0, err
    saved = tmp_path / "plan.json"
    saved.write_text(json.dumps(json.loads(out)["plan"]))
    code, out, err = run_cli("export", "--format", "compose", "--plan", saved)
    assert code == 0, err
    [service] = yaml.safe_load(out)["services"].values()
    return service


def compose_environment(service: dict) -> dict:
    """The service's environment as `docker compose up` fills it in, with GPTOSS_API_KEY set to KEY."""
    return {name: re.sub(r"\$\{GPTOSS_API_KEY:\?[^}]*\}", KEY, value) for name, value in service["environment"].items()}


@pytest.fixture
def applied(exported_service, smollm2):
    """The exported server, running: its command as written, but for where the model comes from and the host port."""
    assert exported_service["entrypoint"] == ["/app/llama-server"]
    args = list(exported_service["command"])
    model = args.index("-hf")
    args[model:model + 2] = ["-m", str(smollm2)]                       # the file the volume would hold
    port = free_port()
    args[args.index("--host") + 1], args[args.index("--port") + 1] = "127.0.0.1", str(port)   # compose's 127.0.0.1:P
    server = subprocess.Popen([sys.executable, "-P", "-m", "gptoss_deploy.backends.llamacpp_embedded", *args],
                              env={**os.environ, **compose_environment(exported_service)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not _healthy(url):
            assert server.poll() is None and time.monotonic() < deadline, "the exported command did not serve"
            time.sleep(0.5)
        yield f"{url}/v1"
    finally:
        server.terminate()
        server.wait(timeout=30)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def gate(run_cli, url: str, min_aggregate_tps: float) -> tuple[int, dict, str]:
    """The pipeline's gate, `gptoss bench --url URL --min-aggregate-tps N`, run again (as a pipeline would) while a
    busy machine leaves the run unable to measure (exit 5 with an invalid or unstable verdict): exit code, the
    benchmark, stderr."""
    for _ in range(3):
        code, out, err = run_cli("bench", "--url", url, "--min-aggregate-tps", min_aggregate_tps, "--json")
        document = json.loads(out)
        benchmark = document.get("result", document)["benchmark"]
        if benchmark["verdict"] not in UNTRUSTED:
            break
    return code, benchmark, err


@pytest.mark.long
def test_the_exported_service_serves_and_the_pipelines_gate_passes_or_fails_it(run_cli, applied, monkeypatch):
    monkeypatch.setenv("GPTOSS_API_KEY", KEY)
    code, benchmark, err = gate(run_cli, applied, 1)
    # passed; or, on a machine too busy to measure three times over, failed as documented: a gate needs a steady run
    assert (code, benchmark["verdict"]) == (0, "pass") or (code == 5 and benchmark["verdict"] == "unstable"
                                                           and "run again when the machine is quieter" in err), err
    aggregate = benchmark["aggregate_tokens_per_s"]
    assert aggregate > 1
    code, benchmark, err = gate(run_cli, applied, round(aggregate * 100))
    assert code == 5 and benchmark["verdict"] == "fail" and "aggregate" in err   # the gate fails a server below the bar


def test_the_exported_service_refuses_a_client_without_its_key(applied):
    assert httpx.get(f"{applied}/models").status_code in (200, 401)  # llama-server lists models to anyone
    answer = httpx.post(f"{applied}/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 401
    answer = httpx.post(f"{applied}/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
                        timeout=60)                                  # a busy machine's first reply takes a while
    assert answer.status_code == 200
