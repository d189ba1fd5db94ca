"""Azure managed compute for gpt-oss: the GPU VM size the planner picks, by fitting vLLM on each size in turn (the
same fitting picks Hugging Face Inference Endpoints' instance).

Sizes from Azure's NC A100 v4, NC H100 v5 and ND H100 v5 series pages (GPU count and memory per GPU);
hourly prices are not in our sourced data, so a plan names the size and leaves the price to Azure's page.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gptoss_deploy.backends.vllm import VLLM
from gptoss_deploy.planner.catalog import ModelSpec
from gptoss_deploy.planner.gpus import CloudGpu, gpu_node
from gptoss_deploy.planner.hardware import HardwareReport
from gptoss_deploy.planner.placement import Placement, Rejection, fit_whole_model


@dataclass(frozen=True)
class AzureGpuSize:
    instance_type: str
    gpu_name: str
    gpus: int
    gpu_memory_gib: float
    compute_capability: str

    def hardware(self) -> HardwareReport:
        """The VM as a hardware description, fed to the same placement code as a probed machine."""
        kind = CloudGpu(self.gpu_name, "nvidia", int(self.gpu_memory_gib * 1024), self.compute_capability)
        return gpu_node(kind, self.gpus, self.instance_type)


# Fewest GPUs first (cost grows with them), and within a count the older generation first.
AZURE_GPU_SIZES = (
    AzureGpuSize("Standard_NC24ads_A100_v4", "NVIDIA A100 80GB PCIe", 1, 80, "8.0"),
    AzureGpuSize("Standard_NC40ads_H100_v5", "NVIDIA H100 NVL", 1, 94, "9.0"),
    AzureGpuSize("Standard_NC48ads_A100_v4", "NVIDIA A100 80GB PCIe", 2, 80, "8.0"),
    AzureGpuSize("Standard_NC80adis_H100_v5", "NVIDIA H100 NVL", 2, 94, "9.0"),
    AzureGpuSize("Standard_NC96ads_A100_v4", "NVIDIA A100 80GB PCIe", 4, 80, "8.0"),
    AzureGpuSize("Standard_ND96isr_H100_v5", "NVIDIA H100 80GB HBM3", 8, 80, "9.0"),
)


def choose_size(model: ModelSpec, context: int, sizes=AZURE_GPU_SIZES,
                service: str = "azure") -> tuple[Any, Placement] | Rejection:
    """The first of SIZES (each with .hardware(), in cost order) where vLLM holds MODEL at the full CONTEXT, else the
    one that holds the most context."""
    fitting = []
    for size in sizes:
        placed = fit_whole_model(VLLM.name, model, size.hardware(), context, VLLM.artifact(model))
        if isinstance(placed, Placement):
            if placed.context_length >= context:
                return size, placed
            fitting.append((size, placed))
    if fitting:
        return max(fitting, key=lambda pair: pair[1].context_length)
    return Rejection(service, model, f"{model.name} fits no {service} GPU size we know for vLLM", "GPU memory")
