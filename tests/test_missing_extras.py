"""An installation without a backend's extra (its SDK): every command that needs it exits 4 with the install line,
never 1. The SDK is made absent the way Python sees a missing package (None in sys.modules: import fails)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gptoss_deploy.runtime.records import Deployment
from helpers import fixture_path, free_port

CPU_ONLY = fixture_path("cpu-only")


def gptoss_without(module: str, *args: str) -> subprocess.CompletedProcess:
    program = f"import sys; sys.modules[{module!r}] = None; from gptoss_deploy.cli.app import main; main()"
    return subprocess.run([sys.executable, "-c", program, *args], capture_output=True, text=True, timeout=60)


def assert_install_line(result: subprocess.CompletedProcess, extra: str) -> None:
    assert result.returncode == 4, result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith(f"needs its SDK: pip install 'gptoss-deploy[{extra}]'")


@pytest.mark.parametrize("backend, module, extra", [("ollama", "ollama", "ollama"), ("azure", "azure", "azure"),
                                                    ("bedrock", "boto3", "aws")])
def test_up_without_the_backends_extra_exits_4_with_the_install_line(state, backend, module, extra):
    local = ("--port", str(free_port())) if backend == "ollama" else ()     # a cloud backend has no port of ours
    result = gptoss_without(module, "up", "--hardware", str(CPU_ONLY), "--force", "--backend", backend, *local,
                            "--no-bench")
    assert_install_line(result, extra)
    assert state.records() == {}


def test_foundry_without_its_sdk_exits_4_with_the_install_line(state):
    desktop = Path(__file__).parent.parent / "planner" / "examples" / "rtx4090-desktop.json"
    result = gptoss_without("foundry_local_sdk", "up", "--hardware", str(desktop), "--force", "--backend", "foundry",
                            "--port", str(free_port()), "--no-bench")
    assert_install_line(result, "foundry")
    assert state.records() == {}


@pytest.mark.parametrize("backend, module, extra", [("ollama", "ollama", "ollama"), ("azure", "azure", "azure")])
def test_dry_run_without_the_extra_names_it_and_exits_0(backend, module, extra):
    result = gptoss_without(module, "up", "--hardware", str(CPU_ONLY), "--force", "--backend", backend, "--dry-run", "--json")
    assert result.returncode == 0, result.stderr


def recorded(store, run_cli, backend: str, **fields) -> Deployment:
    plan = json.loads(run_cli("plan", "--hardware", CPU_ONLY, "--backend", backend, "--json")[1])
    record = Deployment.model_validate({"name": backend, "backend": backend, "plan": plan, **fields})
    with store.locked():
        store.put(record)
    return record


def test_bench_of_an_ollama_deployment_without_its_client_exits_4(state, run_cli):
    port = free_port()
    recorded(state, run_cli, "ollama", state="running", pid=None, host="127.0.0.1", port=port,
             endpoint={"base_url": f"http://127.0.0.1:{port}/v1", "model": "gpt-oss:20b-ctx32768"})
    assert_install_line(gptoss_without("ollama", "bench", "ollama"), "ollama")


def test_down_of_an_azure_deployment_without_its_sdk_exits_4_and_keeps_the_record(state, run_cli):
    recorded(state, run_cli, "azure", state="ready", cloud_resources=[("serverless_endpoint", "gptoss-x")],
             endpoint={"name": "gptoss-x", "kind": "serverless_endpoint"})
    assert_install_line(gptoss_without("azure", "down", "azure", "--yes"), "azure")
    assert list(state.records()) == ["azure"]
    with state.locked():                                 # nothing was created: nothing for teardown to delete
        state.forget("azure")
