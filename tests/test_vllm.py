"""vLLM: the planned `vllm serve` run and supervised, with a stand-in executable (no GPU here)."""
from __future__ import annotations

import json

import psutil
import pytest
import yaml

from gptoss_deploy.backends.base import UpOptions
from gptoss_deploy.backends.vllm import VLLM, VLLM_RELEASE
from gptoss_deploy.planner.devices import vllm_serves_on_cpu
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


# Intel, where vLLM's recipe verifies gpt-oss-20b (VR: gpt-oss-20b.yaml): Arc Pro B60/B70 (XPU) and Xeon 6 (CPU).
B60, XEON6 = fixture_path("arc-pro-b60-workstation"), fixture_path("xeon6-server")


def deployment_container(export_text: str) -> dict:
    return next(o for o in yaml.safe_load_all(export_text) if o and o["kind"] == "Deployment")[
        "spec"]["template"]["spec"]["containers"][0]


def test_an_arc_pro_b60_serves_20b_through_vllms_xpu_build_and_exports_its_image(run_cli):
    code, out, err = run_cli("plan", "--hardware", B60, "--backend", "vllm", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["model"], doc["memory"]["cpu_bytes"], doc["launch"]["env"]) == ("gpt-oss-20b", 0, {})
    assert doc["launch"]["argv"][:3] == ["vllm", "serve", "openai/gpt-oss-20b"]
    code, out, err = run_cli("export", "--format", "kubernetes", "--hardware", B60, "--backend", "vllm")
    assert code == 0, err
    container = deployment_container(out)
    assert container["image"] == f"vllm/vllm-openai-xpu:v{VLLM_RELEASE}"
    assert container["resources"]["limits"]["gpu.intel.com/i915"] == 1


def test_a_xeon_6_serves_20b_through_vllms_cpu_build_with_the_recipes_settings(run_cli, state, vllm, tmp_path):
    code, out, err = run_cli("plan", "--hardware", XEON6, "--backend", "vllm", "--json")
    assert code == 0, err
    doc = json.loads(out)
    argv = doc["launch"]["argv"]
    assert (doc["model"], doc["memory"]["gpu_bytes"]) == ("gpt-oss-20b", 0)
    [ram] = doc["memory"]["devices"]
    kv = ram["breakdown"]["kv_cache"]
    # what vLLM checks at start: 12 full layers hold the 32k context, 12 sliding ones the window and a batch of
    # 16,384 tokens, 2,048 bytes a token a layer (the recipe's --gpu-memory-utilization would reserve 614 GiB here)
    need = 2048 * (12 * 32768 + 12 * (127 + 16384))
    assert "--gpu-memory-utilization" not in argv and need <= kv < need + 2**30
    assert [argv[argv.index(flag) + 1] for flag in ("--kv-cache-memory-bytes", "--max-num-batched-tokens")] == \
           [str(kv), "16384"]
    assert any(r.startswith("CPU: vLLM's CPU build holds the whole model") for r in doc["reasons"])
    assert doc["predicted"]["decode_tokens_per_s"] > 0 and doc["predicted"]["aggregate_tokens_per_s"] > 0
    code, out, err = run_cli("export", "--format", "kubernetes", "--hardware", XEON6, "--backend", "vllm")
    assert code == 0, err
    container = deployment_container(out)
    assert container["image"] == f"vllm/vllm-openai-cpu:v{VLLM_RELEASE}"
    limits = container["resources"]["limits"]
    assert not any("gpu" in resource for resource in limits)
    assert int(limits["memory"].removesuffix("Gi")) * 2**30 >= ram["used_bytes"]      # the pod holds what vLLM takes
    saved = tmp_path / "plan.json"
    saved.write_text(json.dumps(doc))
    code, _, err = run_cli("up", "--plan", saved)         # applied here: probed live, and this CPU is no Xeon 6
    assert (code, vllm.exists()) == (4, False)
    assert "this plan runs vLLM's CPU build, which its gpt-oss recipe verifies on Intel Xeon 6" in err


@pytest.mark.parametrize("machine, model, said", [
    ("arc-pro-b60-workstation", "120b", "vLLM's gpt-oss recipe verifies only gpt-oss-20b on Intel GPUs (Arc Pro "
                                        "B60/B70), not gpt-oss-120b"),
    ("arc-a770-desktop", "20b", "vLLM's gpt-oss recipe runs Intel Arc Pro B60 and B70 (XPU), not Intel DG2 [Arc A770]"),
    ("xeon6-server", "120b", "vLLM's gpt-oss recipe verifies only gpt-oss-20b on Xeon 6 CPUs, not gpt-oss-120b"),
    ("cpu-only-64core", "20b", "vLLM's gpt-oss recipe serves without a GPU only on Intel Xeon 6 CPUs (its CPU build); "
                               "this machine has AMD EPYC 9B14 96-Core Processor and no GPU"),
])
def test_vllm_where_its_recipe_verifies_no_gpt_oss_is_refused_with_what_it_does_verify(run_cli, machine, model, said):
    code, out, err = run_cli("plan", "--hardware", fixture_path(machine), "--backend", "vllm", "--model", model)
    assert code == 3 and said in err and "Instead: " in err


@pytest.mark.parametrize("cpu, verified", [("Intel(R) Xeon(R) 6972P", True), ("Intel(R) Xeon(R) 6767P", True),
                                           ("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", False),
                                           ("Intel(R) Xeon(R) Platinum 8480+", False), ("AMD EPYC 9654", False)])
def test_only_xeon_6_counts_as_the_cpu_vllms_recipe_verifies(cpu, verified):
    assert vllm_serves_on_cpu(cpu) is verified


@pytest.mark.parametrize("change, said", [
    (lambda argv: argv + ["--gpu-memory-utilization", "0.80"],
     "sets both --gpu-memory-utilization and --kv-cache-memory-bytes: one of them sizes vLLM's memory"),
    (lambda argv: argv[:argv.index("--kv-cache-memory-bytes")] + argv[argv.index("--kv-cache-memory-bytes") + 2:],
     "lacks --gpu-memory-utilization or --kv-cache-memory-bytes"),
])
def test_a_saved_plan_sizes_vllms_memory_one_way_or_is_exit_2(run_cli, state, tmp_path, change, said):
    _, out, _ = run_cli("plan", "--hardware", XEON6, "--backend", "vllm", "--json")
    doc = json.loads(out)
    doc["launch"]["argv"] = change(doc["launch"]["argv"])
    saved = tmp_path / "plan.json"
    saved.write_text(json.dumps(doc))
    code, _, err = run_cli("up", "--plan", saved, "--dry-run")
    assert code == 2 and f"the plan's launch.argv {said}" in err
