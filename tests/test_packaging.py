"""Installed as users install it: the built wheel, not editable, in a fresh venv, run from a directory that has
packages of its own named like ours (an editable install from the checkout hides both of these faults)."""
from __future__ import annotations

import json
import os
import re
import shlex
import threading
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from uv import find_uv_bin

from fake_hub import FakeHub
from helpers import free_port

ROOT = Path(__file__).parent.parent
HOSTILE_PACKAGES = ("backends", "planner", "profiles", "gptoss_deploy")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy of the sources: a build/ left in the checkout by an older layout would leak into it."""
    source = tmp_path_factory.mktemp("source") / "gptoss-deploy"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".*", "build", "dist", "*.egg-info", "__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([find_uv_bin(), "build", "-q", "--wheel", "--out-dir", str(out), str(source)], check=True,
                   capture_output=True)
    [built] = out.glob("gptoss_deploy-*.whl")
    return built


def readme_command(number: int) -> str:
    """The README's NUMBERth command (its NUMBERth bash block)."""
    return re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), re.DOTALL)[number - 1]


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed as README command 1 installs the checkout (its extras); its bin/."""
    [extras] = re.findall(r"pip install -q -e '\.(\[[a-z,]+\])'", readme_command(1))
    venv = tmp_path_factory.mktemp("venv")
    # uv, as the test command installs with: the same resolution as pip, from the cache that install filled
    uv = find_uv_bin()
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    subprocess.run([uv, "pip", "install", "-q", "--compile-bytecode", "--python", str(venv / "bin" / "python"),
                    f"{wheel}{extras}"], check=True, capture_output=True)          # compiled, as pip installs
    return venv / "bin"


@pytest.fixture
def foreign_dir(tmp_path) -> Path:
    """A project directory with its own packages named like ours: importing any of them fails loudly."""
    for name in HOSTILE_PACKAGES:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise SystemExit(9)\n")
    return tmp_path


def test_the_wheel_installs_one_import_package(wheel):
    top_level = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {name for name in top_level if not name.endswith(".dist-info")} == {"gptoss_deploy"}


def run(installed: Path, script: str, *args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    # a safety net, not a measure: a busy 2-core runner can take minutes over the real engine's replies
    return subprocess.run([str(installed / script), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.long
def test_installed_scripts_run_from_a_foreign_project(installed, foreign_dir, smollm2, tmp_path):
    env = {**os.environ, "GPTOSS_STATE_DIR": str(tmp_path / "state"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "HF_HUB_CACHE": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1",
           "GPTOSS_BENCH_BUDGET_S": "300"}      # the real engine on a busy runner: see conftest.roomy_bench_budget
    env.pop("GPTOSS_LLAMA_SERVER", None)
    plan = run(installed, "gptoss-plan", "--json", cwd=foreign_dir, env=env)
    assert plan.returncode in (0, 3), plan.stderr                  # this machine may be too small for gpt-oss
    assert json.loads(plan.stdout)["schema_version"] == 1
    dry = run(installed, "gptoss-up", "--dry-run", "--hardware", str(ROOT / "tests/fixtures/hardware/cpu-only.json"),
              cwd=foreign_dir, env=env)
    assert dry.returncode == 0 and "nothing was started" in dry.stdout, dry.stderr
    example = run(installed, "gptoss", "probe", "--example", "dgx-spark-gb10", cwd=foreign_dir, env=env)
    (foreign_dir / "spark.json").write_text(example.stdout)       # the wheel ships the examples as package data
    spark = run(installed, "gptoss-plan", "--hardware", "spark.json", "--json", cwd=foreign_dir, env=env)
    assert spark.returncode == 0 and json.loads(spark.stdout)["model"] == "gpt-oss-120b", spark.stderr
    try:
        up = run(installed, "gptoss-up", "--gguf", str(smollm2), "--port", str(free_port()), "--json",
                 cwd=foreign_dir, env=env)
        assert up.returncode == 0, up.stderr                      # the embedded engine, not the project's code
        assert json.loads(up.stdout)["benchmark"]["decode_tokens_per_s"] > 0      # measured, however busy
        # The sweep's task set is package data; SmolLM2 has no reasoning channel, and the sweep says what that means.
        sweep = run(installed, "gptoss", "bench", "--effort-sweep", "--max-tokens", "16", "--json", cwd=foreign_dir,
                    env=env)
        assert sweep.returncode == 0, sweep.stderr
        efforts = json.loads(sweep.stdout)["effort_sweep"]["efforts"]
        assert [e["effort"] for e in efforts] == ["low", "medium", "high"]
        assert all(e["reasoning_tokens"] == 0 and e["answer_tokens"] > 0 for e in efforts)
        assert "ignores reasoning effort" in sweep.stdout
    finally:
        assert run(installed, "gptoss", "down", "--all", cwd=foreign_dir, env=env).returncode == 0


@pytest.mark.long
def test_readme_command_1_leaves_a_machine_where_the_printed_launch_line_works(installed, foreign_dir, smollm2,
                                                                              tmp_path):
    """A new user: README command 1 (this venv), then the plan's own launch line typed as printed. The hub is a local
    stand-in that serves the tiny model under gpt-oss-20b's name; a port is added, as tests never take 8080."""
    hub = FakeHub("ggml-org/gpt-oss-20b-GGUF", "gpt-oss-20b-mxfp4.gguf", smollm2)
    threading.Thread(target=hub.serve_forever, daemon=True).start()
    env = {**os.environ, "PATH": f"{installed}:{os.environ['PATH']}", "GPTOSS_STATE_DIR": str(tmp_path / "state"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "HF_HUB_CACHE": str(tmp_path / "hf"),
           "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "COLUMNS": "200"}
    for name in ("HF_HUB_OFFLINE", "GPTOSS_LLAMA_SERVER", "GPTOSS_PROFILE", "GPTOSS_MODEL", "GPTOSS_BACKEND"):
        env.pop(name, None)
    try:
        planned = run(installed, "gptoss-plan", cwd=foreign_dir, env=env)      # no terminal: the plan itself
        assert planned.returncode == 0, planned.stderr
        lines = planned.stdout.splitlines()
        launch = shlex.split(lines[lines.index("Launch it:") + 1])
        assert launch[0] == "gptoss-up"
        up = subprocess.run([*launch, "--port", str(free_port()), "--json"], cwd=foreign_dir, env=env,
                            capture_output=True, text=True, timeout=300)
        assert up.returncode == 0, up.stderr
        record = json.loads(up.stdout)
        assert record["state"] == "running" and record["model"] == "gpt-oss-20b"
        assert "llamacpp_embedded" in " ".join(record["argv"])         # the engine README command 1 installed
    finally:
        run(installed, "gptoss", "down", "--all", cwd=foreign_dir, env=env)
        hub.shutdown()
        hub.server_close()
