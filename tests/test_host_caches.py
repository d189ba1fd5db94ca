"""llama-server's own RAM beyond the model (its prompt cache and context checkpoints) sized by the plan, and --fit off:
the engine runs the plan's placement and stays inside the plan's memory after start-up."""
from __future__ import annotations

import json

import psutil

from gptoss_deploy.backends import REGISTRY
from gptoss_deploy.backends.llamacpp_embedded import _parser, params_from_args
from gptoss_deploy.planner.hardware import load_hardware
from gptoss_deploy.planner.placement import HOST_CACHE_SPARE_BYTES
from gptoss_deploy.planner.plan import plan
from gptoss_deploy.planner.units import GIB, MIB
from helpers import constraints, fixture_path, free_port, plan_for


def argv_value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_a_desktop_with_spare_ram_gets_the_caches_that_fit_and_the_memory_view_counts_them():
    doc = plan_for("rtx4090-desktop").to_json()
    argv = doc["launch"]["argv"]
    assert argv_value(argv, "--cache-ram") == "8192"                 # llama-server's default: RAM for it is spare
    assert 1 <= int(argv_value(argv, "--ctx-checkpoints")) <= 32 and argv_value(argv, "--fit") == "off"
    [ram] = [d for d in doc["memory"]["devices"] if d["device"] == "cpu"]
    assert ram["breakdown"]["cache"] >= 8192 * MIB
    assert ram["used_bytes"] == sum(v for k, v in ram["breakdown"].items() if k != "headroom")
    assert ram["used_bytes"] + ram["breakdown"]["headroom"] + HOST_CACHE_SPARE_BYTES <= ram["available_bytes"]
    assert any(r.startswith("memory: llama-server keeps") and "--cache-ram 8192" in r for r in doc["reasons"])


def test_a_ram_tight_plan_and_unified_memory_keep_no_caches():
    """The 4090 desktop with 44 GiB of RAM free: its experts leave under a GiB; the 16 GB Mac: the RAM is the GPU's."""
    hw = load_hardware(fixture_path("rtx4090-desktop"))
    tight = hw.model_copy(update={"memory": hw.memory.model_copy(update={"available_bytes": 46 * GIB})})
    for doc in (plan(tight, constraints("auto", {"model": "120b"}), REGISTRY).to_json(),
                plan_for("apple-m2-16gb").to_json()):
        argv = doc["launch"]["argv"]
        assert (argv_value(argv, "--cache-ram"), argv_value(argv, "--ctx-checkpoints")) == ("0", "0")
        assert all(d["breakdown"]["cache"] == 0 for d in doc["memory"]["devices"])
        assert any(r.startswith("memory: no prompt cache and no context checkpoints") for r in doc["reasons"])


def test_a_longer_context_wants_more_checkpoints_up_to_llama_servers_32():
    short = plan_for("rtx4090-desktop-128gb", context="8192").to_json()["launch"]["argv"]
    long = plan_for("rtx4090-desktop-128gb", context="131072").to_json()["launch"]["argv"]
    assert int(argv_value(short, "--ctx-checkpoints")) == 1      # one every 8,192 tokens (--checkpoint-min-step)
    assert int(argv_value(long, "--ctx-checkpoints")) == 16


def test_other_engines_plans_leave_llama_server_flags_alone():
    for backend in ("ollama", "vllm"):
        doc = plan_for("h100-sxm", "server", backend=backend, context="32768").to_json()
        assert not {"--cache-ram", "--ctx-checkpoints", "--fit"} & set(doc["launch"]["argv"])


def test_the_embedded_engine_takes_the_planned_caches():
    """llama.cpp's own parameters (xllamacpp.CommonParams), as the engine we ship reads them."""
    args = ["--model", "m.gguf", "--alias", "m", "--cache-ram", "512", "--ctx-checkpoints", "3", "--fit", "off"]
    params = params_from_args(_parser().parse_args(args))
    assert (params.cache_ram_mib, params.n_ctx_checkpoints, params.fit_params) == (512, 3, False)
    defaults = params_from_args(_parser().parse_args(["--model", "m.gguf"]))
    assert (defaults.cache_ram_mib, defaults.n_ctx_checkpoints) == (8192, 32)     # what a plan no longer leaves


def test_up_runs_the_real_engine_with_the_planned_caches(run_cli, state, smollm2):
    code, out, err = run_cli("up", "--gguf", smollm2, "--port", free_port(), "--no-bench", "--json")
    assert code == 0, err
    record = json.loads(out)
    argv = psutil.Process(record["pid"]).cmdline()
    planned = record["plan"]["launch"]["argv"]
    for flag in ("--cache-ram", "--ctx-checkpoints", "--fit"):
        assert argv_value(argv, flag) == argv_value(planned, flag)
