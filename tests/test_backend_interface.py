"""One backend, one object: a backend registered in one place is planned, dry-run, listed, offered by the wizard
and accepted by profiles; and the planner, which plans it, never imports a backend."""
from __future__ import annotations

import ast
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest

from gptoss_deploy.backends import REGISTRY
from gptoss_deploy.backends.addresses import endpoint
from gptoss_deploy.backends.base import CloudBackend, LocalBackend, ServerLaunch, per_token_quote, ready_deadline_s
from gptoss_deploy.backends.bedrock import BEDROCK
from gptoss_deploy.backends.vllm import VLLM
from gptoss_deploy.cli.wizard import ask
from gptoss_deploy.planner.backend import ApiLaunch, CloudSetting, LocalLaunch, MachineClass
from gptoss_deploy.planner.errors import NoFitError
from gptoss_deploy.planner.gpus import node_from_spec
from gptoss_deploy.planner.hardware import EXAMPLES, load_hardware
from gptoss_deploy.planner.placement import WHOLE_MODEL, Placement
from gptoss_deploy.planner.plan import plan

from helpers import FIXTURES, constraints, fixture_path

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

    def build_launch(self, placement, settings) -> LocalLaunch:
        port = settings.port or 9999
        return LocalLaunch(["tinyserve", placement.artifact.ref, "--ctx", str(placement.context_length), "--host",
                            settings.host, "--port", str(port)], {}, placement.artifact.ref, endpoint(settings.host, port))

    def server_launch(self, *, plan, options, hardware, gguf) -> ServerLaunch:
        host, port = options.host or "127.0.0.1", options.port or 9999     # rebuilt from the plan's fields
        argv = ["tinyserve", plan.launch.model_ref, "--ctx", str(plan.context_length), "--host", host, "--port", str(port)]
        return ServerLaunch(argv=argv, env={}, host=host, port=port, served_model=plan.model, protocol="openai",
                            ready_deadline_s=ready_deadline_s(options, 10.0, 0))

    def use_api_key(self, *, launch, key) -> None:
        launch.env["TINYSERVE_KEY"] = key


class TinyCloud(CloudBackend):
    """A throwaway cloud service with a setting of its own: a tier, by flag, variable or profile key."""

    name = "tinycloud"
    title = "TinyCloud"
    offers = BEDROCK.offers
    settings = (CloudSetting("tiny_tier", "TinyCloud service tier", "--tiny-tier", "TINYCLOUD_TIER",
                             choices=("bronze", "gold")),)
    credentials = "none"

    def credentials_missing(self):
        return None

    def quote(self, model, settings):
        api = {"service": "tinycloud", "model_id": self.offers[model.name].model_id, "region": None,
               "tier": settings.cloud.get("tiny_tier", "bronze")}
        return per_token_quote(ApiLaunch(api), self.offers[model.name], "anywhere")

    def describe_call(self, api):
        return f"tinycloud {api['tier']}"

    def check_planned(self, plan):
        pass

    def provision(self, *, plan, options, progress):
        raise AssertionError("never provisioned here")

    def teardown(self, *, record, progress):
        pass

    def resources_summary(self, record):
        return "nothing"

    def stream_client(self, *, record, api_key, effort):
        raise AssertionError("never called here")

    def describe(self, *, record, reused):
        raise AssertionError("never called here")


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
    assert code == 2 and ("unknown backend 'tinyserve'; choose auto, llamacpp, ollama, vllm, sglang, lmstudio, foundry, bedrock, azure, "
                            "hf-endpoints" in err)


# What a placement tells an engine. A field the placement sets (off its default) that an adapter neither renders nor
# leaves to its engine with a reason is dropped: the plan predicts what will not run.
ENGINE_FIELDS = ("context_length", "cpu_layers", "ubatch", "tensor_parallel_size", "data_parallel_size",
                 "pipeline_parallel_size", "tensor_split", "gpu_layers", "gpu_memory_utilization",
                 "max_num_batched_tokens", "prompt_cache_bytes", "context_checkpoints")
DEFAULTS = {f.name: f.default for f in dataclasses.fields(Placement)}
MACHINES = [*(load_hardware(p) for p in sorted(FIXTURES.glob("*.json"))), *(load_hardware(p) for p in sorted(EXAMPLES.glob("*.json"))),
            node_from_spec("L4:2", nodes=2), node_from_spec("H100:8")]


def words_of(launch: LocalLaunch, here: list[str]) -> set[str]:
    """Every word a launch is written with: its argv, what runs here, its variables, its load request's keys."""
    request = launch.request or {}
    return {*launch.argv, *here, *launch.env, *request, *request.get("options", {})}


def dropped_fields(backend, hardware) -> dict[str, set[str]]:
    """For every model BACKEND plans on HARDWARE: the placement's set fields that its launch does not carry."""
    dropped = {}
    for model in ("20b", "120b"):
        try:
            planned = plan(hardware, constraints(flags={"backend": backend.name, "model": model}), REGISTRY)
        except NoFitError:
            continue
        placement = planned.chosen.placement
        written = words_of(planned.chosen.launch, backend.command_here(plan=planned.document(), hardware=hardware))
        set_fields = {name for name in ENGINE_FIELDS if getattr(placement, name) != DEFAULTS[name]}
        dropped[model] = {name for name in set_fields if name not in backend.leaves_to_engine and
                          not written & set(backend.renders.get(name, ()))}
    return dropped


@pytest.mark.parametrize("name", [name for name, backend in REGISTRY.items() if not backend.cloud])
def test_every_adapter_carries_every_placement_field_it_is_given(name):
    backend, placements = REGISTRY[name], 0
    for hardware in MACHINES:
        for model, dropped in dropped_fields(backend, hardware).items():
            placements += 1
            assert not dropped, f"{name} drops {sorted(dropped)} of {model} on {hardware.gpus[:1] or 'CPU'}"
    assert placements >= 2


def test_an_adapter_that_drops_a_planned_split_is_caught_and_its_plan_quotes_no_other_engines_flags(tinyserve):
    eight_h100 = node_from_spec("H100:8")
    assert dropped_fields(TinyServe(), eight_h100)["120b"] >= {"data_parallel_size", "gpu_memory_utilization"}
    chosen = plan(eight_h100, constraints(flags={"backend": "tinyserve"}), REGISTRY)
    assert not [reason for reason in chosen.reasons if "--gpu-memory-utilization" in reason]


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


CLOUD_CLI = """
import contextlib, io, json, os, sys
sys.path.insert(0, {tests!r})
from gptoss_deploy.backends import REGISTRY
from test_backend_interface import TinyCloud
REGISTRY[TinyCloud.name] = TinyCloud()        # registered before the CLI is built, as a shipped service would be
from gptoss_deploy.cli import app
results = []
for args, env in json.loads(sys.argv[1]):      # each command with its variables, in this one process
    out, err = io.StringIO(), io.StringIO()
    os.environ.update(env)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = app._run(app.gptoss_app(), "gptoss", args)
    for name in env:
        del os.environ[name]
    results.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(results))
"""


def test_a_cloud_services_own_setting_is_a_flag_a_variable_and_a_profile_key_with_no_other_change(tmp_path):
    """TinyCloud declares a tier (a CloudSetting): gptoss-plan offers --tiny-tier, reads TINYCLOUD_TIER and a
    profile's tiny_tier, checks each against the service's choices, and hands the value to its quote."""
    gold, platinum = tmp_path / "gold.toml", tmp_path / "platinum.toml"
    gold.write_text('description = "tiny"\ntiny_tier = "gold"\n')
    platinum.write_text('description = "tiny"\n\ntiny_tier = "platinum"\n')
    tiny = ["plan", "--json", "--backend", "tinycloud", "--cloud"]
    commands = [(["plan", "--help"], {}), (tiny, {}), ([*tiny, "--tiny-tier", "gold"], {}),
                (tiny, {"TINYCLOUD_TIER": "gold"}), ([*tiny, "--profile", str(gold)], {}),
                (["plan", "--json", "--profile", str(platinum)], {}), ([*tiny, "--tiny-tier", "platinum"], {})]
    result = subprocess.run([sys.executable, "-c", CLOUD_CLI.format(tests=str(Path(__file__).parent)),
                             json.dumps(commands)], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-2000:]
    helped, *planned, bad_profile, bad_flag = json.loads(result.stdout)
    assert "--tiny-tier bronze|gold" in helped[1]
    assert all(code == 0 for code, _, _ in planned), planned
    assert [json.loads(out)["launch"]["api"]["tier"] for _, out, _ in planned] == ["bronze", "gold", "gold", "gold"]
    assert bad_profile[0] == 2 and f"{platinum}:3: tiny_tier" in bad_profile[2]
    assert bad_flag[0] == 2 and "--tiny-tier platinum: tiny_tier must be bronze or gold" in bad_flag[2]
