"""Nodes described by GPU type alone (`--gpu H100:8`): the common cloud GPUs, as the driver reports their memory.

A node built here goes through the same placement and prediction as a probed machine; its bandwidth and compute
come from planner.devices' table by name. The CPU side (cores, RAM) is a typical cloud node's, which plans
that keep the whole model on the GPUs (vLLM) do not depend on.
"""
from __future__ import annotations

from dataclasses import dataclass

from gptoss_deploy.planner.errors import UsageError
from gptoss_deploy.planner.hardware import HardwareReport, hardware_from_dict
from gptoss_deploy.planner.units import GIB, MIB

DRIVER_RESERVED_BYTES = 512 * MIB    # what the driver holds before an engine starts
RAM_PER_GPU_GIB = 128                # a typical cloud GPU node's RAM and cores per GPU
CORES_PER_GPU = 12


@dataclass(frozen=True)
class CloudGpu:
    name: str                 # as NVML / amdgpu name it, so planner.devices finds its bandwidth and compute
    vendor: str
    memory_mib: int           # total as nvidia-smi / amd-smi report it
    arch: str                 # compute capability, or the AMD gfx target


CLOUD_GPUS = {
    "A10G": CloudGpu("NVIDIA A10G", "nvidia", 23028, "8.6"),
    "L4": CloudGpu("NVIDIA L4", "nvidia", 23034, "8.9"),
    "L40S": CloudGpu("NVIDIA L40S", "nvidia", 46068, "8.9"),
    "A100-40GB": CloudGpu("NVIDIA A100-SXM4-40GB", "nvidia", 40960, "8.0"),
    "A100-80GB": CloudGpu("NVIDIA A100-SXM4-80GB", "nvidia", 81920, "8.0"),
    "H100": CloudGpu("NVIDIA H100 80GB HBM3", "nvidia", 81559, "9.0"),
    "H200": CloudGpu("NVIDIA H200", "nvidia", 143771, "9.0"),
    "B200": CloudGpu("NVIDIA B200", "nvidia", 183359, "10.0"),
    "MI300X": CloudGpu("AMD Instinct MI300X", "amd", 196592, "gfx942"),
}


def gpu_node(kind: CloudGpu, count: int, label: str, nodes: int = 1) -> HardwareReport:
    """COUNT GPUs of KIND in one node (NODES such nodes), as a hardware description (LABEL names it in messages)."""
    total = kind.memory_mib * MIB
    ram = RAM_PER_GPU_GIB * count * GIB
    return hardware_from_dict({
        "schema_version": 1, "os": "linux", "arch": "x86_64",
        "cpu": {"model": label, "physical_cores": CORES_PER_GPU * count, "logical_cores": 2 * CORES_PER_GPU * count},
        "memory": {"total_bytes": ram, "available_bytes": ram},
        "gpus": [{"index": i, "vendor": kind.vendor, "name": kind.name, "memory_total_bytes": total,
                  "memory_free_bytes": total - DRIVER_RESERVED_BYTES, "compute_capability": kind.arch,
                  "unified_memory": False} for i in range(count * nodes)],
        "disk": {"path": "/models", "free_bytes": 1000 * GIB}, "nodes": nodes,
    }, label)


def node_from_spec(spec: str, nodes: int = 1) -> HardwareReport:
    """`--gpu TYPE[:COUNT]` (H100, h100:8, MI300X:1) as a node, NODES of them with `--nodes`."""
    name, _, count = spec.partition(":")
    kind = next((gpu for key, gpu in CLOUD_GPUS.items() if key.lower() == name.strip().lower()), None)
    if kind is None or not (count or "1").isdigit() or not 1 <= int(count or 1) <= 16:
        raise UsageError(f"--gpu {spec[:40]!r}: give TYPE or TYPE:COUNT (1 to 16) with TYPE one of "
                         f"{', '.join(CLOUD_GPUS)}")
    label = f"{int(count or 1)} x {kind.name}" + (f", {nodes} nodes" if nodes > 1 else "")
    return gpu_node(kind, int(count or 1), label, nodes)
