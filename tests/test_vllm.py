"""vLLM: the planned `vllm serve` run and supervised, with a stand-in executable (no GPU here)."""
from __future__ import annotations

import json

import psutil
import pytest

from gptoss_deploy.backends.base import UpOptions
from gptoss_deploy.backends.vllm import VLLM
from gptoss_deploy.planner.documents import PlanDocument
from gptoss_deploy.planner.hardware import load_hardware
from gptoss_deploy.runtime.process import port_in_use
from helpers import fixture_path, free_port, measured

H100 = fixture_path("h100-sxm")   # launched here with --force: this machine is not the H100 it describes
# The server profile asks 128k; vLLM holds 32k beside 120b on one H100 (vllm#27508), so these plans ask 32k.


@pytest.fixture
def vllm(stand_in):
    return stand_in("vllm")


def test_up_runs_the_planned_vllm_serve_and_benchmarks_it(run_cli, state, vllm):
    port = free_port()
    # 32k: what vLLM holds on one H100 beside 120b (vllm#27508: 1.71 GiB of KV cache); at 128k llama.cpp is planned
    code, out, err = run_cli("up", "--hardware", H100, "--force", "--profile", "server", "--context", "32768",
                             "--port", port, "--json")
    assert code == 0, err
    record = json.loads(out)
    argv = json.loads(vllm.read_text())["argv"]
    assert argv[:4] == ["serve", "openai/gpt-oss-120b", "--served-model-name", "gpt-oss-120b"]
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv[argv.index("--port") + 1] == str(port)
    for flag, value in [("--gpu-memory-utilization", "0.95"), ("--max-num-batched-tokens", "1024"),
                        ("--max-model-len", "32768")]:
        assert argv[argv.index(flag) + 1] == value
    # measured against the plan's prediction (its verdict is the machine's business: a busy one is rightly unstable)
    assert measured(record["benchmark"]) and record["benchmark"]["roofline_efficiency"] is not None
    assert run_cli("down", "--all")[0] == 0
    assert not psutil.pid_exists(record["pid"]) and not port_in_use("127.0.0.1", port)


def test_non_loopback_vllm_gets_its_key_through_the_environment(run_cli, state, vllm):
    code, out, err = run_cli("up", "--hardware", H100, "--force", "--profile", "server", "--context", "32768", "--host", "0.0.0.0",
                             "--port", free_port("0.0.0.0"), "--json")
    assert code == 0, err                                 # the benchmark authenticated with the key
    record = json.loads(out)
    started = json.loads(vllm.read_text())
    key = open(record["endpoint"]["api_key_file"]).read().strip()
    assert started["env"]["VLLM_API_KEY"] == key and key not in " ".join(started["argv"])
    assert record["env"]["VLLM_API_KEY"] == "***" and key not in state.path.read_text()


def test_vllm_not_installed_exits_4(run_cli, state, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    code, _, err = run_cli("up", "--hardware", H100, "--force", "--profile", "server", "--context", "32768")
    assert code == 4 and "vLLM is not installed" in err


def test_saved_vllm_plan_on_a_machine_without_a_gpu_exits_4_before_starting(run_cli, state, vllm, tmp_path):
    _, saved, _ = run_cli("plan", "--hardware", H100, "--profile", "server", "--context", "32768", "--json")
    plan = tmp_path / "plan.json"
    plan.write_text(saved)
    code, _, err = run_cli("up", "--plan", plan)          # applied here: probed live, and this machine has no GPU
    assert code == 4 and "vLLM needs 1 supported GPU(s)" in err and "no GPU was found" in err
    assert not vllm.exists()


def test_vllm_refuses_a_gpu_older_than_ampere(run_cli, vllm):
    _, saved, _ = run_cli("plan", "--hardware", H100, "--profile", "server", "--context", "32768", "--json")
    launch = VLLM.server_launch(plan=PlanDocument.model_validate_json(saved), options=UpOptions(),
                                hardware=load_hardware(fixture_path("t4-cloud-vm")), gguf=None)
    assert "Tesla T4 (compute capability 7.5) is older than Ampere (8.0)" in launch.unavailable


@pytest.mark.parametrize("fixture", ["mi300x", "b200", "8x-h100"])
def test_a_saved_plan_with_the_recipes_tuning_runs_exactly_as_planned(run_cli, fixture):
    """The per-family flags (ROCm attention backend, fp8 KV cache, data parallelism) survive the strict parse."""
    from gptoss_deploy.backends.vllm import VllmServeCommand
    from helpers import fixture_path as path

    _, saved, _ = run_cli("plan", "--hardware", path(fixture), "--profile", "server", "--json")
    argv = json.loads(saved)["launch"]["argv"]
    assert VllmServeCommand.parse(argv).argv() == argv


def test_effort_sweep_asks_vllm_for_reasoning_effort(run_cli, state, vllm, monkeypatch):
    monkeypatch.setenv("FAKE_ANSWER", "Yes.")
    code, _, err = run_cli("up", "--hardware", H100, "--force", "--profile", "server", "--context", "32768", "--port", free_port(),
                           "--no-bench")
    assert code == 0, err
    code, out, err = run_cli("bench", "--effort-sweep", "--json")
    assert code == 0, err
    efforts = json.loads(out)["effort_sweep"]["efforts"]
    assert [e["reasoning_tokens"] // len(e["tasks"]) for e in efforts] == [4, 16, 48]   # the stand-in's per effort
    assert all(e["correct"] == 1 and e["cost_usd"] is None for e in efforts)          # the syllogism; no price here
