"""Throughput prediction: decode from memory bandwidth (a roofline plus a per-layer cost), prefill from compute.

Decode time per token = sum over devices of (bytes read there / (bandwidth x efficiency))
                        + layers x fixed per-layer cost of the device that runs them.
Calibrated on the rows of ../shared/data/gptoss-facts.md (single stream, llama.cpp, depth 0):
  RTX 4090 20b 221.95 tok/s and DGX Spark 20b 84.10 tok/s fix the efficiency and the CUDA per-layer cost;
  M2 Ultra 120b 79.68 tok/s the Metal per-layer cost; Ryzen 9 7950X 20b 21.49 tok/s the CPU per-layer cost.
Strix Halo 120b 47.41 tok/s (STX33) the AMD per-layer cost. Prefill: the same machines' pp rows, DGX Spark's
120b row (120b's slower experts) and its rows at depth (attention). Held back to check both, and printed by
tests/bench_predictions.py: the rows tests/published_rows.py lists as HELD_OUT (docs/sources.md).

vLLM runs the whole model on GPUs with its own kernels: its per-layer cost is its own, by architecture, and it
batches concurrent streams, so it also gets an aggregate prediction (MoE: a batch reads the union of the experts
its tokens chose).
Sources beyond gptoss-facts.md: STX33 = lhl/strix-halo-testing#33 (llama.cpp ROCm, gpt-oss-120b tg32 47.41,
pp2048 998); V22331 = vllm-project/vllm#22331 (A100 80GB, vLLM, 120b TP1 ~90 tok/s single stream, TP2 77-78);
IX828 = SemiAnalysisAI/InferenceX#828 (H100, vLLM, 120b TP8 at 4 streams: TPOT 3.72 ms);
SMC3090 = smeltcore.com "gpt-oss 20B on RTX 3090" recipe (llama.cpp, 147.5 tok/s at 4K context).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gptoss_deploy.planner.devices import gpu_bandwidth_gbps, gpu_fp16_tflops, ram_bandwidth_gbps
from gptoss_deploy.planner.hardware import HardwareReport
from gptoss_deploy.planner.placement import EXPERTS, LAYERS, WHOLE_MODEL, Placement
from gptoss_deploy.planner.vendors import CPU, GPU_VENDORS

if TYPE_CHECKING:
    from gptoss_deploy.planner.calibration import Calibration

# Share of peak memory bandwidth that decode reaches once the per-layer cost is separated (G15396 + SPARK).
DECODE_BANDWIDTH_EFFICIENCY = 0.937
# ...except where published rows show a GPU generation far below it: consumer Ampere (GA10x, compute capability
# 8.6) reads 147.5 tok/s on an RTX 3090 (SMC3090, llama.cpp CUDA, 20b) where its 936 GB/s would give ~210 at the
# Ada/Hopper share. Volta (7.0) is said to fall short too, but no published gpt-oss row was found: it keeps the default.
DECODE_BANDWIDTH_EFFICIENCY_BY_ARCH = {"8.6": 0.55}
# The fixed cost per layer per token (kernel launches and synchronisation that bandwidth does not explain) is each
# device kind's `per_layer_ms` (planner/vendors.py).
# Two all-reduces per layer under tensor parallelism, ~10 us each over NVLink (estimate, not calibrated).
TP_ALLREDUCE_MS_PER_LAYER = 0.02
# vLLM's fixed cost per layer per decode step, in ms, by GPU generation: Ampere runs Triton attention and Marlin
# MXFP4 (V22331: 90 tok/s on one A100 80GB leaves 0.193 ms per layer beyond reading the bytes); Hopper and newer
# run FlashInfer/CUTLASS kernels under CUDA graphs (IX828: 3.72 ms per step at TP8 leaves 0.069). AMD Instinct has
# no published single-stream row: the Ampere figure, the cautious one, stands in.
VLLM_PER_LAYER_MS = {"ampere": 0.193, "hopper": 0.069}
# The benchmark's concurrent streams (verify.bench runs this many): the aggregate prediction is made for it.
AGGREGATE_STREAMS = 4
# The share of the dense FP16 matrix peak that llama.cpp's prefill reaches at depth 0 on gpt-oss-20b is each
# vendor's `prefill_efficiency` (planner/vendors.py, with its rows). A pp2048 row is read at depth 1024, the middle
# of its batch.
# ...times this where a generation's rows stand apart: GB10 (DGX Spark, 12.1) reads 20b pp2048 3783 (SPARK), 1.245
# times the 4090's share of its peak (its row comes from a build two months newer than the guide's).
PREFILL_EFFICIENCY_BY_ARCH = {"12.1": 1.245}
# A prompt's expert matmuls run at a lower rate on 120b than on 20b: its ubatch spreads over 128 experts, not 32,
# a quarter of the rows each. DGX Spark at depth 0 (SPARK): 120b pp2048 1937.5 against 20b's 3782.8 is 0.723 of
# 20b's FLOP rate. EPYC 9B14's 120b row (CPU, held out) agrees.
PREFILL_RATE_BY_MODEL = {"20b": 1.0, "120b": 0.723}
# CPU prefill: 148.7 tok/s pp512 on 16 Zen 4 cores for 3.61B active parameters (IK1075) = 67 GFLOP/s per core.
CPU_PREFILL_GFLOPS_PER_CORE = 67.0
# A CPU core streams and dequantizes MXFP4 at several GB/s, so few cores cannot use all of RAM's bandwidth
# (estimate; the 16-core calibration row is RAM-bound, so it does not move it).
CPU_DECODE_GBPS_PER_CORE = 8.0
# With experts in RAM, llama.cpp copies them to the GPU for each prompt ubatch: PCIe 4.0 x16 moves ~25 GB/s.
PCIE_GBPS = 25.0


def prompt_seconds(tokens: int, prefill_tokens_per_s: float, half_depth_tokens: float) -> float:
    """Seconds to read a prompt of TOKENS: the rate at depth d is prefill / (1 + d / half depth), integrated."""
    return (tokens + tokens ** 2 / (2 * half_depth_tokens)) / prefill_tokens_per_s


@dataclass(frozen=True)
class Prediction:
    decode_tokens_per_s: float
    prefill_tokens_per_s: float           # at depth 0: the first tokens of a prompt
    roofline_decode_tokens_per_s: float   # peak bandwidth, no overheads: the ceiling a benchmark is held to
    aggregate_tokens_per_s: float | None   # AGGREGATE_STREAMS streams at once: vLLM, and llama.cpp copies
    # Each prompt token attends to every token before it, so prefill slows with depth: at this depth it runs at half
    # prefill_tokens_per_s (DGX Spark's depth rows, SPARK: attention runs at the rate of the rest of the prefill).
    prefill_half_depth_tokens: float
    calibration: Calibration | None = None   # this machine's benchmark, applied (planner/calibration.py)

    def prompt_seconds(self, tokens: int) -> float:
        return prompt_seconds(tokens, self.prefill_tokens_per_s, self.prefill_half_depth_tokens)

    def to_json(self) -> dict:
        return {"decode_tokens_per_s": round(self.decode_tokens_per_s, 1),
                "prefill_tokens_per_s": round(self.prefill_tokens_per_s, 1),
                "prefill_half_depth_tokens": round(self.prefill_half_depth_tokens),
                "roofline_decode_tokens_per_s": round(self.roofline_decode_tokens_per_s, 1),
                "aggregate_tokens_per_s": None if self.aggregate_tokens_per_s is None
                else round(self.aggregate_tokens_per_s, 1),
                "aggregate_streams": AGGREGATE_STREAMS if self.aggregate_tokens_per_s is not None else None,
                **({"calibration": self.calibration.to_json()} if self.calibration else {})}


def _device_bandwidth_gbps(hw: HardwareReport, device: str) -> float:
    if device == "cpu":
        return min(ram_bandwidth_gbps(hw), hw.cpu.physical_cores * CPU_DECODE_GBPS_PER_CORE)
    return gpu_bandwidth_gbps(_gpu(hw, device))


def _gpu(hw: HardwareReport, device: str):
    return next(g for g in hw.gpus if f"gpu{g.index}" == device)


def _read_seconds(placement: Placement, hw: HardwareReport, efficiency: float | None) -> float:
    """Time to read one token's bytes at EFFICIENCY of peak bandwidth (None: each device's calibrated share):
    GPUs under tensor parallelism read at once, otherwise take turns (as pipeline stages over nodes do)."""
    read_seconds = [
        read_bytes / (_device_bandwidth_gbps(hw, device) * 1e9 * (efficiency or _decode_efficiency(hw, device)))
        for device, read_bytes in placement.read_bytes_per_token.items()
    ]
    if placement.tensor_parallel_size > 1:
        return max(read_seconds) * placement.pipeline_parallel_size
    return sum(read_seconds)


def _decode_efficiency(hw: HardwareReport, device: str) -> float:
    if device == "cpu":
        return DECODE_BANDWIDTH_EFFICIENCY
    gpu = _gpu(hw, device)
    return DECODE_BANDWIDTH_EFFICIENCY_BY_ARCH.get(gpu.compute_capability or "", DECODE_BANDWIDTH_EFFICIENCY)


def roofline_decode(placement: Placement, hw: HardwareReport) -> float:
    return 1 / _read_seconds(placement, hw, efficiency=1.0)


def predict_decode(placement: Placement, hw: HardwareReport) -> float:
    return 1 / _step_seconds(placement, hw, streams=1)


def _step_seconds(placement: Placement, hw: HardwareReport, streams: int) -> float:
    """One decode step for STREAMS sequences of one copy of the model: the bytes they read, plus fixed costs."""
    layers = placement.model.layers
    # A batch is bound by its bytes or, once it is big, by its arithmetic (2 FLOPs per active parameter per token)
    seconds = max(_read_seconds(placement, hw, None) * _batch_read_factor(placement, streams),
                  _batch_compute_seconds(placement, hw, streams))
    if placement.tensor_parallel_size > 1:   # two all-reduces per layer
        seconds += layers * TP_ALLREDUCE_MS_PER_LAYER / 1000
    gpu_devices = [d for d in placement.read_bytes_per_token if d != "cpu"]
    if placement.offload == WHOLE_MODEL and gpu_devices:     # vLLM on the CPU: each layer's fixed cost is the CPU's
        return seconds + layers * _vllm_per_layer_ms(placement) / 1000
    if gpu_devices:
        vendor = _gpu(hw, gpu_devices[0]).vendor
        gpu_layers = layers if placement.offload == EXPERTS else layers - placement.cpu_layers
        seconds += gpu_layers * GPU_VENDORS[vendor].per_layer_ms / 1000
        seconds += placement.cpu_layers * CPU.per_layer_ms / 1000
    else:
        seconds += layers * CPU.per_layer_ms / 1000
    return seconds


def _batch_compute_seconds(placement: Placement, hw: HardwareReport, streams: int) -> float:
    """The arithmetic of one decode step for STREAMS tokens on one copy's GPUs, at prefill's rate (a batch of decode
    tokens is a small prefill); no GPU: the CPU's prefill rate."""
    flops = streams * 2 * placement.model.active_params
    gpus = [_gpu(hw, d) for d in placement.read_bytes_per_token if d != "cpu"]
    return flops / (sum(_prefill_flops_per_s(g) for g in gpus) if gpus else _cpu_prefill_flops_per_s(hw))


def _prefill_flops_per_s(gpu) -> float:
    return (gpu_fp16_tflops(gpu) * 1e12 * GPU_VENDORS[gpu.vendor].prefill_efficiency
            * PREFILL_EFFICIENCY_BY_ARCH.get(gpu.compute_capability or "", 1.0))     # NVIDIA's "12.1", never AMD's gfx


def _cpu_prefill_flops_per_s(hw: HardwareReport) -> float:
    return hw.cpu.physical_cores * CPU_PREFILL_GFLOPS_PER_CORE * 1e9


def _vllm_per_layer_ms(placement: Placement) -> float:
    arch = placement.compute_capability or ""
    major = arch.split(".")[0]
    return VLLM_PER_LAYER_MS["hopper" if major.isdigit() and int(major) >= 9 else "ampere"]


def _batch_read_factor(placement: Placement, streams: int) -> float:
    """How many times one token's bytes a step of STREAMS tokens reads: the dense tensors once, and of each layer's
    experts the union the tokens chose (each picks experts_per_token of them, independently)."""
    model = placement.model
    one_expert = placement.artifact.expert_bytes_per_layer(model) / model.experts * model.layers   # all layers
    one_token = one_expert * model.experts_per_token
    chosen = model.experts * (1 - (1 - model.experts_per_token / model.experts) ** streams)
    dense = sum(placement.read_bytes_per_token.values()) - one_token
    return (dense + one_expert * chosen) / (dense + one_token)


def predict_aggregate(placement: Placement, hw: HardwareReport, streams: int = AGGREGATE_STREAMS) -> float:
    """Tokens per second over STREAMS concurrent streams, shared out over the data-parallel copies; a pipeline over
    nodes keeps one micro-batch in each stage."""
    busy = min(streams, placement.data_parallel_size * placement.pipeline_parallel_size)
    return streams / _step_seconds(placement, hw, math.ceil(streams / busy))


def predict_prefill(placement: Placement, hw: HardwareReport) -> tuple[float, float]:
    """Prefill at depth 0 in tokens/s, and the depth at which it is half that: the seconds per token of the model's
    own arithmetic (and of moving offloaded experts) over the seconds each token of depth adds in attention."""
    model = placement.model
    flops_per_token = 2 * model.active_params / PREFILL_RATE_BY_MODEL[model.size]
    gpu_devices = [d for d in placement.read_bytes_per_token if d != "cpu" and placement.read_bytes_per_token[d]]
    if not gpu_devices:
        seconds_per_flop = 1 / _cpu_prefill_flops_per_s(hw)
    elif placement.tensor_parallel_size > 1:   # tensor parallel: the GPUs work on each token together
        rate = sum(_prefill_flops_per_s(_gpu(hw, d)) for d in gpu_devices)
        seconds_per_flop = placement.pipeline_parallel_size / rate          # stages over nodes take turns
    else:                                      # layer split: the GPUs take turns
        shares = {d: placement.read_bytes_per_token[d] for d in gpu_devices}
        seconds_per_flop = sum(share / sum(shares.values()) / _prefill_flops_per_s(_gpu(hw, d))
                               for d, share in shares.items())
    if placement.offload == LAYERS and placement.cpu_layers:   # CPU layers run at CPU speed
        cpu_share = placement.cpu_layers / model.layers
        seconds_per_flop = (1 - cpu_share) * seconds_per_flop + cpu_share / _cpu_prefill_flops_per_s(hw)
    seconds = flops_per_token * seconds_per_flop
    offloaded_expert_bytes = placement.cpu_layers * placement.artifact.expert_bytes_per_layer(model)
    if gpu_devices and placement.offload == EXPERTS and offloaded_expert_bytes \
            and not _gpu(hw, gpu_devices[0]).unified_memory:
        seconds += offloaded_expert_bytes / (PCIE_GBPS * 1e9) / placement.ubatch
    return 1 / seconds, seconds / (model.attention_flops_per_depth * seconds_per_flop)


def predict(placement: Placement, hw: HardwareReport) -> Prediction:
    batched = placement.offload == WHOLE_MODEL or placement.data_parallel_size > 1
    aggregate = predict_aggregate(placement, hw) if batched else None
    prefill, half_depth = predict_prefill(placement, hw)
    return Prediction(predict_decode(placement, hw), prefill, roofline_decode(placement, hw), aggregate, half_depth)


def predict_dense_file(tensor_bytes: int, parameters: int, layers: int, width: int, hw: HardwareReport,
                       on_gpu: bool) -> Prediction | None:
    """A dense model of another architecture (a --gguf llama, say), whole on the first GPU (ON_GPU: the launch
    offloads every layer) or on the CPU: each token reads every weight once, plus each layer's fixed cost; a prompt
    token costs 2 FLOPs a parameter, and attends at 4 FLOPs a layer a width for each token before it (QK and AV).
    None where it does not fit that GPU (how the engine splits it is not modelled)."""
    gpu = next((g for g in hw.gpus if g.memory_free_bytes >= tensor_bytes), None) if on_gpu else None
    if on_gpu and gpu is None:
        return None
    device = f"gpu{gpu.index}" if gpu else "cpu"
    per_layer_ms = (GPU_VENDORS[gpu.vendor] if gpu else CPU).per_layer_ms
    flops_per_s = _prefill_flops_per_s(gpu) if gpu else _cpu_prefill_flops_per_s(hw)
    read_s = tensor_bytes / (_device_bandwidth_gbps(hw, device) * 1e9)
    decode = 1 / (read_s / _decode_efficiency(hw, device) + layers * per_layer_ms / 1000)
    half_depth = 2 * parameters / (4 * layers * width)
    return Prediction(decode, flops_per_s / (2 * parameters), 1 / read_s, None, half_depth)
