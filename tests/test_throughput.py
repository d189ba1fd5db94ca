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


def machine(gpu_name: str | None, bandwidth_gbps: float, vendor: str = "nvidia", cores: int = 16):
    gpus = [] if gpu_name is None else [{
        "index": 0, "vendor": vendor, "name": gpu_name, "memory_total_bytes": 200 * GB,
        "memory_free_bytes": 200 * GB, "memory_bandwidth_gbps": bandwidth_gbps, "compute_capability": "8.9",
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
]
HELD_OUT = [
    ("NVIDIA GB10", 273, "nvidia", "120b", 59.02, 1937.54, "SPARK llama-bench tg32/pp2048"),
    ("Apple M2 Ultra (76-core GPU)", 800, "apple", "20b", 115.0, None, "G15396 depth-0 note"),
    ("Apple M3 Ultra (80-core GPU)", 819, "apple", "20b", 115.52, None, "G15396 llama-bench tg128"),
    ("NVIDIA GB10", 273, "nvidia", "20b", 82.74, None, "NVIDIA's DGX Spark table, llama.cpp BS=1"),
    ("NVIDIA GB10", 273, "nvidia", "120b", 55.37, None, "NVIDIA's DGX Spark table, llama.cpp BS=1"),
]


def _predict(name, bandwidth, vendor, size):
    hw = machine(name, bandwidth, vendor)
    return predict(fit_llamacpp(MODELS[size], hw), hw)


@pytest.mark.parametrize("name,bandwidth,vendor,size,decode,prefill,source", CALIBRATION)
def test_calibration_rows_are_reproduced(name, bandwidth, vendor, size, decode, prefill, source):
    predicted = _predict(name, bandwidth, vendor, size)
    assert predicted.decode_tokens_per_s == pytest.approx(decode, rel=0.03), source
    assert predicted.prefill_tokens_per_s == pytest.approx(prefill, rel=0.15), source


def test_held_out_rows_have_mean_decode_error_under_15_percent():
    errors = [abs(_predict(n, b, v, s).decode_tokens_per_s / d - 1) for n, b, v, s, d, _, _ in HELD_OUT]
    assert max(errors) < 0.15
    assert sum(errors) / len(errors) < 0.10


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
