"""Ollama: the real `ollama` client against a small NDJSON server (tests/fake_ollama.py), in-process or as `ollama serve`."""
from __future__ import annotations

import json
import threading

import psutil
import pytest

from gptoss_deploy.runtime.process import port_in_use
from gptoss_deploy.verify.bench import TIMINGS_TOLERANCE
from helpers import fixture_path, free_port, measured
from fake_ollama import FakeOllama
from fake_reply import REASONING_CHUNKS

CPU_ONLY = fixture_path("cpu-only")   # launched with --force: a fixed machine, whatever runs the tests


@pytest.fixture
def running_ollama(monkeypatch):
    """An Ollama the user already runs, at OLLAMA_HOST."""
    server = FakeOllama(("127.0.0.1", free_port()))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{server.server_address[1]}")
    yield server
    server.shutdown()
    server.server_close()


def up_ollama(run_cli, *extra):
    # A chosen context: never Ollama's 4096 default, and not capped for this machine's prefill either
    return run_cli("up", "--backend", "ollama", "--hardware", CPU_ONLY, "--force", "--context", "32768", *extra)


def test_up_uses_a_running_ollama_pulls_sets_the_context_and_benchmarks(run_cli, state, running_ollama):
    code, out, err = up_ollama(run_cli, "--json")
    assert code == 0, err
    record = json.loads(out)
    port = running_ollama.server_address[1]
    assert record["pid"] is None and record["endpoint"]["base_url"] == f"http://127.0.0.1:{port}/v1"
    assert "pulling gpt-oss:20b: 13.0 of 13.0 GB" in err
    # The planned context is baked into the model every client gets, never Ollama's 4096 default.
    created = running_ollama.models["gpt-oss:20b-ctx32768"]
    # num_batch as planned: Ollama would raise its own above 4k context, past the compute buffer the plan sized
    assert created["from"] == "gpt-oss:20b" and created["parameters"] == {"num_ctx": 32768, "num_batch": 512}
    bench = record["benchmark"]
    assert measured(bench) and bench["server_decode_tokens_per_s"] is not None
    agree = bench["decode_tokens_per_s"] == pytest.approx(bench["server_decode_tokens_per_s"], rel=TIMINGS_TOLERANCE)
    assert agree or (bench["verdict"] == "invalid" and "the server's own" in bench["reasons"][0])   # a busy machine
    chat = running_ollama.chats[-1]
    assert chat["think"] == "medium" and chat["options"]["num_predict"] == bench["output_tokens"]

    code, out, _ = up_ollama(run_cli, "--json", "--no-bench")
    assert code == 0 and json.loads(out)["created_at"] == record["created_at"]    # found, not redone
    assert run_cli("down", record["name"])[0] == 0
    assert port_in_use("127.0.0.1", port)            # the user's Ollama is not ours to stop


def test_unknown_tag_exits_4_with_ollamas_reason(run_cli, state, running_ollama):
    running_ollama.known = []
    code, _, err = up_ollama(run_cli, "--no-bench")
    assert code == 4 and "Ollama could not pull gpt-oss:20b: pull model manifest: file does not exist" in err
    assert state.records() == {}


def test_not_installed_and_not_running_says_how_to_install(run_cli, state, monkeypatch, tmp_path):
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("PATH", str(tmp_path))
    code, out, err = up_ollama(run_cli)
    assert code == 4 and out == "" and "Ollama is not installed: get it from https://ollama.com/download" in err


def test_starts_ollama_serve_with_the_planned_context_and_stops_it(run_cli, state, stand_in, monkeypatch):
    started = stand_in("ollama", "fake_ollama.py")
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    port = free_port()
    code, out, err = up_ollama(run_cli, "--port", port, "--no-bench", "--json")
    assert code == 0, err
    record = json.loads(out)
    env = json.loads(started.read_text())["env"]
    assert env["OLLAMA_HOST"] == f"127.0.0.1:{port}" and env["OLLAMA_CONTEXT_LENGTH"] == "32768"
    assert run_cli("down", record["name"])[0] == 0
    assert not psutil.pid_exists(record["pid"]) and not port_in_use("127.0.0.1", port)


def test_ollama_is_never_exposed_without_authentication(run_cli, state, stand_in, monkeypatch):
    stand_in("ollama", "fake_ollama.py")
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    code, _, err = up_ollama(run_cli, "--host", "0.0.0.0", "--port", free_port())
    assert code == 4 and "Ollama has no API keys" in err and state.records() == {}


def test_effort_sweep_asks_ollama_each_think_level(run_cli, state, running_ollama, monkeypatch):
    monkeypatch.setenv("FAKE_ANSWER", "Canberra")
    code, _, err = up_ollama(run_cli, "--no-bench")
    assert code == 0, err
    code, out, err = run_cli("bench", "--effort-sweep", "--json")
    assert code == 0, err
    efforts = json.loads(out)["effort_sweep"]["efforts"]
    tasks = len(efforts[0]["tasks"])
    asked = [chat["think"] for chat in running_ollama.chats]
    assert asked == ["low", "medium", "high"] * tasks          # each task at the three efforts in turn
    # Ollama's eval_count split by its thinking and content channels; the capital city is the one right answer
    assert [e["reasoning_tokens"] for e in efforts] == [REASONING_CHUNKS[e] * tasks for e in ("low", "medium", "high")]
    assert all(e["answer_tokens"] == tasks and e["correct"] == 1 for e in efforts)


def test_a_model_ollama_cannot_load_steps_down_the_context(run_cli, state, running_ollama, monkeypatch):
    monkeypatch.setenv("FAKE_OLLAMA_MAX_CTX", "10000")
    code, out, err = up_ollama(run_cli, "--no-bench", "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["endpoint"]["model"] == "gpt-oss:20b-ctx8192"
    assert [(a["context_length"], a["next_step"]) for a in record["attempts"]] == [(32768, "context 16,384"),
                                                                                   (16384, "context 8,192")]
    assert all("requires more system memory" in a["log_line"] for a in record["attempts"])
    assert "loading gpt-oss:20b-ctx8192" in err
    assert sorted(running_ollama.models) == ["gpt-oss:20b", "gpt-oss:20b-ctx8192"]   # the rungs that failed are gone


@pytest.mark.parametrize("batch", ["512", 0, True, 10**9])
def test_a_saved_plan_with_a_bad_num_batch_is_refused_before_anything_starts(run_cli, state, running_ollama,
                                                                            tmp_path, batch):
    code, out, err = run_cli("plan", "--backend", "ollama", "--hardware", CPU_ONLY, "--context", "32768", "--json")
    assert code == 0, err
    saved = json.loads(out)
    saved["launch"]["request"]["options"]["num_batch"] = batch
    (tmp_path / "plan.json").write_text(json.dumps(saved))
    code, _, err = run_cli("up", "--plan", tmp_path / "plan.json", "--force")
    assert code == 2 and "num_batch" in err and "Traceback" not in err
    assert running_ollama.models == {}                   # nothing pulled, nothing created
