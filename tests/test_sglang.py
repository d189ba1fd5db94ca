"""SGLang (--backend sglang): one adapter file and its registry line. Planned with the flags of SGLang's gpt-oss
cookbook, launched and benchmarked through the real registry with a stand-in `sglang` (no GPU here), its key in a
config file and never in argv, exported as a container. tests/upstream/check_sglang.py parses the commands with
SGLang's own parser."""
from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import psutil
import pytest
import yaml

from helpers import fixture_path, free_port, measured

H100 = fixture_path("h100-sxm")   # launched here with --force: this machine is not the H100 it describes


def plan(run_cli, *flags) -> dict:
    code, out, err = run_cli("plan", "--backend", "sglang", "--json", *flags)
    assert code == 0, err
    return json.loads(out)


def test_a_plan_carries_the_cookbooks_parsers_and_the_placement(run_cli):
    doc = plan(run_cli, "--hardware", H100, "--model", "120b", "--context", "32768")
    argv = doc["launch"]["argv"]
    assert argv[:4] == ["sglang", "serve", "--model-path", "openai/gpt-oss-120b"]
    flags = dict(zip(argv[4::2], argv[5::2]))
    assert flags["--reasoning-parser"] == flags["--tool-call-parser"] == "gpt-oss"
    assert (flags["--tp-size"], flags["--context-length"], flags["--host"]) == ("1", "32768", "127.0.0.1")
    static = float(flags["--mem-fraction-static"])
    assert 0.5 < static < doc["memory"]["devices"][0]["used_bytes"] / 80e9 + 0.05     # weights + KV, not activations
    eight = plan(run_cli, "--gpu", "H100:8", "--model", "20b")["launch"]["argv"]
    assert eight[eight.index("--dp-size") + 1] == "8"                                  # copies, side by side


@pytest.mark.parametrize("machine, said", [
    (["--gpu", "MI300X"], "MI300X and MI325X with MXFP4: work in progress"),
    (["--gpu", "L40S"], "covers H100, H200, B200, MI355X"),
    (["--hardware", fixture_path("cpu-only")], "no GPU"),
])
def test_gpus_outside_the_cookbook_are_not_planned_and_say_why(run_cli, machine, said):
    code, out, _ = run_cli("plan", "--backend", "sglang", "--model", "120b", "--json", *machine)
    message = json.loads(out)["error"]["message"]
    assert code == 3 and said in message
    offered = [choice.split(" (")[0] for choice in message.split("Instead: ")[-1].split("; or, ")]
    assert len(offered) == len(set(offered))          # each other plan offered once, however it is reached


@pytest.fixture
def sglang(stand_in):
    return stand_in("sglang")


def test_up_launches_serves_and_benchmarks_with_the_key_in_a_file_not_argv(run_cli, state, sglang, monkeypatch):
    monkeypatch.setenv("GPTOSS_API_KEY", "sglang-test-key-0123456789")
    code, out, err = run_cli("up", "--hardware", H100, "--force", "--backend", "sglang", "--model", "120b",
                             "--context", "32768", "--host", "0.0.0.0", "--port", free_port(), "--json")
    assert code == 0, err
    record = json.loads(out)
    assert measured(record["benchmark"]) and record["benchmark"]["predicted_decode_tokens_per_s"]
    started = json.loads(sglang.read_text())
    assert "sglang-test-key-0123456789" not in json.dumps(started["argv"]) + json.dumps(record)
    config = Path(started["argv"][started["argv"].index("--config") + 1])
    assert yaml.safe_load(config.read_text()) == {"api-key": "sglang-test-key-0123456789"}    # as SGLang reads it
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    engine = psutil.Process(record["engine_pid"])
    assert "sglang-test-key-0123456789" not in " ".join(engine.cmdline())
    code, _, err = run_cli("down", record["name"])
    assert code == 0 and not config.exists(), err                  # the key's files go with the deployment


def test_a_saved_plan_with_an_added_flag_is_refused(run_cli, state, tmp_path):
    doc = plan(run_cli, "--hardware", H100, "--model", "20b")
    doc["launch"]["argv"] += ["--api-key", "leaked"]
    saved = tmp_path / "plan.json"
    saved.write_text(json.dumps(doc))
    code, _, err = run_cli("up", "--plan", saved, "--dry-run")
    assert code == 2 and "--api-key" in err


def test_the_export_starts_sglang_on_a_config_the_pod_writes_from_the_secret(run_cli):
    code, out, err = run_cli("export", "--format", "kubernetes", "--gpu", "H100", "--model", "120b", "--backend",
                             "sglang")
    assert code == 0, err
    pods = [o for o in yaml.safe_load_all(out) if o and o["kind"] == "Deployment"]
    container = pods[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "lmsysorg/sglang:v0.5.23"
    assert container["command"][:2] == ["sh", "-c"] and "--config /tmp/sglang.yaml" in container["command"][2]
    assert "--host" in container["args"] and "0.0.0.0" in container["args"]
    assert any(e["name"] == "SGLANG_API_KEY" and "secretKeyRef" in e["valueFrom"] for e in container["env"])
    # checkov's finding for a key in a variable is waived with SGLang's own reason, not another engine's
    waiver = next(v for v in pods[0]["metadata"]["annotations"].values() if v.startswith("CKV_K8S_35="))
    assert waiver == ("CKV_K8S_35=SGLang reads its API key only from argv (which ps shows) or its --config file: the "
                      "start script writes SGLANG_API_KEY into that file before it runs SGLang; the value comes from "
                      "the Secret")


def test_the_exports_start_script_writes_the_key_sglang_reads_and_runs_the_server_on_it(run_cli, tmp_path):
    """The container's entrypoint and args, run by a real shell with a stand-in `sglang` that prints what it got:
    the key, whatever it holds, arrives in the config file only."""
    code, out, _ = run_cli("export", "--format", "kubernetes", "--gpu", "H100", "--model", "20b", "--backend",
                           "sglang")
    container = next(o for o in yaml.safe_load_all(out) if o and o["kind"] == "Deployment")[
        "spec"]["template"]["spec"]["containers"][0]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sglang").write_text('#!/bin/sh\necho "$@"\n')
    (bin_dir / "sglang").chmod(0o755)
    entrypoint = [part.replace("/tmp/", f"{tmp_path}/") for part in container["command"]]
    key = 'k3y "with" # odd: chars'
    done = subprocess.run([*entrypoint, *container["args"]], capture_output=True, text=True,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin", "SGLANG_API_KEY": key})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:2] == ["serve", "--model-path"] and key not in done.stdout
    assert done.stdout.split()[-2:] == ["--config", f"{tmp_path}/sglang.yaml"]
    assert yaml.safe_load((tmp_path / "sglang.yaml").read_text()) == {"api-key": key}
    assert stat.S_IMODE((tmp_path / "sglang.yaml").stat().st_mode) == 0o600
