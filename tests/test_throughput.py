"""The predictor against published llama.cpp figures: calibration rows and rows held back from calibration."""
from __future__ import annotations

import pytest

from gptoss_deploy.planner.catalog import MODELS
from gptoss_deploy.planner.hardware import hardware_from_dict
from gptoss_deploy.backends.llamacpp import LLAMACPP
from gptoss_deploy.planner.placement import fit_expert_offload
from gptoss_deploy.planner.throughput import predict

GB = 10**9


def fit_llamacpp(model, hw):
    return fit_expert_offload(LLAMACPP.name, model, hw, 4096, LLAMACPP.artifact(model))


# Compute capability by card where it is not Ada's 8.9 (the calibration RTX 4090's).
ARCH = {"NVIDIA GeForce RTX 3090": "8.6", "NVIDIA GB10": "12.1"}


def machine(gpu_name: str | None, bandwidth_gbps: float, vendor: str = "nvidia", cores: int = 16):
    gpus = [] if gpu_name is None else [{
        "index": 0, "vendor": vendor, "name": gpu_name, "memory_total_bytes": 200 * GB,
        "memory_free_bytes": 200 * GB, "memory_bandwidth_gbps": bandwidth_gbps,
        "compute_capability": ARCH.get(gpu_name, "8.9") if vendor == "nvidia" else None,
        "unified_memory": vendor == "apple"}]
    return hardware_from_dict({
        "schema_version": 1, "os": "linux", "arch": "x86_64",
        "cpu": {"model": "test", "physical_cores": cores, "logical_cores": cores * 2},
        "memory": {"total_bytes": 400 * GB, "available_bytes": 390 * GB,
                   "bandwidth_gbps": bandwidth_gbps if gpu_name is None else 80},
        "gpus": gpus}, "test")


# (hardware, bandwidth GB/s, vendor, model, measured decode tok/s, measured prefill tok/s, source)
CALIBRATION = [
    ("NVIDIA GeForce RTX 4090", 1008, "nvidia", "20b", 221.95, 8022, "G15396"),
    ("NVIDIA GB10", 273, "nvidia", "20b", 84.10, 3783, "SPARK"),
    ("Apple M2 Ultra (76-core GPU)", 800, "apple", "120b", 79.68, 1245, "G15396"),
    (None, 70, "cpu", "20b", 21.49, 148.7, "IK1075"),
    ("Strix Halo [Radeon Graphics / 8050S / 8060S]", 256, "amd", "120b", 47.41, 998, "STX33 ROCm tg32/pp2048"),
    ("NVIDIA GeForce RTX 3090", 936, "nvidia", "20b", 147.5, None, "SMC3090: consumer Ampere's bandwidth share"),
]
HELD_OUT = [
    ("NVIDIA GB10", 273, "nvidia", "120b", 59.02, 1937.54, "SPARK llama-bench tg32/pp2048"),
    ("Apple M2 Ultra (76-core GPU)", 800, "apple", "20b", 115.0, None, "G15396 depth-0 note"),
    ("Apple M3 Ultra (80-core GPU)", 819, "apple", "20b", 115.52, None, "G15396 llama-bench tg128"),
    ("NVIDIA GB10", 273, "nvidia", "20b", 82.74, None, "NVIDIA's DGX Spark table, llama.cpp BS=1"),
    ("NVIDIA GB10", 273, "nvidia", "120b", 55.37, None, "NVIDIA's DGX Spark table, llama.cpp BS=1"),
    # Added with issue 10, each from a published llama.cpp run (the big CPU is added in held_out_errors).
    ("Strix Halo [Radeon Graphics / 8050S / 8060S]", 256, "amd", "120b", 49.0, None,
     "kyuz0/amd-strix-halo-vllm-toolboxes#19, llama.cpp ROCm b8133"),
]
# Published, but not comparable to depth-0 llama-bench rows: shown in the issue notes, not held to a bound.
# The RX 7900 XT figure is a web-UI reading on an August 2025 build (b6194, ROCm 6.4) at full context; the 4080
# SUPER one was taken at 4K context by the same site as SMC3090.
NOT_COMPARABLE = [
    ("AMD Radeon RX 7900 XT", 800, "amd", "20b", 94.0, None, "G15396 reply, ROCm, web UI, b6194"),
    ("NVIDIA GeForce RTX 4080 SUPER", 736, "nvidia", "20b", 139.1, None, "smeltcore.com, 4K context"),
]


def _predict(name, bandwidth, vendor, size, cores=16):
    hw = machine(name, bandwidth, vendor, cores)
    return predict(fit_llamacpp(MODELS[size], hw), hw)


@pytest.mark.parametrize("name,bandwidth,vendor,size,decode,prefill,source", CALIBRATION)
def test_calibration_rows_are_reproduced(name, bandwidth, vendor, size, decode, prefill, source):
    predicted = _predict(name, bandwidth, vendor, size)
    assert predicted.decode_tokens_per_s == pytest.approx(decode, rel=0.03), source
    if prefill is not None:
        assert predicted.prefill_tokens_per_s == pytest.approx(prefill, rel=0.15), source


def held_out_errors() -> list[float]:
    """Signed decode error of each held-out row (predicted / measured - 1), the big CPU last."""
    errors = [_predict(n, b, v, s).decode_tokens_per_s / d - 1 for n, b, v, s, d, _, _ in HELD_OUT]
    # r/LocalLLaMA (eloquentemu): EPYC 9B14, 12 channels DDR5-4800 (460 GB/s), 44 threads: 120b tg128 49.31
    return errors + [_predict(None, 460, "cpu", "120b", cores=44).decode_tokens_per_s / 49.31 - 1]


def test_held_out_rows_have_mean_decode_error_under_10_percent():
    errors = [abs(e) for e in held_out_errors()]
    assert max(errors) < 0.15
    assert sum(errors) / len(errors) < 0.10


# vLLM (the whole model on GPUs, its own kernels): one row calibrates each GPU generation; TP2 is held out.
def vllm_machine(name, bandwidth, cc, count, total_gb):
    gpus = [{"index": i, "vendor": "nvidia", "name": name, "memory_total_bytes": total_gb * GB,
             "memory_free_bytes": total_gb * GB - GB, "memory_bandwidth_gbps": bandwidth, "compute_capability": cc}
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
    a100, hw = vllm_placement(vllm_machine("NVIDIA A100-SXM4-80GB", 2039, "8.0", 1, 80), 1)
    assert predict(a100, hw).decode_tokens_per_s == pytest.approx(90, rel=0.03)              # V22331
    # memory small enough that only 8 GPUs hold it: the prediction depends on bandwidth and the split, not size
    tp8, hw = vllm_placement(vllm_machine("NVIDIA H100 80GB HBM3", 3352, "9.0", 8, 13), 8)
    from gptoss_deploy.planner.throughput import _step_seconds
    assert _step_seconds(tp8, hw, 4) * 1000 == pytest.approx(3.72, rel=0.05)               # IX828 TPOT at 4 streams


def test_vllm_aggregate_grows_with_streams_but_less_than_linearly():
    """Four streams read the union of the experts they chose: more than one stream's bytes, far less than four."""
    hw = vllm_machine("NVIDIA H100 80GB HBM3", 3352, "9.0", 1, 80)
    placed, _ = vllm_placement(hw, 1)
    single = predict(placed, hw)
    assert 2 * single.decode_tokens_per_s < single.aggregate_tokens_per_s < 4 * single.decode_tokens_per_s


def test_experts_in_ram_cost_speed_in_proportion_to_ram_bandwidth():
    """The same GPU with less free memory puts experts in RAM; slower RAM makes that slower still."""
    roomy = machine("NVIDIA GeForce RTX 4090", 1008)
    tight = roomy.model_copy(update={"gpus": [roomy.gpus[0].model_copy(update={"memory_free_bytes": 8 * GB})]})
    slow_ram = tight.model_copy(update={"memory": tight.memory.model_copy(update={"bandwidth_gbps": 40})})
    full, offloaded, slow = (fit_llamacpp(MODELS["20b"], hw) for hw in (roomy, tight, slow_ram))
    assert full.cpu_layers == 0 and offloaded.cpu_layers > 0
    speeds = [predict(p, hw).decode_tokens_per_s for p, hw in ((full, roomy), (offloaded, tight), (slow, slow_ram))]
    assert speeds[0] > 2 * speeds[1]
    assert speeds[1] > 1.3 * speeds[2]
