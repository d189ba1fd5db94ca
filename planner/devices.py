"""Known accelerators: memory bandwidth, dense FP16 throughput and machine class, looked up by name.

Vendor spec-sheet figures: bandwidth in GB/s, and dense FP16 matrix TFLOPS in one convention per vendor, so that
one prefill efficiency per vendor holds across its generations:
- NVIDIA: FP16 tensor throughput with FP16 accumulate, dense (a quarter of Ada's "AI TOPS", an eighth of
  Blackwell's). GeForce cards halve it with FP32 accumulate, pro and datacenter cards do not; llama.cpp's
  quantized matmuls run on the INT8 units, whose rate is this figure doubled on every card since Turing.
  Volta (V100) has FP16 tensor cores only: its FP16 figure.
- AMD: FP16 matrix (WMMA / MFMA) throughput, dense; on RDNA 3 that is 512 FLOPs per CU per clock.
- Apple: the GPU's FP32 shader throughput (M1 to M4 have no matrix units; FP16 runs at the same rate).
The probe's own bandwidth reading (NVML bus width x memory clock) wins over this table; the table wins over the
conservative defaults.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from gptoss_deploy.planner.hardware import Gpu, HardwareReport

# Used only when neither the probe nor the table knows a device: deliberately low, so the planner
# under-promises rather than over-promises.
DEFAULT_GPU_BANDWIDTH_GBPS = 250.0
DEFAULT_GPU_FP16_TFLOPS = 20.0
# Dual-channel DDR4-3200 is 51.2 GB/s: the common floor of today's desktops and laptops.
DEFAULT_RAM_BANDWIDTH_GBPS = 50.0


@dataclass(frozen=True)
class DeviceSpec:
    pattern: str            # regex searched in the device name, case-insensitive
    bandwidth_gbps: float
    fp16_tflops: float
    datacenter: bool = False


# Order matters: the first match wins, so specific names precede general ones.
GPU_SPECS: tuple[DeviceSpec, ...] = (
    DeviceSpec(r"GH200", 4000, 989, True),
    DeviceSpec(r"H200", 4800, 989, True),
    DeviceSpec(r"H100.*PCIe", 2000, 756, True),
    DeviceSpec(r"H100.*NVL", 3900, 835, True),
    DeviceSpec(r"H100|H800", 3350, 989, True),
    DeviceSpec(r"B300", 8000, 2250, True),
    DeviceSpec(r"B200", 8000, 2250, True),
    DeviceSpec(r"A100.*80", 2039, 312, True),
    DeviceSpec(r"A100|A800", 1555, 312, True),
    DeviceSpec(r"L40S", 864, 362, True),
    DeviceSpec(r"L40", 864, 181, True),
    DeviceSpec(r"\bL4\b", 300, 121, True),
    DeviceSpec(r"A10G", 600, 70, True),
    DeviceSpec(r"\bA10\b", 600, 125, True),
    DeviceSpec(r"\bT4\b", 320, 65, True),
    DeviceSpec(r"V100", 900, 125, True),
    DeviceSpec(r"MI355", 8000, 2300, True),
    DeviceSpec(r"MI325", 6000, 1307, True),
    DeviceSpec(r"MI300", 5300, 1307, True),
    DeviceSpec(r"GB10", 273, 125),                    # DGX Spark (SPARK): 1 PFLOP FP4 sparse
    # Intel (INTEL): memory bandwidth from bus width x data rate; FP16 on the XMX engines, half the INT8 peak
    DeviceSpec(r"Arc.*Pro B60", 456, 98.3),           # 24 GB GDDR6, 192-bit, 19 Gbps; 197 INT8 TOPS
    DeviceSpec(r"Arc.*B580", 456, 116.5),             # 12 GB GDDR6, 192-bit, 19 Gbps; 233 INT8 TOPS
    DeviceSpec(r"Arc.*A770", 560, 137.6),             # 16 GB GDDR6, 256-bit, 17.5 Gbps; 512 XMX engines at 2.1 GHz
    DeviceSpec(r"Arc.*140V|Lunar Lake", 136.5, 33.5),   # Lunar Lake: LPDDR5X-8533, 128-bit; 67 INT8 TOPS
    DeviceSpec(r"RTX PRO 6000", 1792, 503),
    DeviceSpec(r"RTX 6000 Ada", 960, 364),
    DeviceSpec(r"RTX A6000", 768, 155),
    DeviceSpec(r"5090 Laptop", 896, 228),
    DeviceSpec(r"5090", 1792, 419),
    DeviceSpec(r"5080 Laptop", 896, 167),
    DeviceSpec(r"5080", 960, 225),
    DeviceSpec(r"5070 Ti", 896, 176),
    DeviceSpec(r"5070", 672, 123),
    DeviceSpec(r"5060 Ti", 448, 95),
    DeviceSpec(r"4090 Laptop", 576, 171),
    DeviceSpec(r"4090", 1008, 330),                   # G15396 calibration row
    DeviceSpec(r"4080 Laptop", 432, 136),
    DeviceSpec(r"4080 SUPER", 736, 209),
    DeviceSpec(r"4080", 717, 195),
    DeviceSpec(r"4070 Ti SUPER", 672, 176),
    DeviceSpec(r"4070 Ti", 504, 160),
    DeviceSpec(r"4070 Laptop", 256, 80),
    DeviceSpec(r"4070", 504, 117),
    DeviceSpec(r"4060 Ti", 288, 88),
    DeviceSpec(r"4060 Laptop", 256, 58),
    DeviceSpec(r"4060", 272, 61),
    DeviceSpec(r"3090 Ti", 1008, 160),
    DeviceSpec(r"3090", 936, 142),
    DeviceSpec(r"3080 Ti", 912, 136),
    DeviceSpec(r"3080 Laptop", 448, 100),
    DeviceSpec(r"3080", 760, 119),
    DeviceSpec(r"3070", 448, 81),
    DeviceSpec(r"3060", 360, 51),
    # AMD Radeon. pci.ids names Navi 31 "Radeon RX 7900 XT/7900 XTX/...": the first match (XTX) is taken; the
    # probe reads memory sizes exactly, so only the bandwidth guess is off for an XT.
    DeviceSpec(r"R9700", 640, 191),                   # Radeon AI PRO R9700 (RDNA 4, 32 GB)
    DeviceSpec(r"7900 XTX", 960, 123),
    DeviceSpec(r"7900 XT", 800, 103),
    DeviceSpec(r"9070 XT", 640, 195),
    # Strix Halo (Ryzen AI Max): 256-bit LPDDR5X-8000 shared with the CPU; 40 / 32 RDNA 3.5 CUs.
    DeviceSpec(r"8050S", 256, 47.5),
    DeviceSpec(r"Strix Halo|8060S", 256, 59.4),
    # Apple GPUs: binned Max parts first (fewer GPU cores, narrower bus); names carry the core count.
    DeviceSpec(r"M4 Max.*\b32-core", 410, 14.7),
    DeviceSpec(r"M4 Max", 546, 18.4),
    DeviceSpec(r"M4 Pro", 273, 9.2),
    DeviceSpec(r"M4\b", 120, 4.3),
    DeviceSpec(r"M3 Ultra", 819, 28.4),
    DeviceSpec(r"M3 Max.*\b30-core", 300, 12.3),
    DeviceSpec(r"M3 Max", 400, 16.4),
    DeviceSpec(r"M3 Pro", 150, 7.4),
    DeviceSpec(r"M3\b", 100, 4.1),
    DeviceSpec(r"M2 Ultra", 800, 27.2),               # G15396 calibration row
    DeviceSpec(r"M2 Max", 400, 13.6),
    DeviceSpec(r"M2 Pro", 200, 6.8),
    DeviceSpec(r"M2\b", 100, 3.6),
    DeviceSpec(r"M1 Ultra", 800, 21.0),
    DeviceSpec(r"M1 Max", 400, 10.4),
    DeviceSpec(r"M1 Pro", 200, 5.2),
    DeviceSpec(r"M1\b", 68, 2.6),
    DeviceSpec(r"M5", 153, 5.7),
)


@functools.cache               # a plan asks about the same few names dozens of times
def find_spec(name: str) -> DeviceSpec | None:
    for spec in GPU_SPECS:
        if re.search(spec.pattern, name, re.IGNORECASE):
            return spec
    return None


def gpu_bandwidth_gbps(gpu: Gpu) -> float:
    if gpu.memory_bandwidth_gbps:
        return gpu.memory_bandwidth_gbps
    spec = find_spec(gpu.name)
    return spec.bandwidth_gbps if spec else DEFAULT_GPU_BANDWIDTH_GBPS


def gpu_fp16_tflops(gpu: Gpu) -> float:
    spec = find_spec(gpu.name)
    return spec.fp16_tflops if spec else DEFAULT_GPU_FP16_TFLOPS


def ram_bandwidth_gbps(hardware: HardwareReport) -> float:
    if hardware.memory.bandwidth_gbps:
        return hardware.memory.bandwidth_gbps
    apple = [gpu for gpu in hardware.gpus if gpu.unified_memory]
    return gpu_bandwidth_gbps(apple[0]) if apple else DEFAULT_RAM_BANDWIDTH_GBPS


def is_datacenter(hardware: HardwareReport) -> bool:
    """Every GPU a datacenter part (H100, A100, L40S, MI300X...)."""
    specs = [find_spec(gpu.name) for gpu in hardware.gpus]
    return bool(specs) and all(spec is not None and spec.datacenter for spec in specs)


def serves_through_vllm_first(hardware: HardwareReport) -> bool:
    """Datacenter GPUs the vLLM gpt-oss recipe runs serve through vLLM first; others (L40S: Ada is work in
    progress in the recipe) through llama.cpp first, vLLM only when asked for."""
    return is_datacenter(hardware) and all(vllm_support(gpu)[0] == RECIPE for gpu in hardware.gpus)


# How far vLLM serves gpt-oss on a GPU, by the recipe (VR, vllm-project/recipes 8959cf6, 2026-08-21):
RECIPE, EXPERIMENTAL, UNSUPPORTED = "recipe", "experimental", "unsupported"
# AMD: MI300X/MI325X (gfx942), MI355X (gfx950), Radeon AI PRO R9700 (gfx1201).
VLLM_RECIPE_GFX = ("gfx942", "gfx950", "gfx1201")
VLLM_RECIPE_AMD_NAMES = r"MI3[0-9]{2}|R9700"
# Intel: Arc Pro B60 and B70 through vLLM's XPU build (VR: gpt-oss-20b.yaml verifies them), for gpt-oss-20b only.
VLLM_RECIPE_INTEL_NAMES = r"Arc.*Pro B[67]0"


# vLLM's CPU build serves gpt-oss-20b on Xeon 6 (VR: gpt-oss-20b.yaml): named "Xeon 6" and a number, unlike the
# "Xeon Gold 6248" of an older generation.
VLLM_RECIPE_CPUS = r"Xeon(?:\(R\))?\s+6\d{3}"


def vllm_serves_on_cpu(cpu_model: str) -> bool:
    return re.search(VLLM_RECIPE_CPUS, cpu_model) is not None


def vllm_support(gpu: Gpu) -> tuple[str, str]:
    """RECIPE, EXPERIMENTAL (vLLM may run it; the recipe lists it as work in progress) or UNSUPPORTED, and why."""
    arch = gpu.compute_capability or ""
    if gpu.vendor == "nvidia":
        major = arch.split(".")[0]
        if not major.isdigit() or int(major) < 8:
            return UNSUPPORTED, f"{gpu.name} (compute capability {arch or 'unknown'}) is older than Ampere (8.0)"
        if arch == "8.0" or major in ("9", "10"):     # A100, H100/H200, B200/B300
            return RECIPE, ""
        return EXPERIMENTAL, (f"vLLM's gpt-oss recipe lists {gpu.name} (compute capability {arch}: consumer Ampere, "
                              "Ada or RTX 50) as work in progress")
    if gpu.vendor == "amd" and (arch in VLLM_RECIPE_GFX or re.search(VLLM_RECIPE_AMD_NAMES, gpu.name)):
        return RECIPE, ""
    if gpu.vendor == "amd":
        # vLLM's ROCm build lacks gpt-oss's MoE kernels here: ~8 tok/s on Strix Halo where llama.cpp reads 49
        # (kyuz0/amd-strix-halo-vllm-toolboxes#10, #19).
        return UNSUPPORTED, (f"vLLM's gpt-oss recipe runs AMD Instinct MI300/MI355 and Radeon AI PRO R9700, "
                             f"not {gpu.name} ({arch or 'unknown gfx'})")
    if gpu.vendor == "intel" and re.search(VLLM_RECIPE_INTEL_NAMES, gpu.name):
        return RECIPE, ""
    if gpu.vendor == "intel":
        return UNSUPPORTED, f"vLLM's gpt-oss recipe runs Intel Arc Pro B60 and B70 (XPU), not {gpu.name}"
    return UNSUPPORTED, f"vLLM does not serve gpt-oss on {gpu.name}"
