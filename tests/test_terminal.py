"""What a person sees in a terminal of any width: commands to copy come out whole on one line (they parse back to
the argv the JSON holds), and no `[...]` of ours is eaten as rich markup."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest

from helpers import fixture_path

WIDTHS = [60, 80, 200]
M2 = str(fixture_path("apple-m2-16gb"))


def line_after(out: str, label: str) -> str:
    lines = out.splitlines()
    return lines[lines.index(label) + 1].strip()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_launch_line_and_the_server_command_copy_whole_at_any_width(run_cli, monkeypatch, width):
    monkeypatch.setenv("COLUMNS", str(width))
    flags = ["--profile", "laptop", "--model", "20b", "--context", "65536", "--reasoning-effort", "high", "--local",
             "--hardware", M2]
    code, out, err = run_cli("plan", "--yes", *flags)
    assert code == 0, err
    assert shlex.split(line_after(out, "Launch it:")) == ["gptoss-up", *flags]
    doc = json.loads(run_cli("plan", "--json", *flags)[1])
    dry = json.loads(run_cli("up", "--dry-run", "--json", "--force", *flags)[1])
    assert shlex.split(line_after(out, "Command that will run here:")) == dry["argv"]   # here: not the plan's
    assert all(f"  - {reason}" in out for reason in doc["reasons"])                     # never folded by us


@pytest.mark.parametrize("width", WIDTHS)
def test_the_dry_run_command_is_the_one_line_the_json_holds(run_cli, monkeypatch, width):
    monkeypatch.setenv("COLUMNS", str(width))
    monkeypatch.setenv("GPTOSS_VLLM", "/opt/vllm/bin/vllm")
    args = ["up", "--dry-run", "--hardware", fixture_path("mi300x"), "--force", "--profile", "server"]
    code, out, err = run_cli(*args)
    assert code == 0, err
    dry = json.loads(run_cli(*args, "--json")[1])
    printed = next(line.strip() for line in out.splitlines() if "vllm serve" in line)
    env = [f"{k}={v}" for k, v in dry["env"].items()]
    assert shlex.split(printed) == [*env, *dry["argv"]]


def gptoss(*args: str, width: int, without: str | None = None) -> subprocess.CompletedProcess:
    """gptoss in its own process, COLUMNS wide, with the package WITHOUT made absent."""
    hide = f"sys.modules[{without!r}] = None; " if without else ""
    program = f"import sys; {hide}from gptoss_deploy.cli.app import main; main()"
    env = {**os.environ, "COLUMNS": str(width), "PATH": "/nonexistent", "GPTOSS_LLAMA_SERVER": ""}
    return subprocess.run([sys.executable, "-c", program, *args], capture_output=True, text=True, timeout=60,
                          env=env)


@pytest.mark.parametrize("width", WIDTHS)
def test_install_hints_keep_their_brackets(width):
    llamacpp = gptoss("up", "--dry-run", "--hardware", str(fixture_path("cpu-only")), width=width, without="xllamacpp")
    assert llamacpp.returncode == 0, llamacpp.stderr
    assert "pip install 'gptoss-deploy[llamacpp]'" in llamacpp.stdout
    aws = gptoss("plan", "--yes", "--hardware", str(fixture_path("cpu-only")), "--backend", "bedrock", width=width,
                 without="boto3")
    assert aws.returncode == 0, aws.stderr
    assert "pip install 'gptoss-deploy[aws]'" in aws.stdout


def memory_rows(out: str) -> dict[str, dict[str, str]]:
    """The memory table's rows by device, each cell by its column's name."""
    table = out[out.index("Memory, GiB"):out.index("  weights ")]
    header = next(line for line in table.splitlines() if "device" in line)
    names = [c.strip() for c in header.strip("┃").split("┃")]
    return {cells[0]: dict(zip(names[1:], cells[1:])) for line in table.splitlines()
            if len(cells := [c.strip() for c in line.strip("│").split("│")]) == len(names)}


def gib1(size: int) -> str:
    return f"{size / 2**30:.1f}"


@pytest.mark.parametrize("fixture", ["rtx4090-desktop", "2x-h100", "apple-m2-16gb", "strix-halo-128gb"])
def test_the_memory_view_reads_at_80_columns_and_adds_up_to_the_json(run_cli, monkeypatch, fixture):
    monkeypatch.setenv("COLUMNS", "80")
    args = ["plan", "--hardware", fixture_path(fixture)]
    out, doc = run_cli(*args, "--yes", "--verbose")[1], json.loads(run_cli(*args, "--json")[1])
    assert "…" not in out[out.index("Memory, GiB"):out.index("Command that will run here")]
    rows, memory = memory_rows(out), doc["memory"]
    hardware = json.loads(fixture_path(fixture).read_text())
    if any(g["unified_memory"] for g in hardware["gpus"]):      # one pool, counted once
        assert list(rows) == ["unified"]
        assert rows["unified"]["used"] == gib1(memory["gpu_bytes"] + memory["cpu_bytes"])
        assert rows["unified"]["free"] == gib1(hardware["memory"]["available_bytes"])
        return
    for device in memory["devices"]:
        row = rows["RAM" if device["device"] == "cpu" else device["device"]]
        assert row["used"] == gib1(device["used_bytes"]) and row["free"] == gib1(device["available_bytes"])
        assert row.get("cache", "0.0") == gib1(device["breakdown"]["cache"])   # llama-server's host caches
    assert rows["total"]["used"] == gib1(memory["gpu_bytes"] + memory["cpu_bytes"])
    for term in ("weights", "KV cache", "compute", "runtime", "cache", "used", "headroom", "free"):
        assert f"\n  {term} " in out                                       # each term explained


COMMANDS = ["probe", "plan", "profiles", "backends", "schema", "up", "status", "down", "bench"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_real_metavars_whole_variable_names_and_examples(run_cli, monkeypatch, command):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run_cli(command, "--help")
    assert code == 0
    assert "Example" in out
    options = out[out.index("Options:"):]
    assert "<str>" not in options and "<bool>" not in options and "…" not in out
    if command == "up":
        assert "AZURE_SUBSCRIPTION_ID" in out and "--reasoning-effort low|medium|high" in out
        assert "--port INTEGER" in out and "--context TOKENS" in out


@pytest.mark.parametrize("script", ["gptoss", "gptoss-plan", "gptoss-up"])
def test_version(script):
    from importlib.metadata import version

    from gptoss_deploy.cli import app as cli
    from gptoss_deploy.cli.deploy_commands import up_command
    from gptoss_deploy.cli.plan_commands import plan_command

    application = {"gptoss": cli.gptoss_app(), "gptoss-plan": cli._single(plan_command),
                   "gptoss-up": cli._single(up_command)}[script]
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli._run(application, script, ["--version"]) == 0
    assert out.getvalue() == f"{script} {version('gptoss-deploy')}\n"


CITATION_CODES = r"\b(G15396|SPARK|IK1075|STX33|V22331|IX828|SMC3090|HFCFG|OAI|LCS|CBO|OLL)\b|\((VR|AWS|AZ)\)"


@pytest.mark.parametrize("fixture", ["apple-m2-16gb", "cpu-only-16core", "dgx-spark-gb10", "mi300x"])
def test_people_read_plain_words_one_rounding_and_unnested_prices(run_cli, monkeypatch, fixture):
    import re

    code, out, err = run_cli("plan", "--yes", "--hardware", fixture_path(fixture), "--cloud")
    assert code == 0, err
    assert not re.search(CITATION_CODES, out), re.search(CITATION_CODES, out)
    decode = re.search(r"Predicted: decode (\S+) tok/s", out)[1]
    assert f"predicted at {decode} tok/s" in out or f"predicted {decode} tok/s" in out or "model: gpt-oss" in out
    assert not re.search(r"\([^()]*\([^()]*\)[^()]*\)", out.split("Runners-up")[0])   # no (nested (parentheses))


def test_the_apple_hint_and_the_header_round_the_same_speed_the_same_way(run_cli):
    import re

    out = run_cli("plan", "--yes", "--hardware", fixture_path("apple-m2-16gb"), "--model", "20b",
                  "--context", "64k", "--local")[1]
    header = re.search(r"Predicted: decode (\S+) tok/s", out)[1]
    assert f"instead of {header} tok/s" in out


def test_a_noisy_benchmark_shows_its_spread_and_the_machine_load(monkeypatch):
    """2.1 / 3.6 / 23.7 tok/s on a loaded machine: a person sees the runs disagree and why they might."""
    import io

    from rich.console import Console

    from gptoss_deploy.cli.render_deploy import render_benchmark
    from gptoss_deploy.runtime.records import Benchmark

    samples = [{"ttft_ms": 300.0, "completion_tokens": 64, "decode_tokens_per_s": v, "server_decode_tokens_per_s": None}
               for v in (2.1, 3.6, 23.7)]
    bench = Benchmark(decode_tokens_per_s=3.6, server_decode_tokens_per_s=None, ttft_ms=300.0,
                      aggregate_tokens_per_s=9.0, concurrency=4, output_tokens=64, predicted_decode_tokens_per_s=20.0,
                      measured_vs_predicted=0.18, roofline_efficiency=None, verdict="unstable", reasons=["noisy"],
                      samples=samples, load_average_1m=7.5, wall_s=64.0)
    out = io.StringIO()
    render_benchmark(Console(file=out, width=80), bench)
    text = " ".join(out.getvalue().split())
    assert "each single-stream run │ 2.1 / 3.6 / 23.7" in text and "fastest run / slowest run │ 11.3x" in text
    assert "machine load while measuring │ 7.5 (1-minute average)" in text and "time the run took │ 64 s" in text


COPYABLE = ("gptoss-up ", "llama-server ", "vllm serve", "ollama serve", "pip install", "sudo sysctl", "export ",
            "curl ", "VLLM_")
HUMAN_OUTPUTS = [
    ["probe"], ["profiles"], ["backends"], ["status"],
    ["plan", "--yes", "--hardware", "apple-m2-16gb"], ["plan", "--yes", "--hardware", "cpu-only", "--cloud"],
    ["plan", "--yes", "--hardware", "8x-h100", "--profile", "server"],
    ["up", "--dry-run", "--hardware", "rtx4090-desktop", "--force"],
    ["up", "--dry-run", "--hardware", "h100-sxm", "--force", "--profile", "server"],
    ["up", "--dry-run", "--hardware", "cpu-only", "--force", "--backend", "ollama"],
]


def copyable_lines(out: str) -> list[str]:
    """The lines that hold a command, from where the command starts."""
    found = []
    for line in out.splitlines():
        start = min((line.find(c) for c in COPYABLE if c in line), default=-1)
        if start >= 0 and "`" not in line:
            found.append(line[start:].strip())
    return found


@pytest.mark.parametrize("width", [60, 80])
@pytest.mark.parametrize("args", HUMAN_OUTPUTS, ids=lambda a: " ".join(a))
def test_every_copyable_line_of_every_human_output_is_the_same_at_any_width(run_cli, monkeypatch, width, args):
    """A command shows whole on one line, word for word what a 200-column terminal shows."""
    monkeypatch.setenv("GPTOSS_VLLM", "/opt/vllm/bin/vllm")
    args = [str(fixture_path(a)) if i and args[i - 1] == "--hardware" else a for i, a in enumerate(args)]
    seen = {}
    for columns in (width, 200):
        monkeypatch.setenv("COLUMNS", str(columns))
        code, out, err = run_cli(*args)
        assert code == 0, err
        seen[columns] = copyable_lines(out)
    assert seen[width] == seen[200]
    assert all(shlex.split(line) and "…" not in line for line in seen[width])


def test_backends_at_80_columns_give_each_install_hint_whole():
    listed = gptoss("backends", width=80)
    assert listed.returncode == 0 and "…" not in listed.stdout
    lines = listed.stdout.splitlines()
    assert "ollama: Ollama is not installed: get it from https://ollama.com/download (Linux: `curl -fsSL " \
           "https://ollama.com/install.sh | sh`), or choose --backend llamacpp" in lines


def test_status_at_80_columns_keeps_each_name_and_address_whole(run_cli, state, smollm2, stand_in, monkeypatch):
    from helpers import free_port

    stand_in("llama-server")
    port = free_port()
    assert run_cli("up", "--gguf", smollm2, "--port", port, "--no-bench")[0] == 0
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run_cli("status")
    lines = [line.strip() for line in out.splitlines()]
    assert code == 0 and "…" not in out
    assert any(line.startswith("SmolLM2-135M-Instruct.Q4_1-llamacpp  running") for line in lines)
    assert f"http://127.0.0.1:{port}/v1" in lines and "decode not measured" in out
