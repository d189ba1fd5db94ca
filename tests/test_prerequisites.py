"""Every plan states what it needs on the machine that runs `gptoss-up` (the extra, the program, cloud credentials,
free disk for the download) and whether this machine has it, with the line that fixes what is missing."""
from __future__ import annotations

import json

from helpers import fixture_path
from test_missing_extras import gptoss_without

CPU_ONLY = fixture_path("cpu-only")


def needs(doc: dict) -> dict[str, dict]:
    return {item["need"].split(" (")[0]: item for item in doc["prerequisites"]}


def test_a_bedrock_plan_names_its_extra_and_the_missing_credentials_with_the_fix(run_cli, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    code, out, err = run_cli("plan", "--hardware", CPU_ONLY, "--backend", "bedrock", "--json")
    assert code == 0, err
    found = needs(json.loads(out))
    assert found["the boto3 Python package"]["met"] is True
    credentials = found["AWS credentials"]
    assert credentials["met"] is False and "aws configure" in credentials["fix"]
    monkeypatch.setenv("AWS_PROFILE", "dev")
    assert needs(json.loads(run_cli("plan", "--hardware", CPU_ONLY, "--backend", "bedrock", "--json")[1]))[
        "AWS credentials"]["met"] is True


def test_a_missing_extra_is_stated_in_the_plan_with_its_install_line():
    result = gptoss_without("boto3", "plan", "--hardware", str(CPU_ONLY), "--backend", "bedrock", "--json")
    assert result.returncode == 0, result.stderr
    extra = needs(json.loads(result.stdout))["the boto3 Python package"]
    assert extra == {"need": "the boto3 Python package (extra aws)", "met": False,
                     "fix": "pip install 'gptoss-deploy[aws]'"}


def test_a_disk_too_small_for_the_download_is_stated_before_anything_downloads(run_cli, tmp_path):
    small = json.loads(CPU_ONLY.read_text())
    small["disk"]["free_bytes"] = 5 * 10**9
    hardware = tmp_path / "small-disk.json"
    hardware.write_text(json.dumps(small))
    code, out, err = run_cli("plan", "--hardware", hardware, "--json")
    assert code == 0, err
    disk = next(item for item in json.loads(out)["prerequisites"] if "free for the download" in item["need"])
    assert disk["met"] is False and "HF_HUB_CACHE" in disk["fix"]
    assert "(4.7 GiB free)" in disk["need"]


def test_the_missing_program_and_its_install_line_show_in_the_printed_plan(run_cli, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("GPTOSS_VLLM", raising=False)
    code, out, err = run_cli("plan", "--hardware", fixture_path("h100-sxm"), "--profile", "auto", "--yes")   # vLLM
    assert code == 0, err
    needs_section = out[out.index("Needs here:"):out.index("Why:")]
    assert "missing vllm (on PATH or GPTOSS_VLLM): vLLM is not installed" in " ".join(needs_section.split())
    assert "ok      " in needs_section                       # the disk for the download is there


def test_the_dry_run_of_a_saved_plan_checks_its_prerequisites_on_this_machine(run_cli, monkeypatch, tmp_path):
    _, saved, _ = run_cli("plan", "--hardware", CPU_ONLY, "--json")
    plan = tmp_path / "plan.json"
    plan.write_text(saved)
    monkeypatch.setenv("GPTOSS_LLAMA_SERVER", "/opt/llama.cpp/llama-server")
    code, out, err = run_cli("up", "--plan", plan, "--dry-run", "--json")
    assert code == 0, err
    found = needs(json.loads(out))
    assert found["llama-server"]["met"] is True
    here = json.loads(run_cli("probe", "--json")[1])["disk"]["path"]
    assert any(here in need for need in found)          # this machine's model cache, not the saved plan's
