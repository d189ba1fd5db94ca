"""Published llama.cpp figures for gpt-oss, and what the predictor makes of each machine: the rows it is calibrated
on, the rows held out to check it (docs/sources.md lists both), and DGX Spark's rows at depth.

Used by tests/test_throughput.py (bounds) and tests/bench_predictions.py (the error table).
"""
from __future__ import annotations

from dataclasses import dataclass

from gptoss_deploy.backends.llamacpp import LLAMACPP
from gptoss_deploy.planner.catalog import MODELS
from gptoss_deploy.planner.hardware import HardwareReport, hardware_from_dict
from gptoss_deploy.planner.placement import fit_expert_offload
from gptoss_deploy.planner.throughput import Prediction, predict

GB = 10**9
# Compute capability by card where it is not Ada's 8.9 (the calibration RTX 4090's).
ARCH = {"NVIDIA GeForce RTX 3090": "8.6", "NVIDIA GB10": "12.1", "NVIDIA GeForce RTX 5090": "12.0",
        "NVIDIA RTX PRO 6000 Blackwell Workstation Edition": "12.0", "Tesla V100-SXM2-32GB": "7.0"}


@dataclass(frozen=True)
class Row:
    gpu: str | None           # the name the probe reports; None: CPU only
    bandwidth_gbps: float     # the GPU's, or for a CPU-only row the RAM's
    vendor: str
    model: str
    decode: float | None      # tg tok/s
    prefill: float | None     # pp tok/s
    source: str
    prefill_batch: int = 2048  # ppN: its tokens sit at depth N/2 on average
    cores: int = 16

    @property
    def label(self) -> str:
        return f"{self.gpu or f'CPU, {self.cores} cores'} {self.model}"


CALIBRATION = [
    Row("NVIDIA GeForce RTX 4090", 1008, "nvidia", "20b", 221.95, 8022, "G15396"),
    Row("NVIDIA GB10", 273, "nvidia", "20b", 84.10, 3782.76, "SPARK"),
    Row("NVIDIA GB10", 273, "nvidia", "120b", None, 1937.54, "SPARK: the 120b prefill rate"),
    Row("Apple M2 Ultra (76-core GPU)", 800, "apple", "120b", 79.68, 1245, "G15396"),
    Row(None, 70, "cpu", "20b", 21.49, 148.7, "IK1075", prefill_batch=512),
    Row("Strix Halo [Radeon Graphics / 8050S / 8060S]", 256, "amd", "120b", 47.41, 998, "STX33 ROCm tg32/pp2048"),
    Row("NVIDIA GeForce RTX 3090", 936, "nvidia", "20b", 147.5, None, "SMC3090: consumer Ampere's bandwidth share"),
]
HELD_OUT = [
    Row("NVIDIA GB10", 273, "nvidia", "120b", 59.02, None, "SPARK llama-bench tg32"),
    Row("Apple M2 Ultra (76-core GPU)", 800, "apple", "20b", 115.0, None, "G15396 depth-0 note"),
    Row("Apple M3 Ultra (80-core GPU)", 819, "apple", "20b", 115.52, None, "G15396 llama-bench tg128"),
    Row("NVIDIA GB10", 273, "nvidia", "20b", 82.74, None, "NVIDIA's DGX Spark table, llama.cpp BS=1"),
    Row("NVIDIA GB10", 273, "nvidia", "120b", 55.37, None, "NVIDIA's DGX Spark table, llama.cpp BS=1"),
    Row("Strix Halo [Radeon Graphics / 8050S / 8060S]", 256, "amd", "120b", 49.0, None,
        "kyuz0/amd-strix-halo-vllm-toolboxes#19, llama.cpp ROCm b8133"),
    # r/LocalLLaMA (eloquentemu): EPYC 9B14, 12 channels of DDR5-4800, 44 threads: 120b tg128 / pp512
    Row(None, 460, "cpu", "120b", 49.31, 205.86, "r/LocalLLaMA EPYC 9B14", prefill_batch=512, cores=44),
    # G15396's llama-bench pp2048 rows, as issue 23 quotes them
    Row("NVIDIA GeForce RTX 5090", 1792, "nvidia", "20b", None, 9848, "G15396"),
    Row("NVIDIA RTX PRO 6000 Blackwell Workstation Edition", 1792, "nvidia", "120b", None, 5518, "G15396"),
    Row("Tesla V100-SXM2-32GB", 900, "nvidia", "20b", None, 3527, "G15396"),
    Row("Apple M1 Pro", 200, "apple", "20b", None, 516, "G15396"),
]
# Published, but not comparable to depth-0 llama-bench rows: printed by the benchmark, not held to a bound.
# The RX 7900 XT figure is a web-UI reading on an August 2025 build (b6194, ROCm 6.4) at full context; the RTX
# 4080 SUPER and RTX 5090 ones were taken at 4K context by the same site as SMC3090, through its own harness.
NOT_COMPARABLE = [
    Row("AMD Radeon RX 7900 XT", 800, "amd", "20b", 94.0, None, "G15396 reply, ROCm, web UI, b6194"),
    Row("NVIDIA GeForce RTX 4080 SUPER", 736, "nvidia", "20b", 139.1, 6364.0, "smeltcore.com, 4K context"),
    Row("NVIDIA GeForce RTX 5090", 1792, "nvidia", "20b", 298.2, 9443.8, "smeltcore.com, 4K context"),
]
# DGX Spark, llama-bench pp2048 at each depth (SPARK, build 2f68ce7cf): the depth calibration.
SPARK_DEPTHS = {"20b": [(0, 3782.76), (4096, 3030.29), (8192, 2852.09), (16384, 2470.31), (32768, 1899.37)],
                "120b": [(0, 1937.54), (4096, 1653.89), (8192, 1580.60), (16384, 1411.42), (32768, 1155.40)]}


def machine(row: Row) -> HardwareReport:
    gpus = [] if row.gpu is None else [{
        "index": 0, "vendor": row.vendor, "name": row.gpu, "memory_total_bytes": 200 * GB,
        "memory_free_bytes": 200 * GB, "memory_bandwidth_gbps": row.bandwidth_gbps,
        "compute_capability": ARCH.get(row.gpu, "8.9") if row.vendor == "nvidia" else None,
        "unified_memory": row.vendor == "apple"}]
    return hardware_from_dict({
        "schema_version": 1, "os": "linux", "arch": "x86_64",
        "cpu": {"model": "test", "physical_cores": row.cores, "logical_cores": row.cores * 2},
        "memory": {"total_bytes": 400 * GB, "available_bytes": 390 * GB,
                   "bandwidth_gbps": row.bandwidth_gbps if row.gpu is None else 80},
        "gpus": gpus}, "test")


def fit_llamacpp(model, hw: HardwareReport):
    """llama.cpp's placement of MODEL on HW at a 4k context."""
    return fit_expert_offload(LLAMACPP.name, model, hw, 4096, LLAMACPP.artifact(model))


def predicted(row: Row) -> Prediction:
    """What the planner predicts for ROW's machine and model, the whole model on its GPU where it has one."""
    hw = machine(row)
    return predict(fit_llamacpp(MODELS[row.model], hw), hw)


def prefill_at(prediction: Prediction, depth: float) -> float:
    return prediction.prefill_tokens_per_s / (1 + depth / prediction.prefill_half_depth_tokens)


def decode_error(row: Row) -> float:
    return predicted(row).decode_tokens_per_s / row.decode - 1


def prefill_error(row: Row, depth: int = 0) -> float:
    """ROW's prefill prediction against its figure, for a llama-bench ppN run DEPTH tokens into the context."""
    return prefill_at(predicted(row), depth + row.prefill_batch / 2) / row.prefill - 1


def published_prompt_seconds(depths: list[tuple[int, float]], tokens: int) -> float:
    """Seconds to read TOKENS from published (depth, tok/s) rows: the time per token interpolated between them."""
    seconds, points = 0.0, [(d, 1 / rate) for d, rate in depths]
    for (d0, t0), (d1, t1) in zip(points, points[1:]):
        upto = min(d1, tokens)
        if upto > d0:
            slope = (t1 - t0) / (d1 - d0)
            seconds += (upto - d0) * (t0 + slope * (upto - d0) / 2)
    return seconds


def mean_abs(errors: list[float]) -> float:
    return sum(abs(e) for e in errors) / len(errors)
