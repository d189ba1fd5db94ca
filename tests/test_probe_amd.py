"""AMD GPUs through the probe, from recorded amdgpu sysfs trees (a discrete Radeon, an Instinct, a Strix Halo APU)."""
from __future__ import annotations

from pathlib import Path

import pytest

from gptoss_deploy.backends import REGISTRY
from gptoss_deploy.planner.hardware import load_hardware
from gptoss_deploy.planner.plan import plan
from gptoss_deploy.planner.probe import probe

from helpers import constraints, fixture_path

GIB = 1024**3
MIB = 1024**2
PCI_IDS = """\
# a slice of the hwdata PCI ID database
10de  NVIDIA Corporation
\t744c  this is NVIDIA's list, not AMD's
1002  Advanced Micro Devices, Inc. [AMD/ATI]
\t1586  Strix Halo [Radeon Graphics / 8050S / 8060S]
\t744c  Navi 31 [Radeon RX 7900 XT/7900 XTX/7900 GRE/7900M]
\t74a1  Aqua Vanjaram [Instinct MI300X]
1022  Advanced Micro Devices, Inc. [AMD]
"""


class NoNvml:
    """A machine without the NVIDIA driver: NVML cannot start."""

    class NVMLError(Exception):
        pass

    def nvmlInit(self):
        raise self.NVMLError("NVML Shared Library Not Found")


def record_gpu(root: Path, minor: int, device_id: str, vram: tuple[int, int], gtt: tuple[int, int] = (0, 0),
               gfx: int = 110000, apu: bool = False, vendor: str = "0x1002") -> None:
    device = root / "sys/class/drm" / f"renderD{minor}" / "device"
    device.mkdir(parents=True)
    for name, value in {"vendor": vendor, "device": device_id, "mem_info_vram_total": vram[0],
                        "mem_info_vram_used": vram[1], "mem_info_gtt_total": gtt[0], "mem_info_gtt_used": gtt[1]}.items():
        (device / name).write_text(f"{value}\n")
    node = root / "sys/class/kfd/kfd/topology/nodes" / str(minor - 127)
    node.mkdir(parents=True)
    (node / "properties").write_text(f"cpu_cores_count {16 if apu else 0}\nsimd_count 80\n"
                                     f"gfx_target_version {gfx}\ndrm_render_minor {minor}\n")


@pytest.fixture
def root(tmp_path):
    (tmp_path / "usr/share/hwdata").mkdir(parents=True)
    (tmp_path / "usr/share/hwdata/pci.ids").write_text(PCI_IDS)
    return tmp_path


def live(root, env=None):
    return probe(env=env or {}, nvml=NoNvml(), system="linux", machine="x86_64", root=root)


def test_a_discrete_radeon_is_read_with_its_vram_and_gfx_target(root):
    record_gpu(root, 128, "0x744c", (24 * GIB, 300 * MIB), gtt=(32 * GIB, 0), gfx=110000)
    [gpu] = live(root).gpus
    assert (gpu.vendor, gpu.name, gpu.compute_capability, gpu.unified_memory) == (
        "amd", "Navi 31 [Radeon RX 7900 XT/7900 XTX/7900 GRE/7900M]", "gfx1100", False)
    assert (gpu.memory_total_bytes, gpu.memory_free_bytes) == (24 * GIB, 24 * GIB - 300 * MIB)   # GTT not counted


def test_strix_halo_is_planned_on_vram_and_gtt_as_unified_memory_with_a_note(root):
    record_gpu(root, 128, "0x1586", (512 * MIB, 100 * MIB), gtt=(124 * GIB, 2 * GIB), gfx=110501, apu=True)
    report = live(root)
    [gpu] = report.gpus
    assert gpu.unified_memory and gpu.compute_capability == "gfx1151"
    ram_total, ram_available = report.memory.total_bytes, report.memory.available_bytes
    assert gpu.memory_total_bytes == 512 * MIB + min(124 * GIB, ram_total)
    assert gpu.memory_free_bytes == min(412 * MIB + min(122 * GIB, ram_available), gpu.memory_total_bytes)
    assert any("integrated GPU: planned on its VRAM carve-out (0.5 GiB) and GTT" in n for n in report.notes)


def test_instinct_gpus_come_in_hip_order_and_hip_visible_devices_limits_them(root):
    for minor in (136, 128, 144):              # listed out of order on disk
        record_gpu(root, minor, "0x74a1", (192 * GIB, minor * MIB), gfx=90402)
    report = live(root)
    assert [g.memory_free_bytes for g in report.gpus] == [192 * GIB - m * MIB for m in (128, 136, 144)]
    assert {(g.name, g.compute_capability) for g in report.gpus} == {("Aqua Vanjaram [Instinct MI300X]", "gfx942")}
    visible = live(root, {"HIP_VISIBLE_DEVICES": "2"})
    assert [(g.index, g.memory_free_bytes) for g in visible.gpus] == [(0, 192 * GIB - 144 * MIB)]
    assert "HIP_VISIBLE_DEVICES='2': using 1 of 3 AMD GPUs" in visible.notes


def test_other_vendors_render_nodes_and_an_unknown_id_are_handled(root):
    record_gpu(root, 128, "0x2684", (24 * GIB, 0), vendor="0x10de")     # an NVIDIA card's render node
    record_gpu(root, 129, "0x7551", (32 * GIB, 0), gfx=120001)          # not in this pci.ids
    [gpu] = live(root).gpus
    assert gpu.name == "AMD GPU 0x7551" and gpu.compute_capability == "gfx1201"


def test_no_amdgpu_means_no_gpu_and_a_cpu_plan(root):
    report = live(root)
    assert report.gpus == [] and "no usable GPU found: planning for the CPU only" in report.notes


@pytest.mark.parametrize("fixture", ["radeon-7900xtx", "mi300x", "strix-halo-128gb"])
def test_recorded_amd_fixtures_have_the_shape_the_probe_writes(root, fixture):
    """The hand-recorded fixtures agree with what the probe produces for the same sysfs: same keys, same types."""
    record_gpu(root, 128, "0x744c", (24 * GIB, 0))
    probed = live(root).to_json()["gpus"][0]
    recorded = load_hardware(fixture_path(fixture)).to_json()["gpus"][0]
    assert probed.keys() == recorded.keys()
    assert plan(load_hardware(fixture_path(fixture)), constraints(), REGISTRY).chosen.placement is not None
