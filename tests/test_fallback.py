"""The fallback ladder's first rung: `gptoss-up` plans again at the next smaller context when the server runs out of
memory while loading (the stand-in llama-server fails as llama.cpp does above FAKE_SERVER_MAX_CTX), says so, and
records each attempt; failures a smaller plan cannot fix end the launch as before."""
from __future__ import annotations

import json

import pytest

from gptoss_deploy.planner.errors import BackendError
from gptoss_deploy.runtime.fallback import memory_failure, smaller_context
from gptoss_deploy.runtime.log_filter import RUN_MARKER
from gptoss_deploy.runtime.process import ServerFailed

from helpers import fixture_path, free_port
from test_gguf import write_gguf

LAPTOP = fixture_path("laptop-rtx4060-8gb")
H100 = fixture_path("h100-sxm")


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
    assert all(a["failure"] == "out of memory" and "failed to allocate buffer" in a["log_line"]
               for a in record["attempts"])
    assert [a["argv"][a["argv"].index("--ctx-size") + 1] for a in record["attempts"]] == ["65536", "32768"]
    assert "out of memory at context 65,536" in err and "trying context 32,768" in err and "context 16,384" in err
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


def exited(tmp_path, returncode: int, *lines: str) -> ServerFailed:
    """A server that exited with RETURNCODE after writing LINES to its log (after an earlier run's)."""
    log = tmp_path / "server.log"
    log.write_text(f"{RUN_MARKER} earlier\nfailed to allocate: not this run\n{RUN_MARKER} this one\n" +
                   "".join(f"{line}\n" for line in lines))
    return ServerFailed(f"the server exited with status {returncode} before it was ready", returncode, log)


def test_memory_failures_are_told_from_other_failures(tmp_path):
    assert memory_failure(exited(tmp_path, 1, "a", "llama_init_from_model: failed to allocate buffer for kv cache",
                                 "b")) == ("out of memory", "llama_init_from_model: failed to allocate buffer for kv cache")
    assert memory_failure(exited(tmp_path, 1, "ValueError: No available memory for the cache blocks. Try increasing"))
    assert memory_failure(exited(tmp_path, 1, "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate"))
    assert memory_failure(exited(tmp_path, -9, "loading")) == (
        "killed (SIGKILL), as the out-of-memory killer does", "the server exited with status -9 before it was ready")
    assert memory_failure(exited(tmp_path, 1, "a llama-server copy exited with status -9: stopping the others"))[0] \
        == "killed (SIGKILL), as the out-of-memory killer does"
    assert memory_failure(exited(tmp_path, 1, "error: invalid argument: --chat-template-kwargs")) is None
    assert memory_failure(BackendError("could not start llama-server: not found or not executable")) is None
    assert memory_failure(BackendError("port 18080 is taken by nginx")) is None
    assert memory_failure(BackendError("Ollama: model requires more system memory (66.2 GiB) than is available"))
    assert [smaller_context(c) for c in (131072, 65536, 40000, 8192)] == [65536, 32768, 32768, None]


def test_at_the_smallest_context_more_moe_experts_go_to_ram(run_cli, state, gpt_oss_gguf, llama_server, monkeypatch):
    # An 8 GB laptop GPU whose memory something else took since: llama.cpp fails to allocate until enough experts
    # stay in RAM. The GGUF fixes the model, so the ladder never trades it for another.
    monkeypatch.setenv("FAKE_SERVER_MIN_CPU_MOE", "20")
    code, out, err = run_cli("up", "--gguf", gpt_oss_gguf, "--hardware", LAPTOP, "--force", "--context", "16k",
                             "--port", free_port(), "--no-bench", "--json")
    assert code == 0, err
    record = json.loads(out)
    steps = [(a["context_length"], a["next_step"]) for a in record["attempts"]]
    assert steps[0] == (16384, "context 8,192") and all(c == 8192 for c, _ in steps[1:])
    assert all("cudaMalloc failed: out of memory" in a["log_line"] for a in record["attempts"])
    tried = [int(a["argv"][a["argv"].index("--n-cpu-moe") + 1]) for a in record["attempts"][1:]]
    assert tried == sorted(set(tried)) and tried[-1] < 20              # each plan tried keeps more experts in RAM
    argv = json.loads(llama_server.read_text())["argv"]
    ran = int(argv[argv.index("--n-cpu-moe") + 1])
    assert ran >= 20 and record["plan"]["offload"]["n_cpu_moe"] == ran
    assert f"trying --n-cpu-moe {ran} (the MoE experts of {ran} of 24 layers in RAM)" in err


def test_when_no_rung_is_left_the_ladder_says_what_it_tried(run_cli, state, gpt_oss_gguf, llama_server, monkeypatch):
    monkeypatch.setenv("FAKE_SERVER_MIN_CPU_MOE", "99")       # never enough
    code, out, err = run_cli("up", "--gguf", gpt_oss_gguf, "--hardware", LAPTOP, "--force", "--context", "8k",
                             "--port", free_port(), "--no-bench", "--json")
    assert code == 4 and state.records() == {}
    # planned at --n-cpu-moe 13 for the 8 GB GPU: two leaner rungs, the last with all 24 layers' experts in RAM
    assert "trying --n-cpu-moe 24" in err and "the fallback ladder tried 2 smaller plans and has none left" in err
    # a pipeline gets the whole ladder with the error: each plan tried, the last with no next step
    attempts = json.loads(out)["result"]["attempts"]
    assert [a["next_step"].split(" (")[0] for a in attempts] == ["--n-cpu-moe 19", "--n-cpu-moe 24", "none: the "
                                                                 "fallback ladder has no rung left"]
    assert all("cudaMalloc failed: out of memory" in a["log_line"] for a in attempts)


def test_a_later_rung_that_fails_for_another_reason_says_so(run_cli, state, gpt_oss_gguf, llama_server, monkeypatch):
    # 64k runs out of memory; at 32k the server logs nothing of memory and exits: the ladder stops there
    monkeypatch.setenv("FAKE_SERVER_MAX_CTX", "40000")
    monkeypatch.setenv("FAKE_SERVER_MODE", "crash")
    code, out, err = run_cli("up", "--gguf", gpt_oss_gguf, "--context", "64k", "--port", free_port(), "--no-bench",
                             "--json")
    assert code == 4 and state.records() == {}
    assert "the fallback ladder tried 1 smaller plan and the last failed for another reason" in err
    assert [a["context_length"] for a in json.loads(out)["result"]["attempts"]] == [65536]


def test_the_kernels_out_of_memory_kill_steps_down(run_cli, state, gpt_oss_gguf, llama_server, monkeypatch):
    # The server is killed (SIGKILL) while loading above 20,000 tokens, as the kernel's OOM killer does: no log line.
    monkeypatch.setenv("FAKE_SERVER_MAX_CTX", "20000")
    monkeypatch.setenv("FAKE_SERVER_OOM_KILL", "1")
    code, out, err = run_cli("up", "--gguf", gpt_oss_gguf, "--context", "32k", "--port", free_port(), "--no-bench")
    assert code == 0, err
    assert "stepped down: 1 plan(s) ran out of memory first; the fallback ladder tried context 16,384" in out
    code, out, _ = run_cli("status", "--json")
    [attempt] = json.loads(out)[0]["attempts"]
    assert attempt["failure"] == "killed (SIGKILL), as the out-of-memory killer does"
    assert "exited with status -9" in attempt["log_line"] and attempt["next_step"] == "context 16,384"
    assert "killed (SIGKILL), as the out-of-memory killer does at context 32,768" in err


def test_vllm_without_room_for_the_kv_cache_steps_down_the_context(run_cli, state, stand_in, monkeypatch):
    vllm = stand_in("vllm")
    monkeypatch.setenv("FAKE_SERVER_MAX_CTX", "40000")            # vLLM's KV-cache check fails above this
    # two H100s: vLLM plans 120b at 128k over both (one holds ~47k beside the weights, vllm#27508)
    code, out, err = run_cli("up", "--hardware", fixture_path("2x-h100"), "--force", "--profile", "server",
                             "--context", "128k", "--port", free_port(), "--no-bench", "--json")
    assert code == 0, err
    record = json.loads(out)
    assert [(a["context_length"], a["next_step"]) for a in record["attempts"]] == [(131072, "context 65,536"),
                                                                                   (65536, "context 32,768")]
    assert all("No available memory for the cache blocks" in a["log_line"] for a in record["attempts"])
    argv = json.loads(vllm.read_text())["argv"]
    assert argv[argv.index("--max-model-len") + 1] == "32768" and record["plan"]["context_length"] == 32768


def test_vllm_leaves_more_of_the_gpu_to_other_processes(run_cli, state, stand_in, monkeypatch):
    # Something else holds 11 GB of the H100: vLLM refuses to start above 0.86 of it, at any context.
    vllm = stand_in("vllm")
    monkeypatch.setenv("FAKE_SERVER_MAX_UTILIZATION", "0.86")
    code, out, err = run_cli("up", "--hardware", H100, "--force", "--profile", "server", "--context", "16k",
                             "--port", free_port(), "--no-bench", "--json")
    assert code == 0, err
    steps = [(a["context_length"], a["next_step"]) for a in json.loads(out)["attempts"]]
    assert [step for _, step in steps] == ["context 8,192", "--gpu-memory-utilization 0.90 (more of the GPU left to "
                                           "other processes)", "--gpu-memory-utilization 0.85 (more of the GPU left "
                                           "to other processes)"]
    argv = json.loads(vllm.read_text())["argv"]
    assert argv[argv.index("--gpu-memory-utilization") + 1] == "0.85" and argv[argv.index("--max-model-len") + 1] \
        == "8192"


def walk(machine: str, *flags: str, gguf=None, variant=None) -> list[tuple[str, str, int]]:
    """Every rung of the ladder below the plan `gptoss-up` makes for MACHINE and FLAGS, through the real planner:
    (the change, model, backend) per rung."""
    from gptoss_deploy.cli.deploy_commands import _ladder
    from gptoss_deploy.cli.options import planning_flags

    ladder = _ladder(None, planning_flags("120b", variant, None, None, None, False, "--cloud" in flags),
                     fixture_path(machine), gguf, no_calibration=True)
    plan, hardware = ladder.replan({})
    rungs = []
    while below := ladder.below(plan, hardware, plan.context_length):
        plan, hardware, change = below
        rungs.append((change, plan.model, plan.backend))
    return rungs


def test_the_ladder_goes_context_then_experts_then_the_smaller_model():
    rungs = walk("rtx4090-desktop")
    changes = [change.split(" (")[0] for change, _, _ in rungs]
    smaller = changes.index("the smaller model, gpt-oss-20b")
    assert changes[:2] == ["context 16,384", "context 8,192"] and changes[2].startswith("--n-cpu-moe")
    assert changes[smaller - 1] == "--n-cpu-moe 36" and all(m == "gpt-oss-120b" for _, m, _ in rungs[:smaller])
    assert changes[smaller + 1:] == ["context 16,384", "context 8,192", "--n-cpu-moe 6", "--n-cpu-moe 12",
                                     "--n-cpu-moe 18", "--n-cpu-moe 24"]        # and no cloud: it was not allowed
    assert all(backend == "llamacpp" for _, _, backend in rungs)


def test_the_smaller_model_is_the_same_variants():
    rungs = walk("rtx4090-desktop", variant="safeguard")
    assert "the smaller model, gpt-oss-safeguard-20b" in [change for change, _, _ in rungs]
    assert all(model.startswith("gpt-oss-safeguard-") for _, model, _ in rungs)


def test_the_cloud_is_the_last_rung_only_where_the_user_allowed_it():
    rungs = walk("strix-halo-128gb", "--cloud")
    assert rungs[-1] == ("the cloud plan, gpt-oss-120b on AWS Bedrock (billed)", "gpt-oss-120b", "bedrock")
    assert rungs[-2][:2] == ("--n-cpu-moe 24 (the MoE experts of 24 of 24 layers in RAM)", "gpt-oss-20b")
    assert all(backend != "bedrock" for _, _, backend in walk("strix-halo-128gb"))


def test_a_given_gguf_is_never_traded_for_another_model_or_the_cloud(tmp_path):
    from gptoss_deploy.planner.gguf_info import read_gguf

    gguf = read_gguf(write_gguf(tmp_path / "gpt-oss-120b.gguf", "gpt-oss", 36, 128))
    rungs = walk("strix-halo-128gb", "--cloud", gguf=gguf)
    assert rungs and all(model == "gpt-oss-120b" and backend == "llamacpp" for _, model, backend in rungs)
    assert rungs[-1][0].startswith("--n-cpu-moe 36")


def test_readiness_never_reached_with_memory_exhausted_steps_down(run_cli, state, gpt_oss_gguf, llama_server,
                                                                  monkeypatch):
    monkeypatch.setenv("FAKE_SERVER_MODE", "hang")          # logs that memory ran out, then never answers
    monkeypatch.setenv("FAKE_SERVER_ECHO", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
    code, _, err = run_cli("up", "--gguf", gpt_oss_gguf, "--context", "16k", "--port", free_port(), "--no-bench",
                           "--ready-timeout", "2")
    assert code == 4 and state.records() == {}
    assert "out of memory at context 16,384 (torch.OutOfMemoryError: CUDA out of memory" in err
    assert "trying context 8,192" in err and "the fallback ladder tried 1 smaller plan and has none left" in err
