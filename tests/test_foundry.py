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


def test_foundry_is_planned_for_the_20b_on_an_nvidia_gpu_of_16_gb_or_more(run_cli):
    code, doc, err = plan_code(run_cli, EXAMPLES / "rtx4090-desktop.json")
    assert code == 0, err
    assert doc["launch"]["argv"] == ["foundry_service", "--alias", "gpt-oss-20b", "--host", "127.0.0.1",
                                     "--port", "5273"]
    for hardware, model, said in ((EXAMPLES / "rtx4090-desktop.json", "120b", "has gpt-oss-20b only"),
                                  (EXAMPLES / "laptop-rtx4060-8gb.json", "20b", "16 GB or more"),
                                  (EXAMPLES / "apple-m4max-128gb.json", "20b", "NVIDIA GPU"),
                                  (fixture_path("cpu-only"), "20b", "no GPU")):
        code, doc, err = plan_code(run_cli, hardware, model)
        assert code == 3 and said in doc["error"]["message"], (hardware, err)


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
    assert "Foundry Local picked gpt-oss-20b-cuda-gpu:1 for this device" in log and "downloading" in log
    code, _, err = run_cli("bench", record["name"], "--effort-sweep")
    assert code == 2 and "Foundry Local takes no reasoning effort per request" in err
    code, _, err = run_cli("down", record["name"])
    assert code == 0, err
    assert record_file.read_text().splitlines() == ["download gpt-oss-20b-cuda-gpu:1", "load gpt-oss-20b-cuda-gpu:1",
                                                    "start_web_service", "stop_web_service",
                                                    "unload gpt-oss-20b-cuda-gpu:1"]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)


def test_foundry_is_never_opened_to_the_network(run_cli, saved_plan, state):
    code, _, err = run_cli("up", "--plan", saved_plan, "--host", "0.0.0.0")
    assert code == 2 and "127.0.0.1 only" in err and state.records() == {}


def test_a_tampered_saved_plan_is_exit_2(run_cli, saved_plan, state):
    doc = json.loads(saved_plan.read_text())
    doc["launch"]["argv"][2] = "gpt-oss-120b; rm -rf ~"
    saved_plan.write_text(json.dumps(doc))
    code, _, err = run_cli("up", "--plan", saved_plan, "--dry-run")
    assert code == 2 and "foundry_service --alias gpt-oss-20b" in err
