"""LM Studio (--backend lmstudio): the plan's build and offload, and `up`, `bench`, `down` through a stand-in `lms`
(tests/fake_lms.py) whose server is the fake OpenAI server, as LM Studio's own runs apart from the shell."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from helpers import fixture_path, free_port

EXAMPLES = Path(__file__).parent.parent / "planner" / "examples"


def planned(run_cli, hardware: Path, model: str = "20b") -> dict:
    code, out, err = run_cli("plan", "--json", "--hardware", hardware, "--backend", "lmstudio", "--model", model)
    assert code == 0, err
    return json.loads(out)


def test_macs_load_the_mlx_build_with_everything_on_the_gpu(run_cli):
    launch = planned(run_cli, EXAMPLES / "apple-m4max-128gb.json", "120b")["launch"]
    assert launch["request"] == {"format": "mlx", "context_length": 32768, "gpu": "max", "identifier": "gpt-oss-120b"}
    assert launch["model_ref"] == "openai/gpt-oss-120b"


def test_a_small_gpu_gets_the_gguf_with_the_share_of_layers_that_fits(run_cli):
    doc = planned(run_cli, EXAMPLES / "laptop-rtx4060-8gb.json")
    request = doc["launch"]["request"]
    assert request["format"] == "gguf" and 0 < float(request["gpu"]) < 1
    assert float(request["gpu"]) <= doc["offload"]["gpu_layers"] / 24          # rounded down: never more
    assert planned(run_cli, fixture_path("cpu-only"))["launch"]["request"]["gpu"] == "off"


@pytest.fixture
def lms(tmp_path, monkeypatch) -> Path:
    """A stand-in `lms` on PATH; returns its state folder (calls.jsonl: every argv it was given)."""
    home = tmp_path / "lms-home"
    script = tmp_path / "bin" / "lms"
    script.parent.mkdir(exist_ok=True)
    script.write_text(f'#!/bin/sh\nexec {sys.executable} {Path(__file__).parent / "fake_lms.py"} "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{script.parent}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LMS_HOME", str(home))
    monkeypatch.delenv("GPTOSS_LMS", raising=False)
    return home


def calls(home: Path) -> list[list[str]]:
    return [json.loads(line) for line in (home / "calls.jsonl").read_text().splitlines()]


@pytest.fixture
def saved_plan(run_cli, tmp_path) -> Path:
    saved = tmp_path / "plan.json"
    saved.write_text(json.dumps(planned(run_cli, EXAMPLES / "rtx4090-desktop.json")))
    return saved


def test_up_starts_the_server_fetches_loads_benchmarks_and_down_undoes_it(run_cli, lms, saved_plan, state):
    port = free_port()
    code, out, err = run_cli("up", "--plan", saved_plan, "--port", port, "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["state"] == "running" and record["endpoint"]["model"] == "gpt-oss-20b"
    assert record["benchmark"]["decode_tokens_per_s"] > 0                    # over LM Studio's OpenAI API
    assert calls(lms) == [["server", "start", "--port", str(port), "--bind", "127.0.0.1"],
                          ["get", "openai/gpt-oss-20b", "--gguf", "-y"],
                          ["load", "openai/gpt-oss-20b", "--context-length", "32768", "--gpu", "max",
                           "--identifier", "gpt-oss-20b", "-y"]]
    assert httpx.get(f"http://127.0.0.1:{port}/v1/models").json()["data"] == [{"id": "gpt-oss-20b", "object": "model"}]
    code, out, err = run_cli("status", "--json")
    assert code == 0 and json.loads(out)[0]["name"] == record["name"]

    code, _, err = run_cli("down", record["name"])
    assert code == 0, err
    assert calls(lms)[3:] == [["unload", "gpt-oss-20b"], ["server", "stop"]]  # the model first, then our server
    assert state.records() == {}
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)


def test_a_failed_load_stops_the_server_it_started_and_says_what_lms_said(run_cli, lms, saved_plan, state,
                                                                        monkeypatch):
    monkeypatch.setenv("FAKE_LMS_FAIL", "load:Failed to load model: insufficient system resources")
    port = free_port()
    code, out, err = run_cli("up", "--plan", saved_plan, "--port", port)
    assert code == 4 and out == ""
    assert err.strip().endswith("LM Studio could not load openai/gpt-oss-20b: Error: Failed to load model: "
                                "insufficient system resources")
    assert calls(lms)[-1] == ["server", "stop"] and state.records() == {}
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)


def test_a_running_lm_studio_is_used_and_left_running(run_cli, lms, saved_plan, state):
    port = free_port()
    subprocess.run(["lms", "server", "start", "--port", str(port)], check=True, capture_output=True)
    try:
        code, out, err = run_cli("up", "--plan", saved_plan, "--port", port, "--no-bench", "--json")
        assert code == 0, err
        record = json.loads(out)
        assert any("already running" in w for w in record["warnings"])
        assert ["server", "start", "--port", str(port), "--bind", "127.0.0.1"] not in calls(lms)[1:]
        code, _, err = run_cli("down", record["name"])
        assert code == 0 and calls(lms)[-1] == ["unload", "gpt-oss-20b"]         # its server is not ours to stop
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models").json()["data"] == []
    finally:
        subprocess.run(["lms", "server", "stop"], capture_output=True)


def test_without_lm_studio_up_exits_4_with_where_to_get_it(run_cli, saved_plan, state, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GPTOSS_LMS", raising=False)
    code, _, err = run_cli("up", "--plan", saved_plan)
    assert code == 4 and "https://lmstudio.ai/download" in err and state.records() == {}


def test_lm_studio_is_never_opened_to_the_network(run_cli, lms, saved_plan, state):
    code, _, err = run_cli("up", "--plan", saved_plan, "--host", "0.0.0.0")
    assert code == 2 and "127.0.0.1 only" in err and not (lms / "calls.jsonl").exists()


@pytest.mark.parametrize("change, said", [
    (("request", "format"), "format"), (("request", "gpu"), "gpu"), (("request", "identifier"), "identifier"),
    (("argv", 1), "lms server start"),
])
def test_a_tampered_saved_plan_is_exit_2(run_cli, saved_plan, lms, state, change, said):
    doc = json.loads(saved_plan.read_text())
    doc["launch"][change[0]][change[1]] = "--gpu max; rm -rf ~"
    saved_plan.write_text(json.dumps(doc))
    code, _, err = run_cli("up", "--plan", saved_plan, "--dry-run")
    assert code == 2 and said in err and not (lms / "calls.jsonl").exists()


def test_a_saved_plan_fetches_gpt_oss_only(run_cli, saved_plan, lms, state):
    doc = json.loads(saved_plan.read_text())
    doc["launch"]["model_ref"] = "someone/else-7b"
    saved_plan.write_text(json.dumps(doc))
    code, _, err = run_cli("up", "--plan", saved_plan)
    assert code == 2 and "launch.model_ref 'someone/else-7b' is none of openai/gpt-oss-20b" in err
    assert not (lms / "calls.jsonl").exists()


def test_the_dry_run_shows_the_lms_commands(run_cli, lms, saved_plan):
    code, out, err = run_cli("up", "--plan", saved_plan, "--dry-run")
    assert code == 0, err
    assert "runs: " in out and "lms load openai/gpt-oss-20b --context-length 32768 --gpu max" in " ".join(out.split())


def test_a_lms_setting_that_names_a_directory_is_exit_2_naming_it(run_cli, state, monkeypatch, tmp_path):
    monkeypatch.setenv("GPTOSS_LMS", str(tmp_path))
    code, _, err = run_cli("up", "--backend", "lmstudio", "--no-bench")
    assert code == 2 and f"GPTOSS_LMS={tmp_path} is not a program this user can run" in err
    assert err.count("\n") == 1
