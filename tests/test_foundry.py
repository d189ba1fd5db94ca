"""Foundry Local (--backend foundry): what it is planned for, the real SDK's native runtime as far as it runs offline,
and `up`, `bench`, `down` through a stand-in of the SDK past the catalog (tests/fake_sdks/foundry_local_sdk)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from helpers import fixture_path, free_port

EXAMPLES = Path(__file__).parent.parent / "planner" / "examples"
FAKE_SDK = Path(__file__).parent / "fake_sdks"


def plan_code(run_cli, hardware: Path, model: str = "20b") -> tuple[int, dict, str]:
    code, out, err = run_cli("plan", "--json", "--hardware", hardware, "--backend", "foundry", "--model", model)
    return code, json.loads(out), err


def test_foundry_plans_its_cuda_variant_on_an_nvidia_gpu_of_16_gb_or_more(run_cli):
    code, doc, err = plan_code(run_cli, EXAMPLES / "rtx4090-desktop.json")
    assert code == 0, err
    assert doc["launch"]["argv"] == ["foundry_service", "--alias", "gpt-oss-20b", "--variant", "gpt-oss-20b-cuda-gpu:1",
                                     "--host", "127.0.0.1", "--port", "5273"]
    assert doc["memory"]["gpu_bytes"] > 0 and "its CUDA variant gpt-oss-20b-cuda-gpu:1" in " ".join(doc["reasons"])
    code, doc, err = plan_code(run_cli, EXAMPLES / "rtx4090-desktop.json", "120b")
    assert code == 3 and "has gpt-oss-20b only" in doc["error"]["message"], err


@pytest.mark.parametrize("machine, why", [(EXAMPLES / "laptop-rtx4060-8gb.json", "under the 16 GB"),
                                          (EXAMPLES / "apple-m4max-128gb.json", "needs an NVIDIA GPU"),
                                          (fixture_path("cpu-only"), "needs an NVIDIA GPU")])
def test_elsewhere_foundry_plans_its_cpu_variant_in_ram_with_its_own_size_and_speed(run_cli, machine, why):
    code, doc, err = plan_code(run_cli, machine)
    assert code == 0, err
    assert doc["launch"]["argv"][3:5] == ["--variant", "gpt-oss-20b-generic-cpu:1"]
    assert doc["memory"]["gpu_bytes"] == 0 and doc["offload"].get("gpu_layers") in (None, 0)
    assert doc["memory"]["breakdown"]["weights"] == int(12.26e9)             # the catalog's 12.26 GB
    reason = next(r for r in doc["reasons"] if "its CPU variant" in r)
    assert why in reason and "Foundry's ONNX runtime is not calibrated" in reason
    llamacpp = json.loads(run_cli("plan", "--json", "--hardware", machine, "--backend", "llamacpp", "--model", "20b",
                                  "--context", str(doc["context_length"]))[1])
    if not llamacpp["memory"]["gpu_bytes"]:                      # on the CPU alike: the speed is the CPU's
        assert doc["predicted"]["decode_tokens_per_s"] == pytest.approx(
            llamacpp["predicted"]["decode_tokens_per_s"], rel=0.1)


@pytest.fixture
def saved_plan(run_cli, tmp_path) -> Path:
    saved = tmp_path / "plan.json"
    saved.write_text(json.dumps(plan_code(run_cli, EXAMPLES / "rtx4090-desktop.json")[1]))
    return saved


def test_the_real_runtime_starts_here_and_an_unreachable_catalog_is_exit_4(run_cli, saved_plan, state, tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))       # Foundry Local's own files
    port = free_port()
    code, out, err = run_cli("up", "--plan", saved_plan, "--port", port)
    assert code == 4 and out == ""
    assert "Foundry Local's catalog has no gpt-oss-20b (it is fetched from Azure: check the network)" in err
    assert state.records() == {}


def test_up_serves_benchmarks_and_down_unloads(run_cli, saved_plan, state, tmp_path, monkeypatch):
    record_file = tmp_path / "foundry-steps"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FAKE_SDK), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("FAKE_FOUNDRY_RECORD", str(record_file))
    port = free_port()
    code, out, err = run_cli("up", "--plan", saved_plan, "--port", port, "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["state"] == "running" and record["endpoint"]["model"] == "gpt-oss-20b"
    assert record["benchmark"]["decode_tokens_per_s"] > 0
    log = Path(record["log"]).read_text()
    assert "Foundry Local serves gpt-oss-20b-cuda-gpu:1" in log and "downloading" in log
    assert record.get("plan_applies", True) and record["benchmark"]["predicted_decode_tokens_per_s"]
    code, _, err = run_cli("bench", record["name"], "--effort-sweep")
    assert code == 2 and "Foundry Local takes no reasoning effort per request" in err
    code, _, err = run_cli("down", record["name"])
    assert code == 0, err
    assert record_file.read_text().splitlines() == ["select gpt-oss-20b-cuda-gpu:1", "download gpt-oss-20b-cuda-gpu:1",
                                                    "load gpt-oss-20b-cuda-gpu:1", "start_web_service",
                                                    "stop_web_service", "unload gpt-oss-20b-cuda-gpu:1"]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)


def test_a_variant_foundry_swapped_is_said_and_not_judged_by_the_plan(run_cli, saved_plan, state, tmp_path,
                                                                      monkeypatch):
    """foundry-local issues 895, 1109, 1121: a catalog that offers only CPU variants on a machine with the GPU."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FAKE_SDK), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("FAKE_FOUNDRY_VARIANTS", "gpt-oss-20b-generic-cpu:1")
    code, out, err = run_cli("up", "--plan", saved_plan, "--port", free_port(), "--json")
    assert code == 0, err
    record = json.loads(out)
    said = [w for w in record["warnings"] if w.startswith("Foundry Local loaded gpt-oss-20b-generic-cpu:1, not the "
                                                          "planned gpt-oss-20b-cuda-gpu:1")]
    assert said and "held to no prediction" in said[0]
    assert record["plan_applies"] is False and record["benchmark"]["predicted_decode_tokens_per_s"] is None
    assert "Foundry Local offers no gpt-oss-20b-cuda-gpu:1 here" in Path(record["log"]).read_text()
    assert "measurement" not in record            # nothing kept to calibrate the CUDA plan with a CPU run
    run_cli("down", record["name"])


def test_foundry_is_never_opened_to_the_network(run_cli, saved_plan, state):
    code, _, err = run_cli("up", "--plan", saved_plan, "--host", "0.0.0.0")
    assert code == 2 and "127.0.0.1 only" in err and state.records() == {}


def test_a_tampered_saved_plan_is_exit_2(run_cli, saved_plan, state):
    doc = json.loads(saved_plan.read_text())
    doc["launch"]["argv"][2] = "gpt-oss-120b; rm -rf ~"
    saved_plan.write_text(json.dumps(doc))
    code, _, err = run_cli("up", "--plan", saved_plan, "--dry-run")
    assert code == 2 and "foundry_service --alias gpt-oss-20b --variant" in err
    doc["launch"]["argv"][2], doc["launch"]["argv"][4] = "gpt-oss-20b", "gpt-oss-20b-evil:1"
    saved_plan.write_text(json.dumps(doc))
    assert run_cli("up", "--plan", saved_plan, "--dry-run")[0] == 2
