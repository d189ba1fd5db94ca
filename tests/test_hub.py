"""The model download step of `gptoss-up` on llama.cpp, without the network: a hub cache laid out as
huggingface_hub writes it, offline mode, and the free-disk check."""
from __future__ import annotations

import json
import os

import httpx
import pytest

from helpers import fixture_path, free_port

CPU_ONLY = fixture_path("cpu-only")   # launched with --force: a fixed machine, whatever runs the tests
REPO, FILE = "ggml-org/gpt-oss-20b-GGUF", "gpt-oss-20b-mxfp4.gguf"


@pytest.fixture
def cached_model(tmp_path, smollm2):
    """The hub cache holding FILE (the tiny SmolLM2 under gpt-oss's name: what is served is not the point)."""
    repo = tmp_path / "hf" / f"models--{REPO.replace('/', '--')}"
    snapshot = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snapshot.name)
    os.symlink(smollm2, snapshot / FILE)
    return snapshot / FILE


def test_dry_run_lists_the_download_and_its_size(run_cli):
    code, out, _ = run_cli("up", "--hardware", CPU_ONLY, "--dry-run", "--json")
    download = json.loads(out)["downloads"][0]
    assert code == 0 and download["repo"] == REPO and download["missing"] == [FILE]
    assert download["bytes"] == json.loads(out)["plan"]["memory"]["breakdown"]["weights"]


def test_offline_mode_without_the_model_cached_says_so_and_exits_4(run_cli, state, stand_in):
    stand_in("llama-server")                      # run_cli sets HF_HUB_OFFLINE=1 and an empty cache
    code, out, err = run_cli("up", "--hardware", CPU_ONLY, "--force", "--port", free_port())
    assert code == 4 and out == ""
    assert f"{REPO}/{FILE} is not in the model cache" in err and "HF_HUB_OFFLINE is set" in err
    assert "--gguf PATH" in err and "check the network" not in err and state.records() == {}


def test_not_enough_disk_exits_4_before_downloading(run_cli, state, stand_in, tmp_path):
    stand_in("llama-server")
    _, saved, _ = run_cli("plan", "--hardware", CPU_ONLY, "--json")
    plan = json.loads(saved)
    plan["memory"]["breakdown"]["weights"] = 10**16           # 10 PB: no disk here holds that
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    code, _, err = run_cli("up", "--plan", path, "--port", free_port())   # never the plan's default port: it may be taken
    assert code == 4 and "needs 9313225.7 GiB in" in err and "HF_HUB_CACHE" in err and state.records() == {}


def test_cached_model_is_served_from_the_hub_cache(run_cli, state, cached_model):
    code, out, _ = run_cli("up", "--hardware", CPU_ONLY, "--dry-run")
    assert code == 0 and "(already downloaded)" in out and str(cached_model) in out
    port = free_port()
    code, out, err = run_cli("up", "--hardware", CPU_ONLY, "--force", "--port", port, "--no-bench", "--json")
    assert code == 0, err
    models = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()["data"]
    assert [m["id"] for m in models] == ["gpt-oss-20b"]
