"""Intel GPUs from the xe and i915 drivers' sysfs files: local memory, name, and whether the GPU is integrated.

Read from a root directory (normally /), so tests feed a recorded tree through exactly this code.
  /sys/class/drm/card*/device/{vendor,device,driver}      the PCI function and the driver bound to it
  /sys/class/drm/card*/device/tile*/physical_vram_size_bytes   xe: a discrete GPU's local memory, per tile
  /sys/class/drm/card*/lmem_total_bytes                    i915: the same, from Intel's out-of-tree driver only
  /usr/share/hwdata/pci.ids (or /usr/share/misc/pci.ids)   the marketing name, as lspci shows it
An integrated GPU (at PCI 00:02.0, the CPU's own) has no local memory: it is planned on a share of system RAM.
Mainline i915 publishes no memory size for a discrete Arc: that GPU is named in a note and left out.
"""
from __future__ import annotations

from pathlib import Path

from gptoss_deploy.planner.sysfs import number, pci_name, read_text
from gptoss_deploy.planner.units import gib

INTEL_VENDOR = "0x8086"
DRIVERS = ("xe", "i915")
INTEGRATED_SLOT = "0000:00:02.0"     # where Intel puts the CPU's own GPU
# An integrated GPU's share of RAM: Windows gives an Intel iGPU up to half of system memory as shared GPU memory,
# and the Linux drivers map as much; planned at that (an estimate, not measured on gpt-oss).
SHARED_RAM_SHARE = 0.5


def read_intel_gpus(root: Path, system_memory: tuple[int, int], visible: str | None, notes: list[str]) -> list[dict]:
    """Intel GPUs in the cards' order, limited by ZE_AFFINITY_MASK (VISIBLE: indices)."""
    found = []
    for card in sorted((root / "sys/class/drm").glob("card*"), key=_card_number):
        device = card / "device"
        driver = (device / "driver").resolve().name if (device / "driver").exists() else ""
        if not card.name[4:].isdigit() or read_text(device / "vendor") != INTEL_VENDOR or driver not in DRIVERS:
            continue
        found.append((card, device, driver))
    gpus = []
    for level_zero_index, (card, device, driver) in enumerate(found):
        if visible is not None and str(level_zero_index) not in [v.strip() for v in visible.split(",")]:
            continue
        gpu = _intel_gpu(root, len(gpus), card, device, driver, system_memory, notes)
        if gpu is not None:
            gpus.append(gpu)
    if visible is not None and len(gpus) < len(found):
        notes.append(f"ZE_AFFINITY_MASK={visible!r}: using {len(gpus)} of {len(found)} Intel GPUs")
    return gpus


def _intel_gpu(root: Path, index: int, card: Path, device: Path, driver: str, system_memory: tuple[int, int],
               notes: list[str]) -> dict | None:
    device_id = read_text(device / "device")
    name = pci_name(root, INTEL_VENDOR, device_id) or f"Intel GPU {device_id or '(unknown device)'}"
    name = name if "Intel" in name else f"Intel {name}"           # pci.ids names the product alone
    integrated = device.resolve().name == INTEGRATED_SLOT
    if integrated:
        total, available = system_memory
        share = int(total * SHARED_RAM_SHARE)
        notes.append(f"{name}: integrated GPU: planned on {gib(share)} of system RAM, shared with the CPU")
        return {"index": index, "vendor": "intel", "name": name, "memory_total_bytes": share,
                "memory_free_bytes": min(share, available), "memory_bandwidth_gbps": None, "unified_memory": True}
    vram = _local_memory(card, device)
    if not vram:
        notes.append(f"{name} ({driver}) publishes no memory size on this kernel (mainline i915 has none): left "
                     "out; write it into a hardware file (gptoss probe --json > machine.json, then add the GPU) "
                     "and plan with --hardware machine.json")
        return None
    notes.append(f"{name}: {driver} publishes no free memory: planned on its total ({gib(vram)})")
    return {"index": index, "vendor": "intel", "name": name, "memory_total_bytes": vram, "memory_free_bytes": vram,
            "memory_bandwidth_gbps": None, "unified_memory": False}


def _local_memory(card: Path, device: Path) -> int:
    """xe: each tile's physical VRAM (what igt's xe_sysfs tests read); else Intel's out-of-tree i915's total."""
    tiles = sorted(device.glob("tile*/physical_vram_size_bytes"))
    return sum(number(tile) for tile in tiles) or number(card / "lmem_total_bytes")


def _card_number(card: Path) -> int:
    digits = card.name[4:]
    return int(digits) if digits.isdigit() else 1 << 30
