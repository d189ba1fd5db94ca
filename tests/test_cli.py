"""The command line: flags, output contracts and exit codes, through the same error mapping as the scripts."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gptoss_deploy.cli import app as cli
from gptoss_deploy.cli.plan_commands import plan_command

from helpers import fixture_path

LAPTOP = fixture_path("laptop-rtx4060-8gb")


def test_plan_json_is_one_document_with_the_contract_fields(run_cli):
    code, out, err = run_cli("plan", "--hardware", LAPTOP, "--json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    for key in ("schema_version", "status", "model", "backend", "quantization", "context_length",
                "reasoning_effort", "offload", "memory", "predicted", "launch", "reasons", "alternatives"):
        assert key in doc
    assert set(doc["memory"]["breakdown"]) >= {"weights", "kv_cache", "compute", "runtime"}
    assert doc["offload"]["n_cpu_moe"] > 0


def test_human_plan_shows_breakdown_reasons_runners_up_and_the_up_command(run_cli):
    code, out, _ = run_cli("plan", "--hardware", LAPTOP, "--yes", "--profile", "laptop")
    assert code == 0
    for text in ("Memory, GiB", "Predicted: decode", "Binding constraint: GPU memory", "Why:",
                 "--n-cpu-moe", "Runners-up", "gptoss-up --profile laptop"):
        assert text in out


@pytest.mark.parametrize("args,message", [
    (["--model", "30b"], "unknown model '30b'"),
    (["--backend", "tgi"], "unknown backend 'tgi'"),
    (["--context", "0"], "context must be a number of tokens from 4096 (4k) to 131072 (128k)"),
    (["--context", "100"], "leave no room for an answer"),
    (["--context", "lots"], "context must be a number of tokens"),
    (["--profile", "nope"], "unknown profile 'nope'"),
    (["--bogus"], "No such option"),
    (["--hardware", "/does/not/exist.json"], "does not exist"),
])
def test_bad_input_exits_2_with_one_line(run_cli, args, message):
    code, out, err = run_cli("plan", "--hardware", LAPTOP, "--yes", *args)
    assert code == 2
    assert message in err and err.count("\n") == 1 and err.startswith("gptoss: error: ")
    assert "Traceback" not in err + out


@pytest.mark.parametrize("content,message", [
    ("", "is empty"),
    ("{not json", "is not valid JSON"),
    ('{"schema_version": 2}', "schema_version must be 1"),
    ('{"schema_version": 1, "os": "linux", "arch": "x86_64", "cpu": {"physical_cores": 4, "logical_cores": 8}}',
     "field memory: Field required"),
    ('[1, 2]', "expected a JSON object"),
])
def test_bad_hardware_file_exits_2_naming_the_file(run_cli, tmp_path, content, message):
    path = tmp_path / "node.json"
    path.write_text(content)
    code, _, err = run_cli("plan", "--hardware", path, "--json")
    assert code == 2 and message in err and str(path) in err


def test_no_fit_with_json_prints_the_error_document_and_exits_3(run_cli):
    code, out, err = run_cli("plan", "--hardware", fixture_path("cpu-only"), "--model", "120b", "--local", "--json")
    assert code == 3
    doc = json.loads(out)
    assert doc["exit_code"] == 3 and doc["error"]["code"] == "no_fit"
    assert doc["error"]["message"] in err


def test_up_dry_run_prints_the_exact_command_and_the_download(run_cli):
    code, out, _ = run_cli("up", "--hardware", LAPTOP, "--dry-run")
    assert code == 0 and "nothing was started" in out
    assert "download: ggml-org/gpt-oss-20b-GGUF gpt-oss-20b-mxfp4.gguf (11.3 GiB to download)" in out
    assert "--model '<ggml-org/gpt-oss-20b-GGUF/gpt-oss-20b-mxfp4.gguf>' --alias gpt-oss-20b" in out


def test_up_applies_a_saved_plan(run_cli, tmp_path):
    _, saved, _ = run_cli("plan", "--hardware", fixture_path("h100-sxm"), "--profile", "server", "--json")
    path = tmp_path / "plan.json"
    path.write_text(saved)
    code, out, _ = run_cli("up", "--plan", path, "--dry-run", "--json")
    assert code == 0 and json.loads(out)["plan"] == json.loads(saved)


def test_up_refuses_planning_flags_beside_a_saved_plan(run_cli, tmp_path):
    _, saved, _ = run_cli("plan", "--hardware", LAPTOP, "--json")
    path = tmp_path / "plan.json"
    path.write_text(saved)
    code, _, err = run_cli("up", "--plan", path, "--model", "120b", "--dry-run")
    assert code == 2 and "drop the planning flags" in err


def test_up_refuses_a_plan_file_that_is_an_error_document(run_cli, tmp_path):
    _, saved, _ = run_cli("plan", "--hardware", fixture_path("cpu-only"), "--model", "120b", "--local", "--json")
    path = tmp_path / "plan.json"
    path.write_text(saved)
    code, _, err = run_cli("up", "--plan", path, "--dry-run")
    assert code == 2 and "holds an error, not a plan" in err


def test_probe_json_round_trips_into_plan(run_cli, tmp_path):
    code, out, _ = run_cli("probe", "--json")
    assert code == 0
    path = tmp_path / "me.json"
    path.write_text(out)
    code, out, _ = run_cli("plan", "--hardware", path, "--json", "--local")
    assert code in (0, 3)          # this CI machine may be too small for any gpt-oss
    assert json.loads(out)["schema_version"] == 1


def test_profiles_lists_name_and_description(run_cli):
    code, out, _ = run_cli("profiles")
    assert code == 0
    for name in ("laptop", "workstation", "server", "aws", "azure", "auto"):
        assert name in out


def test_gptoss_plan_script_is_the_plan_command(run_cli):
    code, out, _ = run_cli("--hardware", LAPTOP, "--json", app=cli._single(plan_command), prog="gptoss-plan")
    assert code == 0 and json.loads(out)["model"] == "gpt-oss-20b"


def test_installed_scripts_run_as_a_user_would():
    plan_script = subprocess.run([sys.executable, "-c", "from gptoss_deploy.cli.app import plan_main; plan_main()",
                                  "--hardware", str(LAPTOP), "--json"], capture_output=True, text=True)
    assert plan_script.returncode == 0 and json.loads(plan_script.stdout)["backend"] == "llamacpp"
    bad = subprocess.run([sys.executable, "-c", "from gptoss_deploy.cli.app import main; main()", "plan", "--context", "-1",
                          "--hardware", str(LAPTOP), "--json"], capture_output=True, text=True)
    assert bad.returncode == 2 and json.loads(bad.stdout)["error"]["code"] == "bad_input"


def _plan_in_a_fresh_interpreter(before: str, after: str, env: dict | None = None) -> str:
    """gptoss-plan run as its script runs, in a new interpreter: BEFORE runs first, AFTER once the plan exits (its
    exit code in `code`); the last line AFTER printed."""
    code = (f"import sys\n{before}\nfrom gptoss_deploy.cli.app import plan_main\n"
            f"sys.argv = ['gptoss-plan', '--hardware', {str(LAPTOP)!r}, '--json']\n"
            "try:\n    plan_main()\nexcept SystemExit as done:\n    code = done.code\n" + after)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    return result.stdout.strip().splitlines()[-1]


def test_planning_imports_no_heavy_sdk():
    """Nor rich (a JSON plan draws nothing), nor the launch, benchmark and export code gptoss-plan never runs
    (tests/bench_startup.py measures what that saves): of the runtime, it reads only the kept benchmarks."""
    after = ("heavy = ('boto3', 'botocore', 'azure', 'ollama', 'httpx', 'huggingface_hub', 'questionary', 'rich')\n"
             "ours = ('gptoss_deploy.runtime.', 'gptoss_deploy.verify', 'gptoss_deploy.export')\n"
             "reads = ('gptoss_deploy.runtime.calibrations', 'gptoss_deploy.runtime.state')\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m.startswith(ours) and m not in reads))")
    assert _plan_in_a_fresh_interpreter("", after) == "[]"


def test_gptoss_plan_reads_no_installed_package_metadata():
    """Looking for pydantic plugins reads every installed distribution's metadata (a big environment's start-up
    cost); gptoss-plan validates only its own files, so it does not look."""
    before = ("import importlib.metadata\nlooked = []\nfind = importlib.metadata.entry_points\n"
              "importlib.metadata.entry_points = lambda **kw: looked.append(kw) or find(**kw)")
    environment = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    assert _plan_in_a_fresh_interpreter(before, "print(code, looked)", environment) == "0 []"


def test_cloud_plan_dry_run_shows_the_api_call(run_cli):
    code, out, _ = run_cli("up", "--profile", "aws", "--dry-run", "--json")
    api = json.loads(out)["api"]
    assert code == 0 and api["model_id"] == "openai.gpt-oss-120b-1:0" and api["operation"] == "ConverseStream"


def test_up_never_launches_a_billed_service_unasked(run_cli):
    """120b does not fit this CPU-only machine: without --cloud, `up` names the choices instead of going to Bedrock."""
    machine = fixture_path("cpu-only")
    code, out, err = run_cli("up", "--dry-run", "--hardware", machine, "--model", "120b")
    assert code == 3 and out == ""
    assert "gpt-oss-20b on llamacpp fits (drop --model); or, billed: gpt-oss-120b on bedrock (add --cloud)" in err
    code, out, err = run_cli("up", "--dry-run", "--hardware", machine, "--model", "120b", "--cloud")
    assert code == 0 and "gpt-oss-120b on bedrock" in out, err


def test_export_plans_vllm_over_nodes_without_asking_and_never_hints_at_flags_not_given(run_cli, monkeypatch):
    code, out, err = run_cli("export", "--format", "kubernetes", "--gpu", "L4:2", "--nodes", "2", "--model", "120b")
    assert code == 0 and "kind: LeaderWorkerSet" in out and "--pipeline-parallel-size 2" in out, err
    monkeypatch.setenv("GPTOSS_MODEL", "120b")
    code, _, err = run_cli("export", "--format", "compose", "--hardware", fixture_path("cpu-only"))
    assert code == 3 and "fits (unset GPTOSS_MODEL)" in err
    assert "--local" not in err and "--cloud" not in err and "billed" not in err
