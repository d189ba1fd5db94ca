"""Azure managed compute for gpt-oss: the GPU VM size the planner picks, by fitting vLLM on each size in turn.

Sizes from Azure's NC A100 v4, NC H100 v5 and ND H100 v5 series pages (GPU count and memory per GPU);
hourly prices are not in our sourced data, so a plan names the size and leaves the price to Azure's page.
"""
from __future__ import annotations

from dataclasses import dataclass

from gptoss_deploy.backends.vllm import VLLM
from gptoss_deploy.planner.catalog import ModelSpec
from gptoss_deploy.planner.hardware import HardwareReport, hardware_from_dict
from gptoss_deploy.planner.placement import Placement, Rejection, fit_whole_model
from gptoss_deploy.planner.units import GIB

DRIVER_RESERVED_BYTES = 512 * 1024**2   # what the driver holds before vLLM starts


@dataclass(frozen=True)
class AzureGpuSize:
    instance_type: str
    gpu_name: str
    gpus: int
    gpu_memory_gib: float
    compute_capability: str
    vcpus: int
    ram_gib: int

    def hardware(self) -> HardwareReport:
        """The VM as a hardware description, fed to the same placement code as a probed machine."""
        total = int(self.gpu_memory_gib * GIB)
        return hardware_from_dict({
            "schema_version": 1, "os": "linux", "arch": "x86_64",
            "cpu": {"model": self.instance_type, "physical_cores": self.vcpus // 2, "logical_cores": self.vcpus},
            "memory": {"total_bytes": self.ram_gib * GIB, "available_bytes": self.ram_gib * GIB},
            "gpus": [{"index": i, "vendor": "nvidia", "name": self.gpu_name, "memory_total_bytes": total,
                      "memory_free_bytes": total - DRIVER_RESERVED_BYTES,
                      "compute_capability": self.compute_capability, "unified_memory": False}
                     for i in range(self.gpus)],
            "disk": {"path": "/mnt", "free_bytes": 1000 * GIB},
        }, self.instance_type)


# Fewest GPUs first (cost grows with them), and within a count the older generation first.
AZURE_GPU_SIZES = (
    AzureGpuSize("Standard_NC24ads_A100_v4", "NVIDIA A100 80GB PCIe", 1, 80, "8.0", 24, 220),
    AzureGpuSize("Standard_NC40ads_H100_v5", "NVIDIA H100 NVL", 1, 94, "9.0", 40, 320),
    AzureGpuSize("Standard_NC48ads_A100_v4", "NVIDIA A100 80GB PCIe", 2, 80, "8.0", 48, 440),
    AzureGpuSize("Standard_NC80adis_H100_v5", "NVIDIA H100 NVL", 2, 94, "9.0", 80, 640),
    AzureGpuSize("Standard_NC96ads_A100_v4", "NVIDIA A100 80GB PCIe", 4, 80, "8.0", 96, 880),
    AzureGpuSize("Standard_ND96isr_H100_v5", "NVIDIA H100 80GB HBM3", 8, 80, "9.0", 96, 1900),
)


def choose_size(model: ModelSpec, context: int) -> tuple[AzureGpuSize, Placement] | Rejection:
    """The first size (in cost order) where vLLM holds MODEL at the full CONTEXT, else the one with most context."""
    fitting = []
    for size in AZURE_GPU_SIZES:
        placed = fit_whole_model(VLLM.name, model, size.hardware(), context, VLLM.artifact(model))
        if isinstance(placed, Placement):
            if placed.context_length >= context:
                return size, placed
            fitting.append((size, placed))
    if fitting:
        return max(fitting, key=lambda pair: pair[1].context_length)
    return Rejection("azure", model, f"{model.name} fits no Azure GPU size we know for vLLM", "GPU memory")
