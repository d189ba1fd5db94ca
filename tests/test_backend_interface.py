"""One backend, one object: a backend registered in one place is planned, dry-run, listed, offered by the wizard
and accepted by profiles; and the planner, which plans it, never imports a backend."""
from __future__ import annotations

import json
import subprocess
import sys
from typing import ClassVar

import pytest

from gptoss_deploy.backends import REGISTRY
from gptoss_deploy.backends.base import LocalBackend, ServerLaunch, endpoint, ready_deadline_s
from gptoss_deploy.backends.vllm import VLLM
from gptoss_deploy.cli.wizard import ask
from gptoss_deploy.planner.backend import MachineClass
from gptoss_deploy.planner.placement import WHOLE_MODEL

from helpers import constraints, fixture_path

H100 = fixture_path("h100-sxm")


class TinyServe(LocalBackend):
    """A throwaway engine that serves the whole model on GPUs, ranked first on datacenter machines."""

    name = "tinyserve"
    title = "TinyServe"
    offload = WHOLE_MODEL
    auto_rank: ClassVar = {MachineClass.DATACENTER: -1}
    why_chosen = "the test says so"
    artifacts = VLLM.artifacts
    program = "tinyserve"

    def program_missing(self):
        return None

    def build_launch(self, placement, settings) -> dict:
        port = settings.port or 9999
        return {"argv": ["tinyserve", placement.artifact.ref, "--ctx", str(placement.context_length),
                         "--host", settings.host, "--port", str(port)],
                "env": {}, "model_ref": placement.artifact.ref, "base_url": endpoint(settings.host, port)}

    def server_launch(self, *, plan, options, hardware, gguf) -> ServerLaunch:
        host, port = options.host or "127.0.0.1", options.port or 9999     # rebuilt from the plan's fields
        argv = ["tinyserve", plan.launch.model_ref, "--ctx", str(plan.context_length), "--host", host, "--port", str(port)]
        return ServerLaunch(argv=argv, env={}, host=host, port=port, served_model=plan.model, protocol="openai",
                            ready_deadline_s=ready_deadline_s(options, 10.0, 0))

    def use_api_key(self, *, launch, key) -> None:
        launch.env["TINYSERVE_KEY"] = key


@pytest.fixture
def tinyserve(monkeypatch):
    monkeypatch.setitem(REGISTRY, TinyServe.name, TinyServe())      # the one place a backend is registered


def test_a_registered_backend_is_planned_dry_run_and_listed(run_cli, tinyserve):
    code, out, err = run_cli("plan", "--hardware", H100, "--json")
    plan = json.loads(out)
    assert code == 0, err
    assert plan["backend"] == "tinyserve" and plan["launch"]["argv"][:2] == ["tinyserve", "openai/gpt-oss-120b"]
    assert "backend: TinyServe: the test says so" in plan["reasons"]
    assert plan["alternatives"][0]["lost_because"] == "TinyServe comes first in the backend preference"

    code, out, _ = run_cli("up", "--dry-run", "--json", "--hardware", H100, "--backend", "tinyserve", "--port", "4321")
    dry = json.loads(out)
    assert code == 0 and dry["argv"][-4:] == ["--host", "127.0.0.1", "--port", "4321"]
    assert dry["endpoint"]["base_url"] == "http://127.0.0.1:4321/v1"

    code, out, _ = run_cli("backends", "--json")
    assert {"name": "tinyserve", "title": "TinyServe", "kind": "local", "unavailable": None} in json.loads(out)


def test_profiles_and_the_wizard_take_their_backend_names_from_the_registry(run_cli, tinyserve, tmp_path):
    profile = tmp_path / "mine.toml"
    profile.write_text('description = "tiny first"\nbackend_preference = ["tinyserve", "vllm"]\n')
    code, out, _ = run_cli("plan", "--hardware", H100, "--profile", profile, "--json")
    assert code == 0 and json.loads(out)["backend"] == "tinyserve"

    offered = {}
    ask(constraints(), None, REGISTRY, select=lambda question, choices, default: offered.setdefault(question, choices)
        and default)
    assert "tinyserve" in offered["Which backend?"]


def test_an_unregistered_backend_is_named_with_the_valid_ones(run_cli, tmp_path):
    code, _, err = run_cli("plan", "--hardware", H100, "--backend", "tinyserve", "--json")
    assert code == 2 and "unknown backend 'tinyserve'; choose auto, llamacpp, ollama, vllm, lmstudio, foundry, bedrock, azure, hf-endpoints" in err


def test_the_planner_never_imports_a_backend_or_the_cli():
    code = ("import pkgutil, importlib, sys, gptoss_deploy.planner as p\n"
            "for m in pkgutil.iter_modules(p.__path__): importlib.import_module(f'gptoss_deploy.planner.{m.name}')\n"
            "print(sorted(m for m in sys.modules if m.startswith(('gptoss_deploy.backends', 'gptoss_deploy.cli'))))")
    result = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
