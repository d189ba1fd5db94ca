"""The predictor against published llama.cpp figures: calibration rows and rows held back from calibration."""
from __future__ import annotations

import pytest

from gptoss_deploy.planner.catalog import MODELS
from gptoss_deploy.planner.constraints import CONTEXT_STEP, MAX_FULL_PROMPT_S
from gptoss_deploy.planner.hardware import hardware_from_dict
from gptoss_deploy.planner.throughput import predict
from published_rows import (CALIBRATION, GB, HELD_OUT, SPARK_DEPTHS, Row, decode_error, fit_llamacpp, machine,
                            mean_abs, predicted, prefill_at, prefill_error, published_prompt_seconds)
from helpers import constraints, plan_for


@pytest.mark.parametrize("row", CALIBRATION, ids=lambda row: row.label)
def test_calibration_rows_are_reproduced(row):
    if row.decode is not None:
        assert decode_error(row) == pytest.approx(0, abs=0.03), row.source
    if row.prefill is not None:
        assert prefill_error(row) == pytest.approx(0, abs=0.03), row.source


def test_held_out_rows_have_mean_decode_error_under_6_percent():
    errors = [decode_error(row) for row in HELD_OUT if row.decode is not None]
    assert max(map(abs, errors)) < 0.10
    assert mean_abs(errors) < 0.06


def test_held_out_rows_have_mean_prefill_error_under_15_percent():
    """llama-bench pp rows the predictor was not calibrated on: an RTX 5090 and an RTX PRO 6000 (Blackwell, one FP16
    convention with the 4090), a V100, an M1 Pro and a 44-core EPYC."""
    errors = [prefill_error(row) for row in HELD_OUT if row.prefill is not None]
    assert len(errors) >= 5
    assert max(map(abs, errors)) < 0.20
    assert mean_abs(errors) < 0.15


@pytest.mark.parametrize("size", SPARK_DEPTHS)
def test_prefill_slows_with_depth_as_dgx_spark_measured_it(size):
    gb10 = Row("NVIDIA GB10", 273, "nvidia", size, None, None, "SPARK")
    prediction = predicted(gb10)
    for depth, rate in SPARK_DEPTHS[size]:
        assert prefill_at(prediction, depth + 1024) == pytest.approx(rate, rel=0.15), depth
    # the time to read a 32k-token prompt: the published rows' per-token time, integrated over the depth
    published = published_prompt_seconds(SPARK_DEPTHS[size], 32768)
    assert prediction.prompt_seconds(32768) == pytest.approx(published, rel=0.10)
    assert prediction.prompt_seconds(32768) > 1.3 * 32768 / prediction.prefill_tokens_per_s   # not depth 0's rate


def test_the_context_cap_counts_the_slower_end_of_a_long_prompt():
    """The 60 s cap reads the whole prompt at the rates its depths allow: the capped context's full prompt is read
    within the cap, and a context one step longer is not."""
    chosen = plan_for("2x-rtx3090").chosen          # 120b with experts in RAM: prefill is slow
    assert chosen.target_context < constraints().context
    assert chosen.full_prompt_ttft_s() <= MAX_FULL_PROMPT_S
    assert chosen.prediction.prompt_seconds(chosen.target_context + CONTEXT_STEP) > MAX_FULL_PROMPT_S


# vLLM (the whole model on GPUs, its own kernels): one row calibrates each GPU generation; TP2 is held out.
def vllm_machine(name, bandwidth, cc, count, total_gb):
    gpus = [{"index": i, "vendor": "nvidia", "name": name, "memory_total_bytes": int(total_gb * GB),
             "memory_free_bytes": int(total_gb * GB) - GB, "memory_bandwidth_gbps": bandwidth, "compute_capability": cc}
            for i in range(count)]
    return hardware_from_dict({"schema_version": 1, "os": "linux", "arch": "x86_64",
                               "cpu": {"physical_cores": 64, "logical_cores": 128},
                               "memory": {"total_bytes": 1000 * GB, "available_bytes": 900 * GB}, "gpus": gpus}, "test")


def vllm_placement(hw, tp):
    from gptoss_deploy.backends.vllm import VLLM
    from gptoss_deploy.planner.placement import fit_whole_model

    model = MODELS["120b"]
    small = hw.model_copy(update={"gpus": hw.gpus[:tp]})
    placed = fit_whole_model("vllm", model, small, 8192, VLLM.artifact(model))
    assert placed.tensor_parallel_size == tp
    return placed, small


def test_vllm_single_stream_reproduces_a100_and_per_step_time_reproduces_h100_tp8():
    a100, hw = vllm_placement(vllm_machine("NVIDIA A100-SXM4-80GB", 2039, "8.0", 1, 80 * 2**30 / GB), 1)   # 80 GiB
    assert predict(a100, hw).decode_tokens_per_s == pytest.approx(90, rel=0.03)              # V22331
    # memory small enough that only 8 GPUs hold it: the prediction depends on bandwidth and the split, not size
    tp8, hw = vllm_placement(vllm_machine("NVIDIA H100 80GB HBM3", 3352, "9.0", 8, 15), 8)
    from gptoss_deploy.planner.throughput import _step_seconds
    assert _step_seconds(tp8, hw, 4) * 1000 == pytest.approx(3.72, rel=0.05)               # IX828 TPOT at 4 streams


def test_vllm_aggregate_grows_with_streams_but_less_than_linearly():
    """Four streams read the union of the experts they chose: more than one stream's bytes, far less than four."""
    hw = vllm_machine("NVIDIA H100 80GB HBM3", 3352, "9.0", 1, 81559 * 2**20 / GB)     # as nvidia-smi reports it
    placed, _ = vllm_placement(hw, 1)
    single = predict(placed, hw)
    assert 2 * single.decode_tokens_per_s < single.aggregate_tokens_per_s < 4 * single.decode_tokens_per_s


def test_experts_in_ram_cost_speed_in_proportion_to_ram_bandwidth():
    """The same GPU with less free memory puts experts in RAM; slower RAM makes that slower still."""
    roomy = machine(Row("NVIDIA GeForce RTX 4090", 1008, "nvidia", "20b", None, None, "a 4090 desktop"))
    tight = roomy.model_copy(update={"gpus": [roomy.gpus[0].model_copy(update={"memory_free_bytes": 8 * GB})]})
    slow_ram = tight.model_copy(update={"memory": tight.memory.model_copy(update={"bandwidth_gbps": 40})})
    full, offloaded, slow = (fit_llamacpp(MODELS["20b"], hw) for hw in (roomy, tight, slow_ram))
    assert full.cpu_layers == 0 and offloaded.cpu_layers > 0
    speeds = [predict(p, hw).decode_tokens_per_s for p, hw in ((full, roomy), (offloaded, tight), (slow, slow_ram))]
    assert speeds[0] > 2 * speeds[1]
    assert speeds[1] > 1.3 * speeds[2]
