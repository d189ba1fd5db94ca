"""Shared test helpers: hardware fixtures and the CLI run through its real error mapping."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner import cli
from planner.constraints import load_constraints
from planner.hardware import load_hardware
from planner.plan import plan

FIXTURES = Path(__file__).parent / "fixtures" / "hardware"
HARDWARE_FIXTURES = sorted(p.stem for p in FIXTURES.glob("*.json"))


def fixture_path(name: str) -> Path:
    return FIXTURES / f"{name}.json"


def plan_for(name: str, profile: str = "auto", **flags):
    hardware = load_hardware(fixture_path(name))
    return plan(hardware, load_constraints(profile, flags, {}))


@pytest.fixture
def run_cli(capsys, monkeypatch, tmp_path):
    """Run `gptoss ARGS...` in-process through the same error mapping as the installed scripts."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))   # no stray user profiles

    def run(*args: str, app=cli.app, prog="gptoss"):
        code = cli._run(app, prog, [str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def json_out(text: str) -> dict:
    return json.loads(text)
