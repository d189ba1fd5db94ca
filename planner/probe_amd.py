"""AMD GPUs from the amdgpu driver's sysfs files: memory (VRAM, and GTT for integrated GPUs), name, gfx target.

Read from a root directory (normally /), so tests feed a recorded tree through exactly this code. Where amdgpu is
not loaded there is nothing to read and no AMD GPU is reported.
  /sys/class/drm/renderD*/device/{vendor,device,mem_info_vram_total,mem_info_vram_used,mem_info_gtt_total,
                                  mem_info_gtt_used,product_name}
  /sys/class/kfd/kfd/topology/nodes/*/properties   gfx_target_version, drm_render_minor, cpu_cores_count
  /usr/share/hwdata/pci.ids (or /usr/share/misc/pci.ids)   the marketing name, as lspci shows it
"""
from __future__ import annotations

from pathlib import Path

from gptoss_deploy.planner.sysfs import number, pci_name, read_text
from gptoss_deploy.planner.units import gib

AMD_VENDOR = "0x1002"


def read_amd_gpus(root: Path, system_memory: tuple[int, int], visible: str | None, notes: list[str]) -> list[dict]:
    """AMD GPUs in HIP's order (render node order), limited by HIP_VISIBLE_DEVICES (VISIBLE: indices). An integrated
    GPU (Strix Halo, MI300A) is planned on its VRAM carve-out plus the GTT it may map from SYSTEM_MEMORY
    (total, available), flagged unified."""
    devices = []
    for render in sorted((root / "sys/class/drm").glob("renderD*"), key=lambda p: int(p.name[7:] or 0)):
        device = render / "device"
        if read_text(device / "vendor") == AMD_VENDOR and (device / "mem_info_vram_total").exists():
            devices.append((int(render.name[7:]), device))
    kfd = _kfd_nodes(root)
    gpus = []
    for hip_index, (minor, device) in enumerate(devices):
        if visible is not None and str(hip_index) not in [v.strip() for v in visible.split(",")]:
            continue
        gpus.append(_amd_gpu(root, len(gpus), device, kfd.get(minor, {}), system_memory, notes))
    if visible is not None and len(gpus) < len(devices):
        notes.append(f"HIP_VISIBLE_DEVICES={visible!r}: using {len(gpus)} of {len(devices)} AMD GPUs")
    return gpus


def _amd_gpu(root: Path, index: int, device: Path, node: dict[str, int], system_memory: tuple[int, int],
             notes: list[str]) -> dict:
    device_id = read_text(device / "device")
    name = (read_text(device / "product_name") or pci_name(root, AMD_VENDOR, device_id)
            or f"AMD GPU {device_id or '(unknown device)'}")
    vram_total, vram_used = number(device / "mem_info_vram_total"), number(device / "mem_info_vram_used")
    total, free = vram_total, max(0, vram_total - vram_used)
    # KFD gives an APU one node with both CPU cores and GPU SIMDs: its GPU works from system RAM through GTT.
    unified = node.get("cpu_cores_count", 0) > 0 and node.get("simd_count", 0) > 0
    if unified:
        gtt_total, gtt_used = number(device / "mem_info_gtt_total"), number(device / "mem_info_gtt_used")
        ram_total, ram_available = system_memory
        total += min(gtt_total, ram_total)
        free += min(max(0, gtt_total - gtt_used), ram_available)
        notes.append(f"{name}: integrated GPU: planned on its VRAM carve-out ({gib(vram_total)}) and GTT "
                     f"({gib(min(gtt_total, ram_total))}) together, shared with the CPU")
    return {"index": index, "vendor": "amd", "name": name, "memory_total_bytes": total,
            "memory_free_bytes": min(free, total), "memory_bandwidth_gbps": None,
            "compute_capability": _gfx(node.get("gfx_target_version")), "unified_memory": unified}


def _kfd_nodes(root: Path) -> dict[int, dict[str, int]]:
    """KFD topology nodes by DRM render minor: their integer properties."""
    nodes = {}
    for properties in (root / "sys/class/kfd/kfd/topology/nodes").glob("*/properties"):
        values = {}
        for line in read_text(properties).splitlines():
            key, _, value = line.partition(" ")
            if value.strip().isdigit():
                values[key] = int(value)
        if values.get("drm_render_minor"):
            nodes[values["drm_render_minor"]] = values
    return nodes


def _gfx(version: int | None) -> str | None:
    """KFD's gfx_target_version (major*10000 + minor*100 + stepping) as the LLVM target: 90402 -> gfx942."""
    if not version:
        return None
    major, minor, stepping = version // 10000, version // 100 % 100, version % 100
    return f"gfx{major}{minor:x}{stepping:x}"
