"""One backend, one object: a backend registered in one place is planned, dry-run, listed, offered by the wizard
and accepted by profiles; and the planner, which plans it, never imports a backend."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
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


# Who may import whom: cli -> verify, export -> runtime -> backends -> planner (profiles: data the planner reads).
MAY_IMPORT = {"planner": {"profiles"}, "profiles": set(), "backends": {"planner", "profiles"},
              "runtime": {"backends", "planner", "profiles"}, "verify": {"runtime", "backends", "planner"},
              "export": {"runtime", "backends", "planner"},
              "cli": {"verify", "export", "runtime", "backends", "planner", "profiles"}}
SOURCE = Path(__file__).resolve().parent.parent


def imported(path: Path) -> set[str]:
    """The gptoss_deploy modules PATH imports, at its top or inside functions (an import run later is an arrow
    too); not those only a type checker reads (`if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(
        node.test) for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gptoss_deploy."):
            for alias in node.names:      # `from gptoss_deploy.runtime import deploy` imports the module deploy
                module = f"{node.module}.{alias.name}"
                found.add(module if _source(module).exists() else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("gptoss_deploy."))
    return found


def _source(module: str) -> Path:
    return SOURCE.joinpath(*module.split(".")[1:]).with_suffix(".py")


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for package in MAY_IMPORT:
        for path in (SOURCE / package).glob("*.py"):
            name = f"gptoss_deploy.{package}" + ("" if path.stem == "__init__" else f".{path.stem}")
            graph[name] = imported(path) - {name}
    return graph


def test_every_import_points_the_one_way_and_none_goes_round():
    graph = import_graph()
    assert {module.split(".")[1] for module in graph} >= set(MAY_IMPORT) - {"profiles"}   # every package read
    wrong_way = sorted(f"{module} imports {target}" for module, targets in graph.items() for target in targets
                       if target.split(".")[1] not in MAY_IMPORT[module.split(".")[1]] | {module.split(".")[1]})
    assert wrong_way == []

    def circle_from(start: str) -> list[str] | None:
        path, seen = [start], set()

        def walk(module: str) -> list[str] | None:
            for target in sorted(graph.get(module, ())):
                if target == start:
                    return path + [start]
                if target not in seen:
                    seen.add(target)
                    path.append(target)
                    if found := walk(target):
                        return found
                    path.pop()
            return None
        return walk(start)
    assert [circle for module in graph if (circle := circle_from(module))] == []


def test_the_direction_test_sees_an_import_that_goes_the_wrong_way(tmp_path):
    module = tmp_path / "deploy.py"
    module.write_text("def later():\n    from gptoss_deploy.cli.output import say\n"
                      "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from gptoss_deploy.verify import bench\n")
    assert imported(module) == {"gptoss_deploy.cli.output"}


def test_the_planner_never_imports_a_backend_or_the_cli():
    code = ("import pkgutil, importlib, sys, gptoss_deploy.planner as p\n"
            "for m in pkgutil.iter_modules(p.__path__): importlib.import_module(f'gptoss_deploy.planner.{m.name}')\n"
            "print(sorted(m for m in sys.modules if m.startswith(('gptoss_deploy.backends', 'gptoss_deploy.cli'))))")
    result = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
