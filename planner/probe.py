"""Read this machine once: CPU, RAM, disk, NVIDIA GPUs through NVML, AMD GPUs through amdgpu's sysfs
(planner.probe_amd), Apple unified memory through sysctl.

Each reader takes what it reads from as an argument (the NVML module, a command runner, the environment),
so tests feed recorded outputs through exactly this code.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gptoss_deploy.planner.hardware import SCHEMA_VERSION, HardwareReport, hardware_from_dict
from gptoss_deploy.planner.probe_amd import read_amd_gpus
from gptoss_deploy.planner.probe_intel import read_intel_gpus
from gptoss_deploy.planner.units import GIB, gib
from gptoss_deploy.planner.vendors import AMD, INTEL, NVIDIA

Runner = Callable[[list[str]], str]


def run_command(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True).stdout


def probe(env: Mapping[str, str] = os.environ, nvml=None, run: Runner = run_command,
          system: str | None = None, machine: str | None = None, root: Path = Path("/")) -> HardwareReport:
    """The live machine as a HardwareReport; a missing driver or tool becomes a note, never a crash."""
    import psutil

    system = (system or platform.system()).lower()
    notes: list[str] = []
    vm = psutil.virtual_memory()
    report = {
        "schema_version": SCHEMA_VERSION,
        "os": {"darwin": "darwin", "windows": "windows"}.get(system, "linux"),
        "arch": _arch(machine or platform.machine()),
        "cpu": {"model": _cpu_model(system, run),
                "physical_cores": psutil.cpu_count(logical=False) or 1,
                "logical_cores": psutil.cpu_count(logical=True) or 1},
        "memory": {"total_bytes": vm.total, "available_bytes": vm.available},
        "gpus": [],
        "disk": read_disk(model_cache_dir(env)),
        "notes": notes,
    }
    sources = Sources(env, nvml, run, root, system, report["arch"], (vm.total, vm.available))
    report["gpus"] = next(filter(None, (read(sources, notes) for read in GPU_READERS)), [])
    if not report["gpus"]:
        notes.append("no usable GPU found: planning for the CPU only")
    return hardware_from_dict(report, "probe")


@dataclass(frozen=True)
class Sources:
    """What the GPU readers read from: the environment, NVML, a command runner, the filesystem's root, the system
    and its memory (total, available), which integrated GPUs share."""
    env: Mapping[str, str]
    nvml: Any
    run: Runner
    root: Path
    system: str
    arch: str
    system_memory: tuple[int, int]


def _apple(sources: Sources, notes: list[str]) -> list[dict]:
    if sources.system != "darwin" or sources.arch != "arm64":
        return []
    return read_apple_gpu(sources.run, *sources.system_memory, notes)


def _nvidia(sources: Sources, notes: list[str]) -> list[dict]:
    if sources.system == "darwin":          # no NVIDIA driver there
        return []
    return read_nvidia_gpus(sources.nvml, sources.env.get(NVIDIA.visible_devices), notes, sources.system_memory)


def _amd(sources: Sources, notes: list[str]) -> list[dict]:
    return read_amd_gpus(sources.root, sources.system_memory, sources.env.get(AMD.visible_devices), notes)


def _intel(sources: Sources, notes: list[str]) -> list[dict]:
    return read_intel_gpus(sources.root, sources.system_memory, sources.env.get(INTEL.visible_devices), notes)


# The GPU readers, asked in turn: the first that finds GPUs describes them (a machine with a discrete NVIDIA or AMD
# GPU beside an Intel CPU's integrated one is planned on the discrete one). A new vendor (planner/vendors.py) adds
# its reader here.
GPU_READERS: list[Callable[[Sources, list[str]], list[dict]]] = [_apple, _nvidia, _amd, _intel]


def _arch(machine: str) -> str:
    return {"amd64": "x86_64", "aarch64": "arm64"}.get(machine.lower(), machine.lower())


def _cpu_model(system: str, run: Runner) -> str:
    try:
        if system == "darwin":
            return run(["sysctl", "-n", "machdep.cpu.brand_string"]).strip()
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or "unknown CPU"


def model_cache_dir(env: Mapping[str, str]) -> Path:
    """Where Hugging Face keeps models (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub)."""
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"])
    home = Path(env["HF_HOME"]) if env.get("HF_HOME") else Path.home() / ".cache" / "huggingface"
    return home / "hub"


def read_disk(path: Path) -> dict:
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return {"path": str(path), "free_bytes": shutil.disk_usage(existing).free}


# --- NVIDIA --------------------------------------------------------------------------------------

def read_nvidia_gpus(nvml, visible: str | None, notes: list[str],
                     system_memory: tuple[int, int] | None = None) -> list[dict]:
    """NVIDIA GPUs as CUDA will number them under CUDA_VISIBLE_DEVICES. SYSTEM_MEMORY (total, available) stands
    in for a GPU whose memory NVML cannot report: one that shares the system's (GB10, DGX Spark)."""
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError:
            notes.append("nvidia-ml-py is not installed: NVIDIA GPUs cannot be read")
            return []
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as err:
        notes.append(f"no NVIDIA driver answered (NVML: {err})")
        return []
    try:
        handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
        uuids = [_text(nvml.nvmlDeviceGetUUID(h)) for h in handles]
        chosen = _visible_order(visible, uuids)
        if visible is not None and len(chosen) < len(handles):
            notes.append(f"CUDA_VISIBLE_DEVICES={visible!r}: using {len(chosen)} of {len(handles)} GPUs")
        return [_nvidia_gpu(nvml, handles[i], cuda_index, system_memory, notes) for cuda_index, i in enumerate(chosen)]
    except nvml.NVMLError as err:
        notes.append(f"NVML failed while reading GPUs ({err}): planning without them")
        return []
    finally:
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError:
            pass


def _visible_order(visible: str | None, uuids: list[str]) -> list[int]:
    """Physical indices in CUDA order: CUDA_VISIBLE_DEVICES takes indices or UUID prefixes, stops at a bad one."""
    if visible is None:
        return list(range(len(uuids)))
    order: list[int] = []
    for entry in (e.strip() for e in visible.split(",")):
        if entry.isdigit() and int(entry) < len(uuids):
            order.append(int(entry))
        elif entry.startswith("GPU-") and (matches := [i for i, u in enumerate(uuids) if u.startswith(entry)]):
            order.append(matches[0])
        else:
            break   # CUDA ignores this entry and everything after it (e.g. "-1" hides all GPUs)
    return order


def _nvidia_gpu(nvml, handle, cuda_index: int, system_memory: tuple[int, int] | None, notes: list[str]) -> dict:
    name = _text(nvml.nvmlDeviceGetName(handle))
    major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
    try:
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        total, free, unified = memory.total, memory.free, False
    except nvml.NVMLError as err:
        if system_memory is None:
            raise
        # GB10 (DGX Spark) has no memory of its own: NVML answers "Not Supported" (as nvtop and gpustat found)
        (total, free), unified = system_memory, True
        notes.append(f"{name}: NVML reports no memory of its own ({err}): planned on the system's unified memory "
                     f"({gib(total)}), shared with the CPU")
    return {
        "index": cuda_index, "vendor": "nvidia", "name": name,
        "memory_total_bytes": total, "memory_free_bytes": free,
        "memory_bandwidth_gbps": _nvidia_bandwidth_gbps(nvml, handle),
        "compute_capability": f"{major}.{minor}", "unified_memory": unified,
    }


def _nvidia_bandwidth_gbps(nvml, handle) -> float | None:
    """Bus width x memory clock x 2 (NVML reports the clock before the double data rate)."""
    try:
        bus_bits = nvml.nvmlDeviceGetMemoryBusWidth(handle)
        clock_mhz = nvml.nvmlDeviceGetMaxClockInfo(handle, nvml.NVML_CLOCK_MEM)
    except nvml.NVMLError:
        return None
    return round(clock_mhz * 2 * bus_bits / 8 / 1000, 1) if bus_bits and clock_mhz else None


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --- Apple silicon -------------------------------------------------------------------------------

def metal_working_set_bytes(total_bytes: int, wired_limit_mb: int) -> int:
    """What Metal may wire: iogpu.wired_limit_mb when set, else macOS's default share of RAM
    (recommendedMaxWorkingSetSize: about 2/3 of RAM up to 36 GiB, 3/4 above)."""
    if wired_limit_mb > 0:
        return wired_limit_mb * 1024 * 1024
    return int(total_bytes * (0.75 if total_bytes > 36 * GIB else 2 / 3))


def read_apple_gpu(run: Runner, total_bytes: int, available_bytes: int, notes: list[str]) -> list[dict]:
    try:
        chip = run(["sysctl", "-n", "machdep.cpu.brand_string"]).strip()
        wired_mb = int(run(["sysctl", "-n", "iogpu.wired_limit_mb"]).strip() or 0)
    except (OSError, subprocess.SubprocessError, ValueError) as err:
        notes.append(f"could not read the Metal working-set limit ({err}): planning for the CPU only")
        return []
    cores = _apple_gpu_cores(run)
    name = f"{chip} ({cores}-core GPU)" if cores else chip
    working_set = metal_working_set_bytes(total_bytes, wired_mb)
    return [{
        "index": 0, "vendor": "apple", "name": name,
        "memory_total_bytes": working_set, "memory_free_bytes": min(working_set, available_bytes),
        "unified_memory": True,
    }]


def _apple_gpu_cores(run: Runner) -> int | None:
    try:
        displays = json.loads(run(["system_profiler", "SPDisplaysDataType", "-json"]))
        return int(displays["SPDisplaysDataType"][0]["sppci_cores"])
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, IndexError, TypeError):
        return None
