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


def test_download_with_progress_then_serve(hub, plan_file, state, tmp_path):
    port = free_port()
    out, err = up(plan_file, port).communicate(timeout=120)
    assert json.loads(out)["state"] == "running", err
    assert f"downloading {FILE}: 100% of 0.1 GiB" in err     # huggingface_hub's progress, as our lines
    models = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()["data"]
    assert [m["id"] for m in models] == ["gpt-oss-20b"]


def test_ctrl_c_during_download_leaves_no_half_state(hub, plan_file, state, tmp_path):
    hub.chunk_delay_s = 0.05                               # ~5 MB/s: time to interrupt
    launcher = up(plan_file, free_port())
    deadline = time.monotonic() + 30
    while hub.bytes_sent < 2_000_000:
        assert time.monotonic() < deadline and launcher.poll() is None
        time.sleep(0.05)
    launcher.send_signal(signal.SIGINT)
    out, err = launcher.communicate(timeout=30)
    assert launcher.returncode == 130 and err.strip().endswith("gptoss: error: interrupted")
    assert json.loads(out)["error"]["code"] == "interrupted" and state.records() == {}
    # huggingface_hub 2.x downloads into a per-process temporary file and removes it when interrupted.
    assert list((tmp_path / "hf").rglob("*.incomplete")) == [] and list((tmp_path / "hf").rglob(FILE)) == []

    hub.chunk_delay_s = 0.0
    port = free_port()
    out, err = up(plan_file, port).communicate(timeout=120)
    assert json.loads(out)["state"] == "running", err
    assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
