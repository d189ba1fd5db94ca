"""Throughput prediction: decode from memory bandwidth (a roofline plus a per-layer cost), prefill from compute.

Decode time per token = sum over devices of (bytes read there / (bandwidth x efficiency))
                        + layers x fixed per-layer cost of the device that runs them.
Calibrated on the rows of ../shared/data/gptoss-facts.md (single stream, llama.cpp, depth 0):
  RTX 4090 20b 221.95 tok/s and DGX Spark 20b 84.10 tok/s fix the efficiency and the CUDA per-layer cost;
  M2 Ultra 120b 79.68 tok/s the Metal per-layer cost; Ryzen 9 7950X 20b 21.49 tok/s the CPU per-layer cost.
Held back to check it (tests/test_throughput.py): DGX Spark 120b 59.02 (SPARK), M2 Ultra 20b 115 and
M3 Ultra 20b 115.52 (G15396), NVIDIA's published DGX Spark 20b 82.74 / 120b 55.37: all within 6%.
"""
from __future__ import annotations

from dataclasses import dataclass

from gptoss_deploy.planner.devices import gpu_bandwidth_gbps, gpu_fp16_tflops, ram_bandwidth_gbps
from gptoss_deploy.planner.hardware import HardwareReport
from gptoss_deploy.planner.placement import EXPERTS, LAYERS, Placement

# Share of peak memory bandwidth that decode reaches once the per-layer cost is separated (G15396 + SPARK).
DECODE_BANDWIDTH_EFFICIENCY = 0.937
# Fixed cost per layer per token, in ms: kernel launches and synchronisation that bandwidth does not explain.
PER_LAYER_MS = {
    "nvidia": 0.0734,   # G15396 RTX 4090 + SPARK GB10 (20b)
    "apple": 0.211,     # G15396 M2 Ultra 120b
    "amd": 0.30,        # G15396 reply: RX 7900 XT, ROCm, ~94 tok/s on 20b (one report: least certain)
    "cpu": 0.293,       # IK1075 Ryzen 9 7950X, 16 threads
}
# Two all-reduces per layer under tensor parallelism, ~10 us each over NVLink (estimate, not calibrated).
TP_ALLREDUCE_MS_PER_LAYER = 0.02
# Share of dense FP16 peak that prefill reaches: geometric mean of RTX 4090 (0.35) and GB10 (0.44) pp2048;
# M2 Ultra pp2048 on 120b (G15396); AMD an estimate below NVIDIA for ROCm kernels.
PREFILL_COMPUTE_EFFICIENCY = {"nvidia": 0.39, "apple": 0.47, "amd": 0.30}
# CPU prefill: 148.7 tok/s pp512 on 16 Zen 4 cores for 3.61B active parameters (IK1075) = 67 GFLOP/s per core.
CPU_PREFILL_GFLOPS_PER_CORE = 67.0
# A CPU core streams and dequantizes MXFP4 at several GB/s, so few cores cannot use all of RAM's bandwidth
# (estimate; the 16-core calibration row is RAM-bound, so it does not move it).
CPU_DECODE_GBPS_PER_CORE = 8.0
# With experts in RAM, llama.cpp copies them to the GPU for each prompt ubatch: PCIe 4.0 x16 moves ~25 GB/s.
PCIE_GBPS = 25.0


@dataclass(frozen=True)
class Prediction:
    decode_tokens_per_s: float
    prefill_tokens_per_s: float
    roofline_decode_tokens_per_s: float   # peak bandwidth, no overheads: the ceiling a benchmark is held to

    def to_json(self) -> dict:
        return {"decode_tokens_per_s": round(self.decode_tokens_per_s, 1),
                "prefill_tokens_per_s": round(self.prefill_tokens_per_s, 1),
                "roofline_decode_tokens_per_s": round(self.roofline_decode_tokens_per_s, 1)}


def _device_bandwidth_gbps(hw: HardwareReport, device: str) -> float:
    if device == "cpu":
        return min(ram_bandwidth_gbps(hw), hw.cpu.physical_cores * CPU_DECODE_GBPS_PER_CORE)
    return gpu_bandwidth_gbps(_gpu(hw, device))


def _gpu(hw: HardwareReport, device: str):
    return next(g for g in hw.gpus if f"gpu{g.index}" == device)


def _read_seconds(placement: Placement, hw: HardwareReport, efficiency: float) -> float:
    """Time to read one token's bytes: GPUs under tensor parallelism read at once, otherwise take turns."""
    read_seconds = [
        read_bytes / (_device_bandwidth_gbps(hw, device) * 1e9 * efficiency)
        for device, read_bytes in placement.read_bytes_per_token.items()
    ]
    return max(read_seconds) if placement.tensor_parallel_size > 1 else sum(read_seconds)


def roofline_decode(placement: Placement, hw: HardwareReport) -> float:
    return 1 / _read_seconds(placement, hw, efficiency=1.0)


def predict_decode(placement: Placement, hw: HardwareReport) -> float:
    layers = placement.model.layers
    seconds = _read_seconds(placement, hw, DECODE_BANDWIDTH_EFFICIENCY)
    if placement.tensor_parallel_size > 1:   # two all-reduces per layer
        seconds += layers * TP_ALLREDUCE_MS_PER_LAYER / 1000
    gpu_devices = [d for d in placement.read_bytes_per_token if d != "cpu"]
    if gpu_devices:
        vendor = _gpu(hw, gpu_devices[0]).vendor
        gpu_layers = layers if placement.offload == EXPERTS else layers - placement.cpu_layers
        seconds += gpu_layers * PER_LAYER_MS[vendor] / 1000
        seconds += placement.cpu_layers * PER_LAYER_MS["cpu"] / 1000
    else:
        seconds += layers * PER_LAYER_MS["cpu"] / 1000
    return 1 / seconds


def predict_prefill(placement: Placement, hw: HardwareReport) -> float:
    flops_per_token = 2 * placement.model.active_params
    gpu_devices = [d for d in placement.read_bytes_per_token if d != "cpu" and placement.read_bytes_per_token[d]]
    if not gpu_devices:
        return hw.cpu.physical_cores * CPU_PREFILL_GFLOPS_PER_CORE * 1e9 / flops_per_token
    gpus = [_gpu(hw, d) for d in gpu_devices]
    if placement.tensor_parallel_size > 1:   # tensor parallel: the GPUs work on each token together
        flops = sum(gpu_fp16_tflops(g) * PREFILL_COMPUTE_EFFICIENCY[g.vendor] for g in gpus) * 1e12
        seconds = flops_per_token / flops
    else:                                    # layer split: the GPUs take turns
        shares = [placement.read_bytes_per_token[d] for d in gpu_devices]
        seconds = sum(
            (share / sum(shares)) * flops_per_token / (gpu_fp16_tflops(g) * PREFILL_COMPUTE_EFFICIENCY[g.vendor] * 1e12)
            for g, share in zip(gpus, shares)
        )
    offloaded_expert_bytes = placement.cpu_layers * placement.artifact.expert_bytes_per_layer(placement.model)
    if placement.offload == EXPERTS and offloaded_expert_bytes and not gpus[0].unified_memory:
        seconds += offloaded_expert_bytes / (PCIE_GBPS * 1e9) / placement.ubatch
    if placement.offload == LAYERS and placement.cpu_layers:   # CPU layers run at CPU speed
        cpu_share = placement.cpu_layers / placement.model.layers
        seconds += cpu_share * flops_per_token / (hw.cpu.physical_cores * CPU_PREFILL_GFLOPS_PER_CORE * 1e9)
    return 1 / seconds


def predict(placement: Placement, hw: HardwareReport) -> Prediction:
    return Prediction(predict_decode(placement, hw), predict_prefill(placement, hw), roofline_decode(placement, hw))
