"""The engine's own report of its memory, recorded at `up` beside the plan's figures: llama-server's buffer
report (the real engine's is checked in test_llamacpp_live and test_download) and vLLM's workers' lines."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gptoss_deploy.backends.llamacpp import LLAMACPP
from gptoss_deploy.backends.vllm import VLLM
from gptoss_deploy.planner.units import MIB
from gptoss_deploy.runtime.engine_memory import compare
from helpers import fixture_path, free_port, plan_for

H100 = fixture_path("h100-sxm")


def buffer_lines(gpu_weights: float, host_weights: float, gpu_kv: float, gpu_compute: float) -> list[str]:
    """A llama-server start-up in its words (figures in MiB): experts partly in RAM, gpt-oss's two KV caches
    (full and sliding-window attention), a pinned host compute buffer, colours as on a terminal."""
    return [
        "0.00.049.538 I common_memory_breakdown_print: |   - CUDA0 (RTX 4090)  | 24080 = 1234 + (22000 = 17000 + "
        "1200 + 2000) + 300 |",
        f"0.01.201.100 I load_tensors:        CUDA0 model buffer size = {gpu_weights:.2f} MiB",
        f"0.01.201.200 I load_tensors:   CPU_Mapped model buffer size = {host_weights:.2f} MiB",
        "0.01.300.000 I llama_context:  CUDA_Host  output buffer size =     0.77 MiB",
        "0.01.300.100 I llama_kv_cache_iswa: creating non-SWA KV cache, size = 32768 cells",
        f"0.01.300.200 I llama_kv_cache:        CUDA0 KV buffer size = {gpu_kv * 0.94:.2f} MiB",
        f"0.01.300.300 I llama_kv_cache: size = {gpu_kv * 0.94:.2f} MiB ( 32768 cells,  18 layers,  4/1 seqs)",
        "0.01.300.400 I llama_kv_cache_iswa: creating     SWA KV cache, size = 2560 cells",
        f"\x1b[34m0.01.300.500\x1b[0m \x1b[32mI \x1b[0mllama_kv_cache:        CUDA0 KV buffer size = "
        f"{gpu_kv * 0.06:.2f} MiB",
        f"0.01.400.000 I sched_reserve:      CUDA0 compute buffer size = {gpu_compute:.2f} MiB",
        "0.01.400.100 I sched_reserve:  CUDA_Host compute buffer size =    75.23 MiB",
    ]


def test_llama_servers_buffers_add_up_per_place_whatever_the_log_around_them():
    report = LLAMACPP.reported_memory(buffer_lines(17000.0, 42000.0, 1200.0, 2000.0))
    figures = {(r.where, r.part): r.bytes / MIB for r in report.figures}
    assert figures == {("GPUs", "weights"): 17000.0, ("host", "weights"): 42000.0,
                       ("GPUs", "kv_cache"): 1200.0, ("GPUs", "compute"): 2000.0,
                       ("host", "compute"): 0.77 + 75.23}
    assert LLAMACPP.reported_memory(["srv  init: listening on http://127.0.0.1:39217"]) is None


def plan_4090_120b():
    return plan_for("rtx4090-desktop-128gb", model="120b").document()


def as_logged(plan, kv_share: float = 1.0) -> list[str]:
    """PLAN's own figures as llama-server would print them, the KV cache times KV_SHARE."""
    gpu, host = (next(d.breakdown for d in plan.memory.devices if (d.device == "cpu") == on_host)
                 for on_host in (False, True))
    return buffer_lines(gpu.weights / MIB, host.weights / MIB, gpu.kv_cache * kv_share / MIB, gpu.compute / MIB)


def test_a_report_that_matches_the_plan_is_recorded_without_a_warning():
    plan = plan_4090_120b()
    memory = compare(plan.memory, LLAMACPP.reported_memory(as_logged(plan)), plan_applies=True)
    assert memory.warnings == [] and not any(f.off_plan for f in memory.figures)
    kv = next(f for f in memory.figures if f.part == "kv_cache")
    assert kv.reported_bytes == kv.planned_bytes == plan.memory.devices[0].breakdown.kv_cache


def test_a_kv_cache_twice_the_plans_is_a_warning_with_its_likely_cause():
    plan = plan_4090_120b()
    memory = compare(plan.memory, LLAMACPP.reported_memory(as_logged(plan, kv_share=2.0)), plan_applies=True)
    assert [f.part for f in memory.figures if f.off_plan] == ["kv_cache"]
    assert memory.warnings == ["the engine reports 2.4 GiB of KV cache on the GPUs, more than the plan's 1.2 GiB: "
                               "likely the engine sized its KV cache otherwise than planned (another context length "
                               "or number of sequences or, for vLLM, less memory left after its profiling run than "
                               "the plan's activation estimate)"]
    # the model that runs is not the planned one: the figures are kept, not judged
    assert compare(plan.memory, LLAMACPP.reported_memory(as_logged(plan, 2.0)), plan_applies=False).warnings == []


def test_the_engines_compute_buffers_over_the_plans_are_what_the_next_plan_on_the_machine_learns():
    plan = plan_4090_120b()
    gpu = next(d.breakdown for d in plan.memory.devices if d.device != "cpu")
    logged = as_logged(plan)
    logged[-2] = logged[-2].replace(f"{gpu.compute / MIB:.2f}", f"{1.5 * gpu.compute / MIB:.2f}")
    memory = compare(plan.memory, LLAMACPP.reported_memory(logged), plan_applies=True)
    # the GPU's 1.5x; the 76 MiB llama-server also keeps on the host, where the plan has none, is no ratio
    assert memory.compute_ratio == pytest.approx(1.5, abs=0.001)
    assert compare(plan.memory, LLAMACPP.reported_memory(logged), plan_applies=False).compute_ratio is None


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.text(max_size=120) | st.from_regex(
    r"\s?\S{1,12}\s+(model|KV|compute|output) buffer size\s*=\s*[0-9.]{1,12} MiB", fullmatch=True), max_size=12))
def test_any_log_reads_as_a_report_or_none_never_an_error(lines):
    for backend in (LLAMACPP, VLLM):
        report = backend.reported_memory(lines)
        assert report is None or all(r.bytes >= 0 for r in report.figures)


def up_vllm(run_cli, *extra):
    code, out, err = run_cli("up", "--hardware", H100, "--force", "--profile", "server", "--context", "32768",
                             "--port", free_port(), "--no-bench", *extra)
    assert code == 0, err
    return out, err


def test_vllm_on_one_h100_reports_the_kv_cache_the_plan_leaves(run_cli, state, stand_in):
    stand_in("vllm")      # prints what vLLM printed there: 64.38 GiB loaded, 1.71 GiB of KV cache (vllm#27508)
    record = json.loads(up_vllm(run_cli, "--json")[0])
    figures = {f["part"]: f for f in record["memory"]["figures"]}
    assert {f["where"] for f in figures.values()} == {"each GPU"}
    assert figures["kv_cache"]["reported_bytes"] == round(1.71 * 2**30)
    assert not figures["kv_cache"]["off_plan"] and not figures["weights"]["off_plan"]
    assert record["memory"]["warnings"] == [] and record["warnings"] == []
    code, out, _ = run_cli("status", "--json")
    assert json.loads(out)[0]["memory"] == record["memory"]


def test_vllm_with_less_kv_cache_than_planned_warns_at_up_and_says_its_capacity(run_cli, state, stand_in,
                                                                                monkeypatch):
    stand_in("vllm")
    monkeypatch.setenv("FAKE_VLLM_KV_GIB", "0.55")
    monkeypatch.setenv("FAKE_VLLM_CONCURRENCY", "0.36")
    out, err = up_vllm(run_cli)
    said = " ".join((out + err).split())
    assert "warning: the engine reports 563 MiB of KV cache on each GPU, less than the plan's 1.6 GiB" in said
    assert "it holds 0.36 requests of the full context at once" in said
    assert "KV cache on each GPU │ 1.6 GiB │ 563 MiB" in said       # the memory table beside the plan
    # the room vLLM did not leave its KV cache went to its own buffers: what the next plan on this machine sizes
    [record] = json.loads(run_cli("status", "--json")[1])
    room = next(f for f in record["memory"]["figures"] if f["part"] == "kv_cache")
    compute = next(d for d in record["plan"]["memory"]["devices"] if d["device"] == "gpu0")["breakdown"]["compute"]
    assert record["memory"]["compute_ratio"] == pytest.approx(
        (compute + room["planned_bytes"] - room["reported_bytes"]) / compute, abs=0.001)


def dry_run_argv(run_cli) -> list[str]:
    code, out, err = run_cli("up", "--hardware", fixture_path("cpu-only"), "--dry-run", "--json")
    assert code == 0, err
    return json.loads(out)["argv"]


def test_a_llama_server_of_today_is_asked_for_its_buffer_report(run_cli, stand_in):
    stand_in("llama-server")                     # says it is build 9300
    argv = dry_run_argv(run_cli)
    assert argv[argv.index("--log-verbosity") + 1] == "4"


def test_an_older_llama_server_prints_its_buffers_anyway_and_would_log_prompts_at_4(run_cli, stand_in,
                                                                                   monkeypatch):
    stand_in("llama-server")
    monkeypatch.setenv("FAKE_LLAMA_BUILD", "6100")
    assert "--log-verbosity" not in dry_run_argv(run_cli)
