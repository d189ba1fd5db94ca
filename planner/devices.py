"""Known accelerators: memory bandwidth, dense FP16 throughput and machine class, looked up by name.

Vendor spec-sheet figures (bandwidth in GB/s, dense FP16 tensor TFLOPS). The probe's own bandwidth reading
(NVML bus width x memory clock) wins over this table; the table wins over the conservative defaults.
"""
from __future__ import annotations

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
    DeviceSpec(r"MI355", 8000, 2300, True),
    DeviceSpec(r"MI325", 6000, 1307, True),
    DeviceSpec(r"MI300", 5300, 1307, True),
    DeviceSpec(r"GB10", 273, 62),                     # DGX Spark (SPARK)
    DeviceSpec(r"RTX PRO 6000", 1792, 503),
    DeviceSpec(r"RTX 6000 Ada", 960, 364),
    DeviceSpec(r"RTX A6000", 768, 155),
    DeviceSpec(r"5090 Laptop", 896, 210),
    DeviceSpec(r"5090", 1792, 419),
    DeviceSpec(r"5080 Laptop", 896, 150),
    DeviceSpec(r"5080", 960, 225),
    DeviceSpec(r"5070 Ti", 896, 176),
    DeviceSpec(r"5070", 672, 123),
    DeviceSpec(r"5060 Ti", 448, 94),
    DeviceSpec(r"4090 Laptop", 576, 150),
    DeviceSpec(r"4090", 1008, 165),                   # G15396 calibration row
    DeviceSpec(r"4080 Laptop", 432, 100),
    DeviceSpec(r"4080 SUPER", 736, 104),
    DeviceSpec(r"4080", 717, 97),
    DeviceSpec(r"4070 Ti SUPER", 672, 88),
    DeviceSpec(r"4070 Ti", 504, 80),
    DeviceSpec(r"4070 Laptop", 256, 58),
    DeviceSpec(r"4070", 504, 58),
    DeviceSpec(r"4060 Ti", 288, 44),
    DeviceSpec(r"4060 Laptop", 256, 44),
    DeviceSpec(r"4060", 272, 30),
    DeviceSpec(r"3090 Ti", 1008, 80),
    DeviceSpec(r"3090", 936, 71),
    DeviceSpec(r"3080 Ti", 912, 68),
    DeviceSpec(r"3080 Laptop", 448, 50),
    DeviceSpec(r"3080", 760, 59),
    DeviceSpec(r"3070", 448, 40),
    DeviceSpec(r"3060", 360, 25),
    DeviceSpec(r"7900 XTX", 960, 123),
    DeviceSpec(r"7900 XT", 800, 103),
    DeviceSpec(r"9070 XT", 640, 97),
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
    """Datacenter GPUs serve through vLLM; desktops and laptops through llama.cpp or Ollama."""
    specs = [find_spec(gpu.name) for gpu in hardware.gpus]
    return bool(specs) and all(spec is not None and spec.datacenter for spec in specs)


def supports_vllm(gpu: Gpu) -> tuple[bool, str]:
    """vLLM serves gpt-oss on NVIDIA Ampere (8.0) and newer and on AMD Instinct MI300/MI355 (VR)."""
    if gpu.vendor == "nvidia":
        major = int((gpu.compute_capability or "0").split(".")[0])
        if major >= 8:
            return True, ""
        return False, f"{gpu.name} (compute capability {gpu.compute_capability or 'unknown'}) is older than Ampere (8.0)"
    if gpu.vendor == "amd" and re.search(r"MI3[0-9]{2}", gpu.name):
        return True, ""
    return False, f"vLLM does not serve gpt-oss on {gpu.name}"
