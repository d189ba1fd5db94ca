"""What users of launchers hit, staged with a stand-in llama-server on PATH (tests/fake_openai_server.py)."""
from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from gptoss_deploy.runtime.process import port_in_use
from gptoss_deploy.runtime.records import Deployment
from helpers import free_port

UP = [sys.executable, "-c", "from gptoss_deploy.cli.app import up_main; up_main()"]
STATUS = [sys.executable, "-c", "from gptoss_deploy.cli.app import main; main()", "status", "--json"]


@pytest.fixture
def llama_server(stand_in):
    """The stand-in as llama-server; returns the file where it records its argv and environment."""
    return stand_in("llama-server")


def stand_ins() -> list[psutil.Process]:
    """This test's stand-in servers (told apart from other test runs' by the record file in their environment)."""
    mine = os.environ["FAKE_SERVER_RECORD"]
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if "fake_openai_server.py" in " ".join(process.info["cmdline"] or []) and \
                    process.environ().get("FAKE_SERVER_RECORD") == mine and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except psutil.Error:
            pass
    return found


def ended(pid: int) -> bool:
    """PID has exited (gone, or a zombie nobody has reaped yet); it may go between two looks."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# A load that hangs is interrupted by the test, never ended by its own deadline, however slow the machine.
NO_DEADLINE = ("--ready-timeout", "3600")
# How long a test waits for something it knows will happen: a safety net, never what the test measures (a busy
# machine may take long to start a Python process; the tests wait on the event itself).
WAIT_S = 180.0


def stalled_benchmark(monkeypatch):
    """The benchmark's first request never finishes, and nothing else ends the run: a signal finds it running
    however busy the machine is."""
    monkeypatch.setenv("FAKE_SERVER_STALL_REQUEST", "1")
    monkeypatch.setenv("GPTOSS_BENCH_BUDGET_S", "3600")


def wait_for(condition, timeout_s=WAIT_S):
    give_up = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < give_up, "timed out"
        time.sleep(0.05)


def test_port_held_by_another_program_is_named_before_anything_starts(run_cli, state, smollm2, llama_server):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code, out, err = run_cli("up", "--gguf", smollm2, "--port", port, "--no-bench")
    assert code == 4 and out == ""
    assert f"port {port} is taken by" in err and f"(pid {psutil.Process().pid})" in err and "--port" in err
    assert not llama_server.exists() and state.records() == {}


def test_server_that_exits_during_start_up_shows_its_log(run_cli, state, smollm2, llama_server, monkeypatch):
    monkeypatch.setenv("FAKE_SERVER_MODE", "exit")
    code, _, err = run_cli("up", "--gguf", smollm2, "--port", free_port(), "--no-bench")
    assert code == 4 and "exited with status 1 before it was ready" in err and "out of memory" in err
    errors = [line for line in err.splitlines() if line.startswith("gptoss: error:")]
    assert errors == [err.strip().splitlines()[-1]] and state.records() == {}


def test_server_never_ready_is_stopped_at_the_deadline(run_cli, state, smollm2, llama_server, monkeypatch):
    monkeypatch.setenv("FAKE_SERVER_MODE", "hang")
    port = free_port()
    code, _, err = run_cli("up", "--gguf", smollm2, "--port", port, "--ready-timeout", "2", "--no-bench")
    assert code == 4 and "not ready after 2 s" in err and "--ready-timeout" in err
    assert stand_ins() == [] and state.records() == {}


def test_readiness_from_a_foreign_server_fails_the_identity_check(run_cli, state, smollm2, llama_server,
                                                                 monkeypatch):
    monkeypatch.setenv("FAKE_SERVER_MODEL", "someone-elses-model")
    code, _, err = run_cli("up", "--gguf", smollm2, "--port", free_port(), "--no-bench")
    assert code == 4 and "serves someone-elses-model, not SmolLM2-135M-Instruct.Q4_1" in err
    assert stand_ins() == [] and state.records() == {}


def test_ctrl_c_during_load_leaves_nothing_running(state, smollm2, llama_server, monkeypatch):
    monkeypatch.setenv("FAKE_SERVER_MODE", "hang")
    launcher = subprocess.Popen([*UP, "--gguf", str(smollm2), "--port", str(free_port()), "--no-bench", *NO_DEADLINE],
                                stderr=subprocess.PIPE, text=True)
    wait_for(lambda: state.path.exists() and state.records())
    launcher.send_signal(signal.SIGINT)
    assert launcher.wait(timeout=WAIT_S) == 130
    assert launcher.stderr.read().strip().endswith("gptoss: error: interrupted")
    assert stand_ins() == [] and state.records() == {}


@pytest.mark.parametrize("signum, code, said", [(signal.SIGTERM, 143, "terminated (SIGTERM)"),
                                                (signal.SIGHUP, 129, "hung up (SIGHUP)")])
def test_term_and_hangup_during_load_are_handled_like_ctrl_c(state, smollm2, llama_server, monkeypatch, signum, code,
                                                              said):
    monkeypatch.setenv("FAKE_SERVER_MODE", "hang")
    launcher = subprocess.Popen([*UP, "--gguf", str(smollm2), "--port", str(free_port()), "--no-bench", *NO_DEADLINE],
                                stderr=subprocess.PIPE, text=True)
    wait_for(lambda: state.path.exists() and state.records())
    launcher.send_signal(signum)
    assert launcher.wait(timeout=WAIT_S) == code
    assert launcher.stderr.read().strip().endswith(f"gptoss: error: {said}")
    assert stand_ins() == [] and state.records() == {}


def test_ctrl_c_during_the_benchmark_of_a_fresh_up_stops_the_server(state, smollm2, llama_server, monkeypatch):
    stalled_benchmark(monkeypatch)
    launcher = subprocess.Popen([*UP, "--gguf", str(smollm2), "--port", str(free_port())],
                                stderr=subprocess.PIPE, text=True)
    wait_for(lambda: state.path.exists() and any(r.state == "running" for r in state.records().values()))
    launcher.send_signal(signal.SIGINT)
    assert launcher.wait(timeout=WAIT_S) == 130
    assert stand_ins() == [] and state.records() == {}


def test_interrupting_bench_leaves_the_deployment_running(run_cli, state, smollm2, llama_server, monkeypatch):
    stalled_benchmark(monkeypatch)
    code, out, _ = run_cli("up", "--gguf", smollm2, "--port", free_port(), "--no-bench", "--json")
    name = json.loads(out)["name"]
    bench = subprocess.Popen([*STATUS[:3], "bench", name], stderr=subprocess.PIPE, text=True)
    for line in bench.stderr:                            # the benchmark's first request is on its way
        if "gptoss: warm-up" in line:
            break
    bench.send_signal(signal.SIGINT)
    assert bench.wait(timeout=WAIT_S) == 130
    assert len(stand_ins()) == 1 and [r.name for r in state.records().values()] == [name]


def test_killed_launcher_leaves_a_stale_record_that_status_cleans(state, smollm2, llama_server, monkeypatch):
    monkeypatch.setenv("FAKE_SERVER_MODE", "hang")
    launcher = subprocess.Popen([*UP, "--gguf", str(smollm2), "--port", str(free_port()), "--no-bench", *NO_DEADLINE],
                                stderr=subprocess.DEVNULL)
    wait_for(lambda: state.path.exists() and state.records() and stand_ins())
    launcher.kill()
    launcher.wait()
    assert len(stand_ins()) == 1                         # orphaned, still loading
    listed = subprocess.run(STATUS, capture_output=True, text=True, check=True)
    assert json.loads(listed.stdout) == []
    assert stand_ins() == [] and state.records() == {}


def test_crashed_server_record_is_cleaned_and_up_starts_a_new_one(run_cli, state, smollm2, llama_server):
    port = free_port()
    code, out, _ = run_cli("up", "--gguf", smollm2, "--port", port, "--no-bench", "--json")
    first = json.loads(out)
    [server] = stand_ins()
    server.kill()                                        # the server crashes
    wait_for(lambda: not port_in_use("127.0.0.1", port))
    code, out, _ = run_cli("up", "--gguf", smollm2, "--port", port, "--no-bench", "--json")
    assert code == 0 and json.loads(out)["pid"] != first["pid"]


def test_status_says_which_deployment_died_and_where_its_log_is(run_cli, state, smollm2, llama_server):
    code, out, _ = run_cli("up", "--gguf", smollm2, "--port", free_port(), "--no-bench", "--json")
    record = json.loads(out)
    [server] = stand_ins()
    server.kill()                                        # the server crashes
    wait_for(lambda: ended(server.pid))
    wait_for(lambda: ended(record["pid"]))
    code, out, err = run_cli("status", "--json")
    assert code == 0 and json.loads(out) == []
    assert f"gptoss: deployment {record['name']} ended: its server exited (last output 20" in err
    assert f"; log: {record['log']}" in err and state.records() == {}


def test_a_state_write_that_fails_leaves_nothing_running_and_no_temp_file(state, smollm2, llama_server):
    def small_files():                                   # a disk that fills up: writes over 512 bytes fail
        resource.setrlimit(resource.RLIMIT_FSIZE, (512, 512))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    result = subprocess.run([*UP, "--gguf", str(smollm2), "--port", str(free_port()), "--no-bench"],
                            capture_output=True, text=True, preexec_fn=small_files, timeout=60)
    assert result.returncode == 4, result.stderr
    assert "cannot write the state file" in result.stderr and "GPTOSS_STATE_DIR" in result.stderr
    assert stand_ins() == [] and list(state.root.glob(".deployments-*")) == []


def test_a_state_dir_that_is_a_file_exits_2(run_cli, smollm2, tmp_path, monkeypatch):
    monkeypatch.setenv("GPTOSS_STATE_DIR", str(tmp_path / "not-a-dir"))
    (tmp_path / "not-a-dir").write_text("")
    code, _, err = run_cli("up", "--gguf", smollm2, "--port", free_port(), "--no-bench")
    assert code == 2 and "is not a directory: point GPTOSS_STATE_DIR at a directory" in err


def test_two_launchers_at_once_start_exactly_one_server(state, smollm2, llama_server):
    args = [*UP, "--gguf", str(smollm2), "--port", str(free_port()), "--no-bench", "--json"]
    launchers = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                 for _ in range(2)]
    results = [json.loads(p.communicate(timeout=WAIT_S)[0]) for p in launchers]
    assert [p.returncode for p in launchers] == [0, 0]
    assert results[0]["pid"] == results[1]["pid"] and len(stand_ins()) == 1


def test_secrets_in_the_servers_output_are_masked_in_its_log(run_cli, state, smollm2, stand_in, monkeypatch):
    stand_in("llama-server")
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token_value")
    monkeypatch.setenv("FAKE_SERVER_MODE", "exit")
    monkeypatch.setenv("GPTOSS_API_KEY", "my-own-api-key-1234")
    # The stand-in prints its whole command line, which names the key file; make it print the secrets too.
    monkeypatch.setenv("FAKE_SERVER_ECHO", "token hf_secret_token_value key my-own-api-key-1234")
    code, _, err = run_cli("up", "--gguf", smollm2, "--port", free_port(), "--host", "0.0.0.0", "--no-bench")
    assert code == 4 and "token *** key ***" in err
    log = (state.root / "logs" / "SmolLM2-135M-Instruct.Q4_1-llamacpp.log").read_text()
    assert "token *** key ***" in log and "hf_secret_token_value" not in log and "my-own-api-key" not in log


def test_a_healthy_server_whose_log_filter_died_stays_listed_and_down_stops_it(run_cli, state, smollm2,
                                                                              llama_server):
    port = free_port()
    code, out, _ = run_cli("up", "--gguf", smollm2, "--port", port, "--no-bench", "--json")
    record = json.loads(out)
    psutil.Process(record["pid"]).kill()                 # the log filter leading the group dies; the server lives
    wait_for(lambda: ended(record["pid"]))
    code, out, err = run_cli("status", "--json")
    assert code == 0 and [r["name"] for r in json.loads(out)] == [record["name"]]
    assert f"deployment {record['name']} still runs, but the process copying its output to {record['log']} " \
           "exited" in err
    assert len(stand_ins()) == 1
    assert run_cli("down", record["name"])[0] == 0
    assert stand_ins() == [] and not port_in_use("127.0.0.1", port)


def test_the_log_filter_outlives_a_full_disk_so_the_server_keeps_running(tmp_path):
    def small_files():                                   # a disk that fills up: writes over 4 KiB fail
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    chatty = "import sys\nfor i in range(2000): print('loading layer', i, flush=True)\nsys.exit(3)"
    filtered = subprocess.run([sys.executable, "-m", "gptoss_deploy.runtime.log_filter", str(tmp_path / "x.log"),
                               "--", sys.executable, "-c", chatty], preexec_fn=small_files, timeout=60)
    assert filtered.returncode == 3                      # the server ran to its own end, its status passed on
    marker, first = (tmp_path / "x.log").read_text().splitlines()[:2]
    assert marker.startswith("==== gptoss: starting ") and first == "loading layer 0"   # the run's head, one line


def test_down_kills_a_server_that_ignores_term(run_cli, state, smollm2, llama_server, monkeypatch):
    monkeypatch.setenv("FAKE_SERVER_IGNORE_TERM", "1")
    monkeypatch.setenv("GPTOSS_STOP_GRACE_S", "1")
    port = free_port()
    code, out, _ = run_cli("up", "--gguf", smollm2, "--port", port, "--no-bench", "--json")
    assert code == 0 and len(stand_ins()) == 1
    assert run_cli("down", "--all")[0] == 0
    assert stand_ins() == [] and not port_in_use("127.0.0.1", port)


def test_a_stale_record_never_signals_a_process_that_reused_its_pid(run_cli, state):
    stranger = subprocess.Popen(["sleep", "30"], start_new_session=True)   # leads a group of its own
    try:
        record = {"name": "old", "backend": "llamacpp", "pid": stranger.pid, "pid_started_at": 1.0, "state": "running", "port": 1,
                  "host": "127.0.0.1", "protocol": "openai", "endpoint": {"base_url": "http://127.0.0.1:1/v1"}}
        with state.locked():
            state.put(Deployment.model_validate(record))
        assert json.loads(run_cli("status", "--json")[1]) == [] and state.records() == {}
        assert stranger.poll() is None                   # cleaned the record, left the stranger alone
    finally:
        stranger.kill()
        stranger.wait()


def test_up_prints_how_to_call_the_endpoint(run_cli, state, smollm2, llama_server):
    port = free_port("0.0.0.0")
    code, out, _ = run_cli("up", "--gguf", smollm2, "--host", "0.0.0.0", "--port", port, "--no-bench")
    base = f"http://127.0.0.1:{port}/v1"
    key_file = state.secret_path("SmolLM2-135M-Instruct.Q4_1-llamacpp")
    assert code == 0 and f"OpenAI base URL {base}, model SmolLM2-135M-Instruct.Q4_1" in out
    assert f"export OPENAI_BASE_URL={base}" in out and f"export OPENAI_API_KEY=$(cat {key_file})" in out
    assert f'curl {base}/chat/completions' in out and '"Authorization: Bearer $OPENAI_API_KEY"' in out
    assert f"listening on all interfaces: other machines use this machine's address, port {port}" in out


def test_the_printed_lines_are_enough_for_the_official_openai_sdk_on_a_keyless_server(run_cli, state, smollm2,
                                                                                      llama_server, tmp_path):
    code, out, _ = run_cli("up", "--gguf", smollm2, "--port", free_port(), "--no-bench")
    exports = [line.strip() for line in out.splitlines() if line.strip().startswith("export ")]
    assert code == 0 and [e.split("=")[0] for e in exports] == ["export OPENAI_BASE_URL", "export OPENAI_API_KEY"]
    client = ("import openai; print([m.id for m in openai.OpenAI().models.list()])")   # reads both variables
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    answer = subprocess.run(["sh", "-c", "\n".join([*exports, f"{sys.executable} -c '{client}'"])],   # as pasted
                            capture_output=True, text=True, env=env, timeout=60)
    assert answer.returncode == 0 and "SmolLM2-135M-Instruct.Q4_1" in answer.stdout, answer.stderr


def test_a_model_loading_in_one_up_does_not_hold_up_other_deployments(run_cli, state, smollm2, llama_server,
                                                                      monkeypatch):
    code, out, _ = run_cli("up", "--gguf", smollm2, "--port", free_port(), "--no-bench", "--json", "--name", "ready")
    assert code == 0
    monkeypatch.setenv("FAKE_SERVER_MODE", "hang")       # a big model that takes its time to load
    loading = subprocess.Popen([*UP, "--gguf", str(smollm2), "--port", str(free_port()), "--no-bench",
                                "--name", "loading"], stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: "loading" in state.records() and state.records()["loading"].pid)
        code, out, err = run_cli("status", "--json")
        assert code == 0 and {r["name"]: r["state"] for r in json.loads(out)} == {"ready": "running",
                                                                                  "loading": "starting"}
        with state.locked(timeout_s=1):                  # nobody holds the lock while the model loads
            pass
        assert run_cli("down", "ready")[0] == 0 and loading.poll() is None
    finally:
        loading.send_signal(signal.SIGINT)
        loading.wait(timeout=WAIT_S)


@pytest.mark.parametrize("damage", ["", '{"schema_version": 1, "deploym', "\x00\xff garbage", "[1, 2]",
                                    '{"deployments": []}', '{"deployments": {"x": {"name": 3}}}'],
                         ids=["empty", "truncated", "garbage", "a list", "deployments not an object",
                              "a record out of shape"])
def test_a_damaged_state_file_is_kept_aside_and_running_deployments_are_found_again(run_cli, state, smollm2,
                                                                                   llama_server, damage):
    port = free_port()
    code, out, _ = run_cli("up", "--gguf", smollm2, "--port", port, "--no-bench", "--json")
    record = json.loads(out)
    state.path.write_bytes(damage.encode("utf-8", "surrogateescape"))
    code, out, err = run_cli("status", "--json")
    assert code == 0, err
    [found] = json.loads(out)
    assert {k: found[k] for k in ("name", "pid", "port", "state", "log")} == \
        {k: record[k] for k in ("name", "pid", "port", "state", "log")}
    [aside] = state.root.glob("deployments.damaged-*.json")
    assert aside.read_bytes() == damage.encode("utf-8", "surrogateescape")
    assert f"the state file {state.path} was damaged" in err and f"kept as {aside}" in err
    assert f"found {record['name']} again from its running processes" in err
    assert run_cli("down", record["name"])[0] == 0
    assert stand_ins() == [] and not port_in_use("127.0.0.1", port)


def test_a_state_lock_that_cannot_be_taken_exits_4_naming_it(run_cli, tmp_path, monkeypatch, smollm2, llama_server):
    monkeypatch.setenv("GPTOSS_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "state" / "state.lock").mkdir(parents=True)          # unwritable to anyone, root included
    code, _, err = run_cli("up", "--gguf", smollm2, "--port", free_port(), "--no-bench")
    assert code == 4 and f"cannot take the state lock {tmp_path / 'state' / 'state.lock'}" in err
    assert "GPTOSS_STATE_DIR" in err and stand_ins() == []


def test_up_again_on_a_deployment_whose_server_is_stopped_says_so_and_how_to_resume(run_cli, state, smollm2,
                                                                                    llama_server):
    port = free_port()
    record = json.loads(run_cli("up", "--gguf", smollm2, "--port", port, "--no-bench", "--json")[1])
    engine = psutil.Process(record["engine_pid"])
    engine.suspend()                                     # SIGSTOP: Ctrl-Z in the terminal that ran it, or a debugger
    try:
        code, _, err = run_cli("up", "--gguf", smollm2, "--port", port, "--no-bench")
        assert code == 4 and f"server (pid {engine.pid}) is stopped (SIGSTOP or Ctrl-Z): resume it with " \
                              f"`kill -CONT {engine.pid}`" in err
        assert "another server holds the port" not in err
    finally:
        engine.resume()
