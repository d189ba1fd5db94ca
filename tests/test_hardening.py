"""Input that could escape or open the machine is refused before anything starts: deployment names, API keys,
environment values, addresses; what the tool writes is private to the user."""
from __future__ import annotations

import json
import stat
import subprocess
import sys

import httpx
import psutil
import pytest

from helpers import fixture_path, free_port

UP = [sys.executable, "-c", "from gptoss_deploy.cli.app import up_main; up_main()"]


@pytest.mark.parametrize("name", ["../../victim", "a/b", "x" * 300, "two words", "-leading-dash", ".hidden", ""])
def test_an_unsafe_deployment_name_exits_2_before_anything_is_written(run_cli, state, smollm2, tmp_path, name):
    code, _, err = run_cli("up", "--gguf", smollm2, "--name", name, "--port", free_port(), "--no-bench")
    assert code == 2 and "--name" in err and "letters, digits" in err
    assert not state.root.exists() or state.records() == {}
    assert not (tmp_path / "victim.log").exists()


def test_default_names_are_safe_file_names(run_cli, state, smollm2):
    code, out, _ = run_cli("up", "--gguf", smollm2, "--port", free_port(), "--no-bench", "--json")
    assert code == 0 and json.loads(out)["name"] == "SmolLM2-135M-Instruct.Q4_1-llamacpp"


@pytest.mark.parametrize("key, why", [
    ("#starts-with-a-hash-0123456789", "begins with #"),
    ("  padded-key-0123456789  ", "white space"),
    ("k3y", "at least 16 characters"),
])
def test_an_api_key_llama_server_would_misread_exits_2(run_cli, state, smollm2, monkeypatch, key, why):
    monkeypatch.setenv("GPTOSS_API_KEY", key)
    code, _, err = run_cli("up", "--gguf", smollm2, "--host", "0.0.0.0", "--port", free_port("0.0.0.0"),
                           "--no-bench")
    assert code == 2 and "GPTOSS_API_KEY" in err and why in err and key.strip() not in err
    assert state.records() == {}


def test_an_exposed_server_is_checked_to_refuse_requests_without_the_key(run_cli, state, smollm2):
    port = free_port("0.0.0.0")
    code, out, err = run_cli("up", "--gguf", smollm2, "--host", "0.0.0.0", "--port", port, "--no-bench", "--json")
    assert code == 0, err
    assert httpx.get(f"http://127.0.0.1:{port}/v1/models").status_code == 401
    assert "checked: requests without the API key are refused" in err


def test_state_logs_and_secrets_are_private_to_the_user(run_cli, state, smollm2, monkeypatch):
    monkeypatch.setenv("GPTOSS_API_KEY", "a-key-of-my-own-0123456789")
    code, out, err = run_cli("up", "--gguf", smollm2, "--host", "0.0.0.0", "--port", free_port("0.0.0.0"),
                             "--no-bench", "--json")
    record = json.loads(out)
    assert code == 0, err
    for directory in (state.root, state.root / "logs", state.root / "secrets"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    for path in (state.path, state.root / "logs" / f"{record['name']}.log", state.secret_path(record["name"])):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


@pytest.mark.parametrize("setting, value, message", [
    ("GPTOSS_STOP_GRACE_S", "abc", "GPTOSS_STOP_GRACE_S"),
    ("GPTOSS_STOP_GRACE_S", "-1", "GPTOSS_STOP_GRACE_S"),
    ("GPTOSS_STOP_GRACE_S", "nan", "GPTOSS_STOP_GRACE_S"),
    ("--ready-timeout", "inf", "--ready-timeout"),
    ("--ready-timeout", "nan", "--ready-timeout"),
    ("--host", "not a host!", "--host"),
    ("GPTOSS_LLAMA_SERVER", "/tmp", "GPTOSS_LLAMA_SERVER=/tmp is not a program this user can run"),
])
def test_a_bad_setting_exits_2_before_anything_starts(run_cli, state, smollm2, monkeypatch, setting, value, message):
    flags = ["--port", str(free_port()), "--no-bench"]
    if setting.startswith("--"):
        flags += [setting, value]
    else:
        monkeypatch.setenv(setting, value)
    code, _, err = run_cli("up", "--gguf", smollm2, *flags)
    monkeypatch.delenv(setting, raising=False)        # the teardown's `down` reads it too
    assert code == 2 and message in err and err.count("\n") == 1
    assert not state.root.exists() or state.records() == {}


def test_an_address_this_machine_does_not_have_is_told_apart_from_a_taken_port(run_cli, state, smollm2, monkeypatch):
    monkeypatch.setenv("GPTOSS_API_KEY", "a-key-of-my-own-0123456789")
    code, _, err = run_cli("up", "--gguf", smollm2, "--host", "192.0.2.7", "--port", free_port(), "--no-bench")
    assert code == 2 and "--host: 192.0.2.7 is not an address of this machine" in err and "taken" not in err
    assert state.records() == {}


def test_every_secret_the_tool_handled_is_masked_by_its_value(state, smollm2, stand_in, monkeypatch, tmp_path):
    stand_in("llama-server")
    token_file = tmp_path / "hf-token"                  # a token huggingface_hub reads from its file, no variable
    token_file.write_text("hf_from_the_token_file_0123")
    monkeypatch.setenv("HF_TOKEN_PATH", str(token_file))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("FAKE_SERVER_ECHO_KEY", "1")     # the generated key, printed under no variable name
    monkeypatch.setenv("GITHUB_PAT", "ghp7")             # short, and named unlike the known token shapes
    monkeypatch.setenv("DATABASE_URL", "postgres://app:s3cret-pw@db:5432/app")     # a password inside a URL
    monkeypatch.setenv("FAKE_SERVER_ECHO", "hub login hf_from_the_token_file_0123 pat ghp7 db "
                                           "postgres://app:s3cret-pw@db:5432/app")
    started = subprocess.run([*UP, "--gguf", str(smollm2), "--host", "0.0.0.0", "--port", str(free_port("0.0.0.0")),
                              "--no-bench", "--json"], capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    record = json.loads(started.stdout)
    key = state.read_secret(record["name"])
    log = (state.root / "logs" / f"{record['name']}.log").read_text()
    assert "api key ***" in log and "hub login *** pat *** db postgres://app:***@db:5432/app" in log
    for text in (log, started.stdout, started.stderr, state.path.read_text()):
        assert key not in text and "hf_from_the_token_file" not in text and "s3cret-pw" not in text
    # the log filter got the secrets through a pipe: nothing in its environment or command line shows them
    log_filter = psutil.Process(record["pid"])
    assert key not in " ".join([*log_filter.cmdline(), *log_filter.environ().values()])


def test_launching_another_machines_plan_is_refused_unless_forced(run_cli, state, smollm2, tmp_path):
    h100 = json.loads(fixture_path("h100-sxm").read_text())
    h100["gpus"] = [dict(h100["gpus"][0], index=i) for i in range(8)]             # no test machine has 8 of them
    described = tmp_path / "8x-h100.json"
    described.write_text(json.dumps(h100))
    code, _, err = run_cli("up", "--hardware", described, "--backend", "llamacpp", "--gguf", smollm2,
                           "--port", free_port(), "--no-bench")
    assert code == 2 and f"--hardware {described} describes another machine (GPUs: " in err
    assert "--dry-run" in err and "--force" in err and state.records() == {}
    assert run_cli("up", "--hardware", described, "--backend", "llamacpp", "--dry-run")[0] == 0


def test_this_machines_own_description_launches(run_cli, state, smollm2, tmp_path):
    here = tmp_path / "here.json"
    here.write_text(run_cli("probe", "--json")[1])
    code, out, err = run_cli("up", "--hardware", here, "--gguf", smollm2, "--port", free_port(), "--no-bench")
    assert code == 0, err


def test_a_hardware_file_with_a_typo_and_other_mistakes_names_them_all(run_cli, tmp_path):
    report = json.loads(fixture_path("rtx4090-desktop").read_text())
    report["gpus"][0]["memory_bandwith_gbps"] = 1008                            # a typo, no longer ignored
    report["memory"]["total_bytes"] = -1
    path = tmp_path / "typo.json"
    path.write_text(json.dumps(report))
    code, _, err = run_cli("plan", "--hardware", path)
    assert code == 2 and "field gpus.0.memory_bandwith_gbps: Extra inputs are not permitted" in err
    assert "field memory.total_bytes: Input should be greater than 0" in err and err.count("\n") == 1


def test_down_never_signals_a_process_its_record_cannot_prove_it_started(run_cli, state):
    """A hand-edited record without the start time names a pid that may be anyone's now: left alone, said so."""
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        port = free_port()
        state.root.mkdir(parents=True, exist_ok=True)
        (state.root / "deployments.json").write_text(json.dumps({"schema_version": 1, "deployments": {"x": {
            "name": "x", "backend": "llamacpp", "state": "running", "pid": bystander.pid, "pid_started_at": None,
            "host": "127.0.0.1", "port": port, "endpoint": {"base_url": f"http://127.0.0.1:{port}/v1"}}}}))
        code, _, err = run_cli("down", "x")
        assert code == 0 and f"process {bystander.pid} was left alone" in err
        assert bystander.poll() is None                      # still running, never signalled
        assert state.records() == {}
    finally:
        bystander.kill()
        bystander.wait()
