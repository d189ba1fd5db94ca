"""Property-based: whatever a plan, hardware, profile or GGUF file holds, the answer is a plan or one line and
exit 2 (or 3: nothing fits), never exit 1 (a crash); whatever the state file holds, `status` reads or recovers it. Each strategy mutates a real file as well as making noise."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import fixture_path, free_port

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)
# What a hand edit or an attacker puts in a field: each type's edge, a path, another backend's name, a newline.
DELETED = object()      # the field taken out
HOSTILE_VALUES = [None, "", [], {}, -1, 0, 2**40, "-5", "99999999999", "../../../etc", "/etc/passwd", "bedrock",
                  "llamacpp", "vllm", "cloud", True, "a\nb", {"message": "boom"}, DELETED]
HOSTILE = st.sampled_from(HOSTILE_VALUES)
CPU_ONLY = fixture_path("cpu-only")


def paths(document, prefix=()):
    """Every place in a JSON document a value could be replaced."""
    yield prefix
    if isinstance(document, dict):
        for key, value in document.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from paths(value, (*prefix, index))


def replaced(document, path, value):
    if not path:
        return {} if value is DELETED else value
    copy = json.loads(json.dumps(document))
    target = copy
    for part in path[:-1]:
        target = target[part]
    if value is DELETED:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return copy


def mutations(document, values: st.SearchStrategy = HOSTILE | JSON_VALUES) -> st.SearchStrategy:
    every = list(paths(document))
    return st.builds(lambda i, value: replaced(document, every[i], value),
                     st.integers(min_value=0, max_value=len(every) - 1), values)


def noise() -> st.SearchStrategy[bytes]:
    return st.binary(max_size=200) | st.text(max_size=200).map(str.encode)


def assert_answered(code: int, out: str, err: str, allowed: tuple[int, ...]) -> None:
    assert code in allowed, err
    if code:
        assert err.count("\n") == 1 and err.startswith("gptoss: error: ") and "internal error" not in err


HARDWARE = json.loads(fixture_path("rtx4090-desktop").read_text())


@SETTINGS
@given(content=mutations(HARDWARE).map(lambda d: json.dumps(d).encode()) | noise())
def test_any_hardware_file_plans_or_exits_2(run_cli, tmp_path, content):
    path = tmp_path / "node.json"
    path.write_bytes(content)
    assert_answered(*run_cli("plan", "--hardware", path, "--json"), allowed=(0, 2, 3))


@SETTINGS
@given(data=st.data())
def test_any_plan_file_applies_or_exits_2(run_cli, tmp_path, data):
    if not hasattr(test_any_plan_file_applies_or_exits_2, "plans"):
        test_any_plan_file_applies_or_exits_2.plans = [
            json.loads(run_cli("plan", "--hardware", fixture_path(name), "--json", *flags)[1])
            for name, flags in (("laptop-rtx4060-8gb", ()), ("h100-sxm", ()), ("cpu-only", ("--backend", "ollama")),
                                ("cpu-only", ("--profile", "aws")), ("rtx4090-desktop", ("--backend", "lmstudio")),
                                ("rtx4090-desktop", ("--backend", "foundry")), ("cpu-only", ("--backend", "azure")),
                                ("cpu-only", ("--backend", "azure", "--azure-mode", "managed")),
                                ("cpu-only", ("--backend", "hf-endpoints")))]
        test_any_plan_file_applies_or_exits_2.plans.append(json.loads(run_cli(   # vLLM over two nodes
            "plan", "--gpu", "L4:2", "--nodes", "2", "--model", "120b", "--backend", "vllm", "--json")[1]))
    plan = data.draw(st.sampled_from(test_any_plan_file_applies_or_exits_2.plans))
    content = data.draw(mutations(plan).map(lambda d: json.dumps(d).encode()) | noise())
    path = tmp_path / "plan.json"
    path.write_bytes(content)
    assert_answered(*run_cli("up", "--plan", path, "--dry-run", "--json"), allowed=(0, 2))


@SETTINGS
@given(data=st.data())
def test_any_saved_plan_exports_or_exits_2(run_cli, tmp_path, data):
    """Export reads a saved plan as `up` does: whatever a llama.cpp or vLLM plan holds, files or one line."""
    if not hasattr(test_any_saved_plan_exports_or_exits_2, "plans"):
        test_any_saved_plan_exports_or_exits_2.plans = [
            json.loads(run_cli("plan", "--json", *flags)[1])
            for flags in (("--hardware", CPU_ONLY), ("--gpu", "H100", "--model", "120b"), ("--gpu", "RTX 3090:2"),
                          ("--hardware", CPU_ONLY, "--profile", "aws"))]
    plan = data.draw(st.sampled_from(test_any_saved_plan_exports_or_exits_2.plans))
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data.draw(mutations(plan))))
    export_format = data.draw(st.sampled_from(["kubernetes", "skypilot", "compose"]))
    assert_answered(*run_cli("export", "--format", export_format, "--plan", path), allowed=(0, 2))


TOML_VALUES = st.one_of(st.integers(min_value=-2**70, max_value=2**70).map(str), st.floats(allow_nan=False).map(repr),
                        st.booleans().map(lambda b: str(b).lower()), st.text(max_size=12).map(json.dumps),
                        st.lists(st.text(max_size=6).map(json.dumps), max_size=3).map(lambda v: f"[{', '.join(v)}]"))
PROFILE_KEYS = st.sampled_from(["description", "model", "backend", "backend_preference", "context",
                                "min_decode_tokens_per_s", "reasoning_effort", "local_only", "region", "azure_mode",
                                "usd_per_hour", "contxt"]) | st.text(max_size=8)


@SETTINGS
@given(content=st.dictionaries(PROFILE_KEYS, TOML_VALUES, max_size=6).map(
    lambda d: "\n".join(f"{json.dumps(k)} = {v}" for k, v in d.items()).encode()) | noise())
def test_any_profile_plans_or_exits_2(run_cli, tmp_path, content):
    path = tmp_path / "mine.toml"
    path.write_bytes(content)
    assert_answered(*run_cli("plan", "--profile", path, "--hardware", CPU_ONLY, "--json"), allowed=(0, 2, 3))


@SETTINGS
@given(data=st.data())
def test_any_gguf_header_plans_or_exits_2(run_cli, tmp_path, smollm2, data):
    header = smollm2.open("rb").read(4096)
    cut = data.draw(st.integers(min_value=0, max_value=len(header)))
    edits = data.draw(st.lists(st.tuples(st.integers(min_value=0, max_value=len(header) - 1),
                                         st.integers(min_value=0, max_value=255)), max_size=6))
    content = bytearray(header[:cut] if data.draw(st.booleans()) else header)
    for offset, value in edits:
        if offset < len(content):
            content[offset] = value
    path = tmp_path / "model.gguf"
    path.write_bytes(bytes(content))
    assert_answered(*run_cli("up", "--gguf", path, "--hardware", CPU_ONLY, "--dry-run", "--json"), allowed=(0, 2))


STATE_RECORD = {"name": "x", "backend": "llamacpp", "state": "running", "pid": None, "port": 1,
                "endpoint": {"base_url": "http://127.0.0.1:1/v1"}}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=mutations({"schema_version": 1, "deployments": {"x": STATE_RECORD}}).map(
    lambda d: json.dumps(d).encode()) | noise())
def test_any_state_file_is_read_or_recovered(run_cli, tmp_path, monkeypatch, content):
    root = tmp_path / "state"
    monkeypatch.setenv("GPTOSS_STATE_DIR", str(root))
    root.mkdir(exist_ok=True)
    (root / "deployments.json").write_bytes(content)
    code, out, err = run_cli("status", "--json")
    assert code == 0, err
    json.loads(out)


@pytest.fixture(scope="module")
def stranger():
    """A process gptoss did not start, leading a group of its own, that state files below name by its pid."""
    process = subprocess.Popen(["sleep", "600"], start_new_session=True)
    yield process
    process.kill()
    process.wait()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_down_on_any_state_file_signals_nothing_it_cannot_prove_it_started(run_cli, tmp_path, monkeypatch, stranger,
                                                                          data):
    record = {**STATE_RECORD, "pid": stranger.pid, "engine_pid": stranger.pid}    # a pid, no proof of its start
    content = data.draw(mutations({"schema_version": 1, "deployments": {"x": record}}).map(
        lambda d: json.dumps(d).encode()) | noise())
    root = tmp_path / "state"
    monkeypatch.setenv("GPTOSS_STATE_DIR", str(root))
    root.mkdir(exist_ok=True)
    (root / "deployments.json").write_bytes(content)
    args = data.draw(st.sampled_from([("down", "x"), ("down", "--all"), ("down", "--all", "--json")]))
    code, _, err = run_cli(*args)
    # a damaged file is kept aside with a notice of its own line before the answer
    assert code in (0, 2, 4) and "internal error" not in err and "Traceback" not in err, err
    assert not code or err.splitlines()[-1].startswith("gptoss: error: ")
    assert stranger.poll() is None                      # alive: its start time was never the record's


def test_what_the_properties_found_exits_2_naming_the_file(run_cli, tmp_path, smollm2):
    """The cases that exited 1 before: each is one line and exit 2 now."""
    binary = tmp_path / "node.json"
    binary.write_bytes(b"\x80\x81")
    greedy = tmp_path / "greedy.json"
    gpu = {**HARDWARE["gpus"][0], "memory_free_bytes": HARDWARE["gpus"][0]["memory_total_bytes"] + 1}
    greedy.write_text(json.dumps({**HARDWARE, "gpus": [gpu]}))
    latin1 = tmp_path / "mine.toml"
    latin1.write_bytes('description = "caf\u00e9"\n'.encode("latin-1"))
    crafted = tmp_path / "crafted.gguf"
    header = bytearray(smollm2.open("rb").read(4096))
    header[98] = 1                                           # a string length now far past the end of the file
    crafted.write_bytes(bytes(header))
    newline_key = tmp_path / "keys.json"
    newline_key.write_text(json.dumps({**HARDWARE, "gpus": [{**HARDWARE["gpus"][0], "\n": None}]}))
    for path, args, said in [(newline_key, ("plan", "--hardware", newline_key), "field gpus.0.'\\n': Extra inputs"),
                             (binary, ("plan", "--hardware", binary), "is not text"),
                             (greedy, ("plan", "--hardware", greedy), "memory_free_bytes is more than memory_total_bytes"),
                             (latin1, ("plan", "--profile", latin1, "--hardware", CPU_ONLY), "not text (TOML is UTF-8)"),
                             (crafted, ("up", "--gguf", crafted, "--hardware", CPU_ONLY, "--dry-run"), "past the end")]:
        code, _, err = run_cli(*args)
        assert code == 2 and said in err and str(path) in err and err.count("\n") == 1, err


def test_the_hand_edited_plans_of_issue_26_exit_2_naming_what_is_wrong(run_cli, tmp_path):
    plan = json.loads(run_cli("plan", "--hardware", CPU_ONLY, "--json")[1])
    at = plan["launch"]["argv"].index("--ctx-size") + 1
    for path, value, said in [(("memory",), None, "a local plan needs its memory"),
                              (("launch", "model_files"), [], "model_files: List should have at least 1 item"),
                              (("launch", "model_ref"), "../../../etc", "'../../../etc' is not a hub repository"),
                              (("backend",), "bedrock", "backend bedrock is a cloud service, but the plan's launch "
                                                        "runs a server command"),
                              (("error",), "boom", "holds an error, not a plan: boom"),
                              (("launch", "argv", at), "-5", "--ctx-size '-5', which is not a valid value"),
                              (("launch", "argv", at), "99999999999", "--ctx-size '99999999999'"),
                              (("offload", "data_parallel_size"), 2**40, "offload.data_parallel_size: Input should "
                                                                         "be less than or equal to 64")]:
        saved = tmp_path / "t.json"
        saved.write_text(json.dumps(replaced(plan, path, value)))
        for args in (("up", "--plan", saved, "--dry-run"), ("export", "--format", "compose", "--plan", saved)):
            code, out, err = run_cli(*args)
            assert code == 2 and said in err and err.count("\n") == 1, (path, err)
    saved.write_text(json.dumps(replaced(plan, ("launch", "model_files"), None)))   # what only `up` downloads
    code, _, err = run_cli("up", "--plan", saved, "--dry-run")
    assert code == 2 and "launch.model_files is empty" in err


def test_a_path_or_url_of_the_wrong_kind_is_exit_2_saying_what_to_give(run_cli, tmp_path):
    a_file = tmp_path / "hostname"
    a_file.write_text("mine\n")
    for args, said in [(("export", "--format", "compose", "--hardware", CPU_ONLY, "--output", a_file),
                        "is a file: give a directory to write compose.yaml in"),
                       (("bench", "--url", "not a url"), "is not a server's address: give its http(s) base URL"),
                       (("bench", "--url", "file:///etc/passwd"), "is not a server's address"),
                       (("up", "--gguf", tmp_path, "--dry-run"), "is a directory: give the .gguf file in it")]:
        code, out, err = run_cli(*args)
        assert code == 2 and said in err and err.count("\n") == 1, (args, err)
    assert a_file.read_text() == "mine\n"


@pytest.mark.parametrize("flags, field, value, said", [
    (("--profile", "aws"), "model_id", DELETED, "the plan's launch.api lacks model_id"),
    (("--profile", "aws"), "model_id", "openai.gpt-oss-20b-1:0", "launch.api.model_id is 'openai.gpt-oss-20b-1:0'"),
    (("--profile", "aws"), "region", "us-east-1; rm -rf", "launch.api.region is 'us-east-1; rm -rf'"),
    (("--backend", "azure"), "model_id", "https://evil.example/model", "launch.api.model_id"),
    (("--backend", "azure", "--azure-mode", "managed"), "instance_type", "Standard_ND96_evil", "instance_type"),
    (("--backend", "hf-endpoints"), "instance_type", DELETED, "the plan's launch.api lacks instance_type"),
    (("--backend", "hf-endpoints"), "extra", "field", "a field gptoss does not plan: 'extra'")])
def test_a_saved_cloud_call_is_only_what_gptoss_plans(run_cli, tmp_path, flags, field, value, said):
    """A cloud plan's API call is checked field by field before any API is called: nothing missing, nothing added."""
    plan = json.loads(run_cli("plan", "--hardware", CPU_ONLY, "--json", *flags)[1])
    saved = tmp_path / "t.json"
    saved.write_text(json.dumps(replaced(plan, ("launch", "api", field), value)))
    for args in (("up", "--plan", saved, "--dry-run"), ("up", "--plan", saved, "--yes")):
        code, _, err = run_cli(*args)
        assert code == 2 and said in err and err.count("\n") == 1, err
    saved.write_text(json.dumps(plan))                   # as planned: export says what it exports instead
    code, _, err = run_cli("export", "--format", "compose", "--plan", saved)
    assert code == 2 and "export runs vLLM and llama.cpp plans" in err, err


# Every variable gptoss reads, with a command that parses it. A new variable in the code fails the test below until
# it is listed here, and so gets the generated values of the test after it.
READS_IT = {
    "plan": ("plan", "--json", "--hardware", CPU_ONLY),
    "dry run": ("up", "--dry-run", "--json", "--hardware", CPU_ONLY),
    "dry run, vLLM": ("up", "--dry-run", "--json", "--gpu", "H100", "--model", "20b", "--backend", "vllm"),
    "dry run, SGLang": ("up", "--dry-run", "--json", "--gpu", "H100", "--model", "20b", "--backend", "sglang"),
    "dry run, LM Studio": ("up", "--dry-run", "--json", "--hardware", CPU_ONLY, "--backend", "lmstudio"),
    "dry run, all interfaces": ("up", "--dry-run", "--json", "--hardware", CPU_ONLY, "--host", "0.0.0.0"),
    "status": ("status", "--json"),
    "down": ("down", "--all"),
    "bench": ("bench", "--url", "http://127.0.0.1:9/v1", "--json"),
    "sweep": ("bench", "--url", "http://127.0.0.1:9/v1", "--effort-sweep", "--json"),
    "azure": ("up", "--backend", "azure", "--hardware", CPU_ONLY, "--yes", "--json"),
    "hf endpoints": ("up", "--backend", "hf-endpoints", "--hardware", CPU_ONLY, "--yes", "--json"),
}
ENVIRONMENT = {
    "GPTOSS_PROFILE": "plan", "GPTOSS_MODEL": "plan", "GPTOSS_BACKEND": "plan", "GPTOSS_CONTEXT": "plan",
    "GPTOSS_REASONING_EFFORT": "plan", "GPTOSS_CLOUD": "plan", "GPTOSS_VARIANT": "plan", "GPTOSS_LOCAL": "plan", "GPTOSS_AZURE_MODE": "plan",
    "GPTOSS_DEBUG": "plan", "GPTOSS_LLAMA_SERVER": "dry run", "GPTOSS_VLLM": "dry run, vLLM", "GPTOSS_SGLANG": "dry run, SGLang",
    "GPTOSS_LMS": "dry run, LM Studio", "GPTOSS_API_KEY": "dry run, all interfaces", "GPTOSS_STATE_DIR": "status",
    "GPTOSS_DEPLOYMENT": "status", "GPTOSS_STOP_GRACE_S": "down", "GPTOSS_BENCH_BUDGET_S": "bench",
    "GPTOSS_SWEEP_BUDGET_S": "sweep", "GPTOSS_AZURE_TIMEOUT_S": "azure", "GPTOSS_AZURE_POLL_S": "azure",
    "GPTOSS_HF_POLL_S": "hf endpoints", "LLAMA_ARG_THREADS": "plan",
}
ENV_VALUES = st.sampled_from(["", " ", "-5", "0", "1e999", "nan", "abc", "9" * 30, "/tmp", "/etc/passwd", "a\nb",
                              "../../../etc", "1", "true", "llamacpp", "120b", "high", "managed"]) | st.text(
    st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=20)


def test_every_variable_the_code_reads_is_in_the_table():
    root = Path(__file__).parent.parent
    code = "\n".join(p.read_text() for folder in ("planner", "backends", "runtime", "verify", "export", "cli")
                     for p in (root / folder).glob("*.py"))
    # ours, and the engine's own variables a plan reads (llama-server's thread count)
    assert set(re.findall(r"(?:GPTOSS|LLAMA_ARG)_[A-Z_]+[A-Z]", code)) == set(ENVIRONMENT)


@pytest.mark.parametrize("variable", ENVIRONMENT)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=ENV_VALUES)
def test_any_value_of_any_variable_is_taken_or_refused_in_words(run_cli, tmp_path, monkeypatch, variable, value):
    monkeypatch.setenv("GPTOSS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("HOME", str(tmp_path))        # no user's cloud credentials: nothing is created anywhere
    if variable == "GPTOSS_STATE_DIR":
        value = str(tmp_path / value.lstrip("/"))    # hostile, but never a system directory
    monkeypatch.setenv(variable, value)
    code, _, err = run_cli(*READS_IT[ENVIRONMENT[variable]])
    assert code != 1 and "internal error" not in err and "Traceback" not in err, (variable, value, err)


RECORDED = {}     # a deployment's record as `up` writes it (its plan and benchmark included), made once


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_field_of_a_recorded_deployment_is_read_or_recovered(run_cli, tmp_path, monkeypatch, stand_in, smollm2,
                                                                 data):
    """Every field of a real record, its plan and benchmark rows included, mutated: status and down answer."""
    root = tmp_path / "state"
    monkeypatch.setenv("GPTOSS_STATE_DIR", str(root))
    if not RECORDED:
        stand_in("llama-server")
        monkeypatch.setenv("GPTOSS_BENCH_BUDGET_S", "60")
        code, out, err = run_cli("up", "--gguf", smollm2, "--port", free_port(), "--json")
        assert code == 0, err
        assert run_cli("down", "--all")[0] == 0
        RECORDED.update(json.loads(out))
        assert RECORDED["benchmark"]["samples"] and RECORDED["plan"]["memory"]
    record = {**RECORDED, "pid": None, "pid_started_at": None, "engine_pid": None, "launcher_pid": None}
    content = data.draw(mutations({"schema_version": 1, "deployments": {record["name"]: record}}))
    root.mkdir(exist_ok=True)
    (root / "deployments.json").write_text(json.dumps(content))
    for args in (("status", "--json"), ("status",), ("down", "--all")):
        code, _, err = run_cli(*args)
        assert code in (0, 2, 4) and "internal error" not in err and "Traceback" not in err, (args, err)


URLS = st.sampled_from(["", "not a url", "file:///etc/passwd", "ftp://127.0.0.1/v1", "http://", "http://[::1",
                        "http://127.0.0.1:0/v1", "http://127.0.0.1:99999/v1", "http://user:secret@127.0.0.1:9/v1",
                        "https://127.0.0.1:9/v1", "http://127.0.0.1:9/v1\n", "//127.0.0.1:9"]) | st.text(
    st.characters(exclude_characters="\x00:/", exclude_categories=["Cs"]), max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(url=URLS)
def test_bench_takes_any_url_or_refuses_it_in_words(run_cli, tmp_path, monkeypatch, url):
    """Nothing listens on these (loopback port 9 or an address that does not parse): exit 2 or 4, never 1."""
    monkeypatch.setenv("GPTOSS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("GPTOSS_BENCH_BUDGET_S", "5")
    code, _, err = run_cli("bench", "--url", url, "--json")
    assert code in (2, 4) and err.splitlines()[-1].startswith("gptoss: error: "), (url, err)
    assert "secret" not in err                                      # a password in the URL is never echoed
