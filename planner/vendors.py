"""What differs between GPU makers, one record each. A new vendor is one record here, one reader in
planner/probe.py's GPU_READERS, and recorded hardware fixtures; the planner, the launchers and the exports read
these records, never a vendor's name.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from gptoss_deploy.planner.units import MIB


@dataclass(frozen=True)
class Vendor:
    name: str                        # as hardware reports write it
    # the variable that limits which of its GPUs a process sees, numbered as that process will number them
    visible_devices: str | None
    # each GPU's driver context and library workspaces: CUDA's is 0.3-0.5 GiB, Metal's smaller (estimates, not
    # measured on gpt-oss)
    runtime_bytes: int
    per_layer_ms: float              # decode's fixed cost per layer per token (planner/throughput.py)
    # the share of its dense FP16 peak (planner/devices.py) llama.cpp's prefill reaches at depth 0 on 20b
    prefill_efficiency: float | None
    kubernetes_resource: str | None  # its device plugin's resource
    kubernetes_product_label: str | None = None   # the node label that names the GPU product
    container_devices: tuple[str, ...] = ()       # device files a container is given (compose `devices`)
    container_groups: tuple[str, ...] = ()        # groups a container joins to open them (compose `group_add`)
    compose_driver: str | None = None             # compose's device reservation driver
    name_marks: tuple[str, ...] = ()              # words in its GPUs' names as its drivers report them

    @property
    def reaches_containers(self) -> bool:
        """Whether a container can use its GPUs: a runtime hands them in, or its device files can be."""
        return bool(self.compose_driver or self.container_devices)


NVIDIA = Vendor(
    "nvidia", "CUDA_VISIBLE_DEVICES", 512 * MIB,
    per_layer_ms=0.0734,                   # G15396 RTX 4090 + SPARK GB10 (20b)
    prefill_efficiency=0.180,              # RTX 4090 pp2048 8022 at 330 TFLOPS (G15396)
    kubernetes_resource="nvidia.com/gpu",
    kubernetes_product_label="nvidia.com/gpu.product",     # NVIDIA's GPU feature discovery
    compose_driver="nvidia",               # the NVIDIA container toolkit hands the GPUs in by id
    name_marks=("NVIDIA", "Tesla", "Quadro", "GeForce", "TITAN"))
AMD = Vendor(
    "amd", "HIP_VISIBLE_DEVICES", 512 * MIB,
    per_layer_ms=0.157,                    # STX33 Strix Halo 120b (ROCm); the RX 7900 XT 20b report is held out
    prefill_efficiency=0.300,              # Strix Halo 120b pp2048 998 (STX33) at 47.5 TFLOPS
    kubernetes_resource="amd.com/gpu",
    container_devices=("/dev/kfd", "/dev/dri"), container_groups=("video",),   # AMD's ROCm docker guide
    name_marks=("AMD", "Radeon", "Instinct"))     # pci.ids names put the product in brackets: "Navi 31 [Radeon RX ..."
# No published gpt-oss row on an Intel GPU was found (docs/sources.md, INTEL): the per-layer cost and the prefill
# share are AMD's and NVIDIA's, estimates until this machine's own benchmark calibrates them (planner/calibration.py).
INTEL = Vendor(
    "intel", "ZE_AFFINITY_MASK", 512 * MIB,       # Level Zero's device mask: SYCL builds and vLLM's XPU path read it
    per_layer_ms=0.157,                    # estimate: AMD's (a non-CUDA discrete GPU through llama.cpp)
    prefill_efficiency=0.180,              # estimate: NVIDIA's share of the XMX FP16 peak
    kubernetes_resource="gpu.intel.com/i915",      # Intel's GPU device plugin (gpu.intel.com/xe on xe-driven nodes)
    container_devices=("/dev/dri",), container_groups=("render",),   # Intel's container guides: --device /dev/dri
    name_marks=("Intel", "Arc"))
APPLE = Vendor(
    "apple", None, 256 * MIB,
    per_layer_ms=0.211,                    # G15396 M2 Ultra 120b
    prefill_efficiency=0.663,              # M2 Ultra 120b pp2048 1245 at 27.2 TFLOPS of shader FP32 (G15396)
    kubernetes_resource=None, name_marks=("Apple",))
# The CPU as a device, where no GPU computes (layers or experts in RAM): not a GPU vendor, but the same figures.
CPU = Vendor("cpu", None, 0, per_layer_ms=0.293,       # IK1075 Ryzen 9 7950X, 16 threads
             prefill_efficiency=None, kubernetes_resource=None)

GPU_VENDORS = {vendor.name: vendor for vendor in (NVIDIA, AMD, INTEL, APPLE)}
DEVICE_KINDS = {**GPU_VENDORS, CPU.name: CPU}


def vendor_named(gpu_name: str) -> Vendor | None:
    """Whose GPU GPU_NAME is (a saved plan keeps names, not vendors); None: no record's words are in it."""
    words = set(re.findall(r"[A-Za-z]+", gpu_name))
    return next((vendor for vendor in GPU_VENDORS.values() if words & set(vendor.name_marks)), None)
