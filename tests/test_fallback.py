"""The fallback ladder's first rung: `gptoss-up` plans again at the next smaller context when the server runs out of
memory while loading (the stand-in llama-server fails as llama.cpp does above FAKE_SERVER_MAX_CTX), says so, and
records each attempt; failures a smaller plan cannot fix end the launch as before."""
from __future__ import annotations

import json

import pytest

from gptoss_deploy.backends.fallback import memory_failure, smaller_context

from helpers import free_port
from test_gguf import write_gguf


@pytest.fixture
def llama_server(stand_in):
    return stand_in("llama-server")


@pytest.fixture
def gpt_oss_gguf(tmp_path):
    """A gpt-oss-20b GGUF header (128k context): the stand-in server never reads its tensors."""
    return write_gguf(tmp_path / "gpt-oss-20b.gguf", "gpt-oss", 24, 32)


def test_running_out_of_memory_steps_down_the_context_until_it_fits(run_cli, state, gpt_oss_gguf, llama_server,
                                                                    monkeypatch):
    monkeypatch.setenv("FAKE_SERVER_MAX_CTX", "20000")
    code, out, err = run_cli("up", "--gguf", gpt_oss_gguf, "--context", "64k", "--port", free_port(), "--no-bench",
                             "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["state"] == "running" and record["plan"]["context_length"] == 16384
    assert [(a["context_length"], a["backend"]) for a in record["attempts"]] == [(65536, "llamacpp"),
                                                                                 (32768, "llamacpp")]
    assert all("failed to allocate buffer" in a["failure"] for a in record["attempts"])
    assert "out of memory at context 65,536" in err and "trying 32,768" in err and "trying 16,384" in err
    assert json.loads(llama_server.read_text())["argv"][json.loads(llama_server.read_text())["argv"].index(
        "--ctx-size") + 1] == "16384"                                   # the server that runs has the smaller context
    code, out, _ = run_cli("status", "--json")
    assert [a["context_length"] for a in json.loads(out)[0]["attempts"]] == [65536, 32768]


def test_no_fallback_fails_at_the_first_out_of_memory(run_cli, state, gpt_oss_gguf, llama_server, monkeypatch):
    monkeypatch.setenv("FAKE_SERVER_MAX_CTX", "20000")
    code, _, err = run_cli("up", "--gguf", gpt_oss_gguf, "--context", "64k", "--port", free_port(), "--no-bench",
                           "--no-fallback")
    assert code == 4 and "failed to allocate buffer" in err and "trying" not in err and state.records() == {}


def test_a_failure_a_smaller_plan_cannot_fix_does_not_step_down(run_cli, state, smollm2, llama_server, monkeypatch):
    monkeypatch.setenv("FAKE_SERVER_MODE", "hang")
    code, _, err = run_cli("up", "--gguf", smollm2, "--port", free_port(), "--no-bench", "--ready-timeout", "2")
    assert code == 4 and "was not ready after 2 s" in err and "trying" not in err and state.records() == {}


def test_memory_failures_are_told_from_other_failures():
    assert memory_failure("the server exited with status 1 before it was ready; log x: a | llama_init_from_model: "
                          "failed to allocate buffer for kv cache | b") == "llama_init_from_model: failed to " \
                                                                             "allocate buffer for kv cache"
    assert memory_failure("... | ValueError: No available memory for the cache blocks. Try increasing") is not None
    assert memory_failure("... | torch.OutOfMemoryError: CUDA out of memory. Tried to allocate") is not None
    assert "SIGKILL" in memory_failure("the server exited with status -9 before it was ready; log x: loading")
    assert memory_failure("could not start llama-server: not found or not executable") is None
    assert memory_failure("port 18080 is taken by nginx") is None
    assert [smaller_context(c) for c in (131072, 65536, 40000, 8192)] == [65536, 32768, 32768, None]
