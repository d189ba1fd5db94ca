"""Intel GPUs through the probe, from recorded xe and i915 sysfs trees (an Arc Pro B60 on xe, an A770 on Intel's
out-of-tree i915, an A770 on mainline i915 that publishes no memory, a Lunar Lake integrated GPU), and the Intel
example machines planned and exported."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from gptoss_deploy.planner.hardware import load_hardware
from gptoss_deploy.planner.probe import probe

from helpers import fixture_path
from test_probe_amd import NoNvml

GIB = 1024**3
PCI_IDS = """\
# a slice of the hwdata PCI ID database
10de  NVIDIA Corporation
\te211  not Intel's
8086  Intel Corporation
\t56a0  DG2 [Arc A770]
\t64a0  Lunar Lake [Intel Arc Graphics 130V / 140V]
\te211  Battlemage G21 [Arc Pro B60]
"""


@pytest.fixture
def root(tmp_path):
    (tmp_path / "usr/share/hwdata").mkdir(parents=True)
    (tmp_path / "usr/share/hwdata/pci.ids").write_text(PCI_IDS)
    return tmp_path


def record_card(root: Path, card: int, slot: str, device_id: str, driver: str, vram_tiles: tuple[int, ...] = (),
                lmem: int | None = None, vendor: str = "0x8086") -> None:
    """/sys/class/drm/cardN -> its PCI function (device symlink), with the driver bound to it, as the kernel lays
    them out."""
    pci = root / "sys/devices/pci0000:00" / slot
    pci.mkdir(parents=True)
    (pci / "vendor").write_text(f"{vendor}\n")
    (pci / "device").write_text(f"0x{device_id}\n")
    drivers = root / "sys/bus/pci/drivers" / driver
    drivers.mkdir(parents=True, exist_ok=True)
    (pci / "driver").symlink_to(drivers)
    for tile, size in enumerate(vram_tiles):
        (pci / f"tile{tile}").mkdir()
        (pci / f"tile{tile}/physical_vram_size_bytes").write_text(f"{size}\n")
    card_dir = root / "sys/class/drm" / f"card{card}"
    card_dir.mkdir(parents=True)
    (card_dir / "device").symlink_to(pci)
    if lmem is not None:
        (card_dir / "lmem_total_bytes").write_text(f"{lmem}\n")
    (root / "sys/class/drm" / f"card{card}-DP-1").mkdir()            # a connector: not a card


def live(root, env=None):
    return probe(env=env or {}, nvml=NoNvml(), system="linux", machine="x86_64", root=root)


def test_an_arc_pro_b60_on_xe_is_read_with_its_local_memory_and_name(root):
    record_card(root, 1, "0000:03:00.0", "e211", "xe", vram_tiles=(24 * GIB,))
    report = live(root)
    [gpu] = report.gpus
    assert (gpu.vendor, gpu.name, gpu.memory_total_bytes, gpu.unified_memory) == (
        "intel", "Intel Battlemage G21 [Arc Pro B60]", 24 * GIB, False)
    assert gpu.compute_capability is None and any("xe publishes no free memory" in n for n in report.notes)


def test_an_a770_on_intels_own_i915_reads_lmem_and_on_mainline_i915_is_left_out_with_a_note(root):
    record_card(root, 0, "0000:03:00.0", "56a0", "i915", lmem=16 * GIB)
    record_card(root, 1, "0000:04:00.0", "56a0", "i915")                      # mainline i915: no size anywhere
    report = live(root)
    assert [(g.name, g.memory_total_bytes) for g in report.gpus] == [("Intel DG2 [Arc A770]", 16 * GIB)]
    assert any("publishes no memory size on this kernel" in n and "--hardware" in n for n in report.notes)


def test_a_lunar_lake_integrated_gpu_is_planned_on_half_the_ram_as_unified_memory(root):
    record_card(root, 0, "0000:00:02.0", "64a0", "xe")
    report = live(root)
    [gpu] = report.gpus
    assert gpu.unified_memory and gpu.memory_total_bytes == report.memory.total_bytes // 2
    assert any("integrated GPU" in n for n in report.notes)


def test_ze_affinity_mask_limits_the_gpus_and_other_vendors_cards_are_not_read(root):
    record_card(root, 0, "0000:03:00.0", "e211", "xe", vram_tiles=(24 * GIB,))
    record_card(root, 1, "0000:04:00.0", "e211", "xe", vram_tiles=(24 * GIB,))
    record_card(root, 2, "0000:05:00.0", "e211", "nvidia", vendor="0x10de")
    assert len(live(root).gpus) == 2
    limited = live(root, {"ZE_AFFINITY_MASK": "1"})
    assert len(limited.gpus) == 1 and any("ZE_AFFINITY_MASK='1': using 1 of 2" in n for n in limited.notes)


def test_a_hardware_file_with_an_intel_gpu_and_no_compute_capability_is_accepted(tmp_path):
    doc = json.loads(fixture_path("radeon-7900xtx").read_text())
    doc["gpus"][0].update(vendor="intel", name="Intel Arc Pro B60 Graphics")
    del doc["gpus"][0]["compute_capability"]
    (tmp_path / "arc.json").write_text(json.dumps(doc))
    assert load_hardware(tmp_path / "arc.json").gpus[0].vendor == "intel"


@pytest.mark.parametrize("machine, model, on_gpu", [("arc-pro-b60-workstation", "gpt-oss-120b", True),
                                                    ("arc-a770-desktop", "gpt-oss-20b", True),
                                                    ("lunar-lake-laptop", "gpt-oss-20b", True),
                                                    ("xeon6-server", "gpt-oss-120b", False)])
def test_the_intel_examples_plan_on_llama_cpp_and_name_its_intel_builds(run_cli, machine, model, on_gpu):
    code, out, err = run_cli("plan", "--hardware", fixture_path(machine), "--local", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["model"], doc["backend"], doc["memory"]["gpu_bytes"] > 0) == (model, "llamacpp", on_gpu)
    if on_gpu:
        assert any("SYCL or Vulkan on Intel" in need["need"] for need in doc["prerequisites"])


def test_an_intel_node_exports_with_intels_device_plugin_and_llama_cpps_sycl_image(run_cli):
    code, out, err = run_cli("export", "--format", "kubernetes", "--hardware", fixture_path("arc-pro-b60-workstation"),
                             "--model", "20b", "--backend", "llamacpp")
    assert code == 0, err
    container = next(o for o in yaml.safe_load_all(out) if o and o["kind"] == "Deployment")[
        "spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith("ghcr.io/ggml-org/llama.cpp:server-intel-b")
    assert container["resources"]["limits"]["gpu.intel.com/i915"] == 1
    code, out, err = run_cli("export", "--format", "compose", "--hardware", fixture_path("arc-pro-b60-workstation"),
                             "--model", "20b", "--backend", "llamacpp")
    service = next(iter(yaml.safe_load(out)["services"].values()))
    assert code == 0 and service["devices"] == ["/dev/dri"] and service["group_add"] == ["render"]
