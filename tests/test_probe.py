"""The probe: live on this machine (no GPU), and through its readers with recorded NVML and sysctl answers."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from gptoss_deploy.planner.probe import _visible_order, metal_working_set_bytes, probe, read_apple_gpu, read_nvidia_gpus

GIB = 1024**3


class RecordedNvml:
    """The slice of the NVML library the probe calls, answering from recorded device data."""

    class NVMLError(Exception):
        pass

    NVML_CLOCK_MEM = 2

    def __init__(self, devices, fail_init=None):
        self.devices, self.fail_init, self.shutdowns = devices, fail_init, 0

    def nvmlInit(self):
        if self.fail_init:
            raise self.NVMLError(self.fail_init)

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetCount(self):
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i):
        return self.devices[i]

    def nvmlDeviceGetUUID(self, d):
        return d["uuid"]

    def nvmlDeviceGetName(self, d):
        return d["name"].encode()    # older NVML bindings return bytes

    def nvmlDeviceGetMemoryInfo(self, d):
        if d["total"] is None:
            raise self.NVMLError("Not Supported")
        return SimpleNamespace(total=d["total"], free=d["free"], used=d["total"] - d["free"])

    def nvmlDeviceGetCudaComputeCapability(self, d):
        return d["cc"]

    def nvmlDeviceGetMemoryBusWidth(self, d):
        if d["bus"] is None:
            raise self.NVMLError("Not Supported")
        return d["bus"]

    def nvmlDeviceGetMaxClockInfo(self, d, clock):
        assert clock == self.NVML_CLOCK_MEM
        return d["mem_mhz"]


RTX_4090 = {"uuid": "GPU-aaaa1111", "name": "NVIDIA GeForce RTX 4090", "total": 25757220864,
            "free": 25300000000, "cc": (8, 9), "bus": 384, "mem_mhz": 10501}
GB10 = {"uuid": "GPU-cccc3333", "name": "NVIDIA GB10", "total": None, "free": None, "cc": (12, 1), "bus": None,
        "mem_mhz": None}   # DGX Spark: NVML answers "Not Supported" for its memory
H100 = {"uuid": "GPU-bbbb2222", "name": "NVIDIA H100 80GB HBM3", "total": 85520809984,
        "free": 84900000000, "cc": (9, 0), "bus": 5120, "mem_mhz": 2619}


def test_nvml_gpu_gets_bandwidth_from_bus_width_and_memory_clock():
    notes: list[str] = []
    nvml = RecordedNvml([RTX_4090, H100])
    gpus = read_nvidia_gpus(nvml, None, notes)
    assert [g["name"] for g in gpus] == ["NVIDIA GeForce RTX 4090", "NVIDIA H100 80GB HBM3"]
    assert gpus[0]["memory_bandwidth_gbps"] == pytest.approx(1008, rel=0.01)    # spec sheet: 1008 GB/s
    assert gpus[1]["memory_bandwidth_gbps"] == pytest.approx(3352, rel=0.01)    # spec sheet: 3.35 TB/s
    assert gpus[0]["compute_capability"] == "8.9" and gpus[0]["memory_free_bytes"] == 25300000000
    assert nvml.shutdowns == 1 and notes == []


@pytest.mark.parametrize("visible,expected", [
    ("1", ["NVIDIA H100 80GB HBM3"]),
    ("1,0", ["NVIDIA H100 80GB HBM3", "NVIDIA GeForce RTX 4090"]),
    ("GPU-aaaa", ["NVIDIA GeForce RTX 4090"]),
    ("", []),
    ("-1", []),
    ("0,7,1", ["NVIDIA GeForce RTX 4090"]),       # CUDA stops at the first invalid entry
])
def test_cuda_visible_devices_is_honoured_and_renumbered(visible, expected):
    notes: list[str] = []
    gpus = read_nvidia_gpus(RecordedNvml([RTX_4090, H100]), visible, notes)
    assert [g["name"] for g in gpus] == expected
    assert [g["index"] for g in gpus] == list(range(len(expected)))
    if len(expected) < 2:
        assert "CUDA_VISIBLE_DEVICES" in notes[0]


def test_no_driver_gives_a_cpu_only_report_with_a_note():
    notes: list[str] = []
    assert read_nvidia_gpus(RecordedNvml([], fail_init="Driver Not Loaded"), None, notes) == []
    assert notes == ["no NVIDIA driver answered (NVML: Driver Not Loaded)"]


def test_live_probe_on_this_machine_never_crashes(tmp_path):
    report = probe(env={"HF_HOME": str(tmp_path / "hf")})
    assert report.cpu.logical_cores >= 1 and report.memory.total_bytes > 0
    assert report.disk.path == str(tmp_path / "hf" / "hub") and report.disk.free_bytes > 0
    if not report.gpus:
        assert "planning for the CPU only" in report.notes[-1]


def _sysctl(answers: dict):
    def run(argv):
        key = " ".join(argv)
        if key not in answers:
            raise FileNotFoundError(argv[0])
        return answers[key]
    return run


def test_apple_gpu_is_bounded_by_the_metal_working_set():
    run = _sysctl({"sysctl -n machdep.cpu.brand_string": "Apple M4 Max\n", "sysctl -n iogpu.wired_limit_mb": "0\n",
                   "system_profiler SPDisplaysDataType -json": '{"SPDisplaysDataType": [{"sppci_cores": "40"}]}'})
    gpus = read_apple_gpu(run, 128 * GIB, 100 * GIB, [])
    assert gpus[0]["name"] == "Apple M4 Max (40-core GPU)"
    assert gpus[0]["memory_total_bytes"] == 96 * GIB and gpus[0]["memory_free_bytes"] == 96 * GIB
    assert gpus[0]["unified_memory"] is True


def test_raised_wired_limit_is_read_back():
    assert metal_working_set_bytes(16 * GIB, 14336) == 14 * GIB
    assert metal_working_set_bytes(16 * GIB, 0) == int(16 * GIB * 2 / 3)


def test_apple_without_sysctl_answers_falls_back_to_cpu_with_a_note():
    notes: list[str] = []
    assert read_apple_gpu(_sysctl({}), 16 * GIB, 8 * GIB, notes) == []
    assert "Metal working-set limit" in notes[0]


def test_visible_order_by_uuid_prefix():
    assert _visible_order("GPU-bbbb,GPU-aaaa", ["GPU-aaaa1111", "GPU-bbbb2222"]) == [1, 0]


def test_a_gpu_whose_memory_nvml_cannot_report_is_planned_on_unified_system_memory():
    notes = []
    [gpu] = read_nvidia_gpus(RecordedNvml([GB10]), None, notes, (128 * GIB, 120 * GIB))
    assert gpu["unified_memory"] and (gpu["memory_total_bytes"], gpu["memory_free_bytes"]) == (128 * GIB, 120 * GIB)
    assert notes == ["NVIDIA GB10: NVML reports no memory of its own (Not Supported): planned on the system's "
                     "unified memory (128.0 GiB), shared with the CPU"]


def test_example_machines_print_as_hardware_files_that_plan(run_cli, tmp_path):
    code, out, err = run_cli("probe", "--example", "strix-halo-128gb")
    assert code == 0, err
    (tmp_path / "halo.json").write_text(out)
    code, planned, err = run_cli("plan", "--hardware", tmp_path / "halo.json", "--json")
    assert code == 0, err
    assert json.loads(planned)["model"] == "gpt-oss-120b"


def test_an_unknown_example_is_exit_2_listing_the_examples(run_cli):
    code, out, err = run_cli("probe", "--example", "h100")
    assert code == 2 and out == ""
    assert "no example machine 'h100'; choose one of: 2x-h100, 8x-h100," in err and "strix-halo-128gb" in err


def test_a_new_gpu_vendor_is_one_record_and_one_reader(run_cli, monkeypatch, tmp_path):
    """A vendor gptoss does not know (Moore Threads), registered as the next one would be (a Vendor record, a reader
    in GPU_READERS): the live probe
    reports its GPU, the planner plans on it, and a Kubernetes export asks for its device plugin's resource, with no
    other module taught its name."""
    from gptoss_deploy.planner import probe as probe_module
    from gptoss_deploy.planner.vendors import GPU_VENDORS, Vendor

    mthreads = Vendor("mthreads", "MUSA_VISIBLE_DEVICES", 512 * 2**20, per_layer_ms=0.1, prefill_efficiency=0.2,
                      kubernetes_resource="mthreads.com/vgpu", container_devices=("/dev/dri",), name_marks=("MTT",))
    card = {"index": 0, "vendor": "mthreads", "name": "MTT S4000", "memory_total_bytes": 48 * 2**30,
            "memory_free_bytes": 47 * 2**30, "memory_bandwidth_gbps": 768.0}
    monkeypatch.setitem(GPU_VENDORS, "mthreads", mthreads)
    monkeypatch.setattr(probe_module, "GPU_READERS", [lambda sources, notes: [card]])
    code, out, err = run_cli("probe", "--json")
    assert code == 0, err
    machine = tmp_path / "mtt.json"
    machine.write_text(out)
    assert [(g["vendor"], g["name"]) for g in json.loads(out)["gpus"]] == [("mthreads", "MTT S4000")]
    code, out, err = run_cli("plan", "--json", "--hardware", machine, "--model", "20b", "--backend", "llamacpp")
    plan = json.loads(out)
    assert code == 0 and [d["device"] for d in plan["memory"]["devices"] if d["device"] != "cpu"] == ["gpu0"]
    code, out, err = run_cli("export", "--format", "kubernetes", "--hardware", machine, "--model", "20b",
                             "--backend", "llamacpp", "--image", "registry.example/llama.cpp:server-musa")
    assert code == 0, err
    assert "mthreads.com/vgpu: 1" in out and "image: registry.example/llama.cpp:server-musa" in out
    monkeypatch.delitem(GPU_VENDORS, "mthreads")
    assert run_cli("plan", "--hardware", machine)[0] == 2          # an unregistered vendor is a bad file
