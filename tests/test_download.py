"""`gptoss-up` fetching the GGUF through huggingface_hub from a hub at the wire (tests/fake_hub.py):
progress, and Ctrl-C mid-download (nothing left running, no partial file, the next run completes).
Run as subprocesses: huggingface_hub reads HF_ENDPOINT and offline mode once, at import."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from helpers import fixture_path, free_port
from fake_hub import FakeHub

REPO, FILE = "ggml-org/gpt-oss-20b-GGUF", "gpt-oss-20b-mxfp4.gguf"
CLI = [sys.executable, "-c", "from gptoss_deploy.cli.app import main; main()"]


@pytest.fixture
def hub(smollm2, monkeypatch, tmp_path):
    server = FakeHub(REPO, FILE, smollm2)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield server
    server.released.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def plan_file(tmp_path, smollm2):
    """The CPU-only plan, sized for the file the fake hub serves (so the free-disk check is about it)."""
    out = subprocess.run([*CLI, "plan", "--hardware", str(fixture_path("cpu-only")), "--json"],
                         capture_output=True, text=True, check=True).stdout
    plan = json.loads(out)
    plan["memory"]["breakdown"]["weights"] = smollm2.stat().st_size
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    return path


def up(plan_file, port, **popen):
    return subprocess.Popen([*CLI, "up", "--plan", str(plan_file), "--port", str(port), "--no-bench", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def test_download_with_progress_then_serve(hub, plan_file, state, tmp_path, smollm2):
    port = free_port()
    out, err = up(plan_file, port).communicate(timeout=120)
    record = json.loads(out)
    assert record["state"] == "running", err
    assert f"downloading {FILE}: 100% of 0.1 GiB" in err     # huggingface_hub's progress, as our lines
    models = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()["data"]
    assert [m["id"] for m in models] == ["gpt-oss-20b"]
    # The hub served SmolLM2 under gpt-oss-20b's name: the engine's own report gives it away
    weights = next(f for f in record["memory"]["figures"] if f["part"] == "weights")
    assert weights["off_plan"] and weights["reported_bytes"] < smollm2.stat().st_size
    assert any("of weights in RAM, less than the plan's 11.3 GiB: likely the engine loaded other weights" in w
               for w in record["warnings"])


def interrupted_mid_download(hub, plan_file, signum):
    hub.hold_after_bytes = 2_000_000                       # the download waits there: the signal lands mid-way
    launcher = up(plan_file, free_port())
    deadline = time.monotonic() + 180
    while hub.bytes_sent < hub.hold_after_bytes:
        assert time.monotonic() < deadline and launcher.poll() is None
        time.sleep(0.05)
    launcher.send_signal(signum)
    out, err = launcher.communicate(timeout=180)
    hub.hold_after_bytes = None
    hub.released.set()
    return launcher.returncode, out, err


@pytest.mark.parametrize("signum, code, said", [(signal.SIGINT, 130, "interrupted"),
                                                (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_an_interrupted_download_leaves_no_half_state(hub, plan_file, state, tmp_path, signum, code, said):
    returncode, out, err = interrupted_mid_download(hub, plan_file, signum)
    assert returncode == code and err.strip().endswith(f"gptoss: error: {said}")
    assert json.loads(out)["error"]["code"] == "interrupted" and state.records() == {}
    # huggingface_hub 2.x removes its partial file when interrupted, and we remove the one 1.x keeps.
    assert list((tmp_path / "hf").rglob("*.incomplete")) == [] and list((tmp_path / "hf").rglob(FILE)) == []

    port = free_port()
    out, err = up(plan_file, port).communicate(timeout=120)
    assert json.loads(out)["state"] == "running", err
    assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200


def test_a_download_killed_outright_leaves_nothing_behind_after_the_next_run(hub, plan_file, state, tmp_path):
    returncode, _, _ = interrupted_mid_download(hub, plan_file, signal.SIGKILL)
    assert returncode == -signal.SIGKILL
    assert len(list((tmp_path / "hf").rglob("*.incomplete"))) == 1      # nobody was left to remove it
    port = free_port()
    out, err = up(plan_file, port).communicate(timeout=120)
    assert json.loads(out)["state"] == "running", err
    assert list((tmp_path / "hf").rglob("*.incomplete")) == []


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:{port}", "http://hub.invalid"],
                         ids=["nothing listening", "name does not resolve"])
def test_with_no_network_up_says_so_in_one_line(plan_file, state, tmp_path, monkeypatch, endpoint):
    monkeypatch.setenv("HF_ENDPOINT", endpoint.format(port=free_port()))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    out, err = up(plan_file, free_port()).communicate(timeout=120)
    lines = [line for line in err.splitlines() if not line.startswith("gptoss: fetching")]
    assert len(lines) == 1 and lines[0].startswith(f"gptoss: error: no network: cannot reach {endpoint[:12]}")
    assert "--gguf PATH" in lines[0] and "HF_HUB_OFFLINE" in lines[0]
    assert json.loads(out)["error"]["code"] == "backend" and state.records() == {}
