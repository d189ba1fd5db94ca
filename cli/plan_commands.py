"""The planning commands: probe, plan, profiles. Each parses flags, calls the planner, hands the result to Output."""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from collections.abc import Mapping
from typing import Annotated, NamedTuple, Optional

import typer

from gptoss_deploy.cli.options import (BackendOpt, CloudOpt, ConcurrencyOpt, ContextOpt, EffortOpt,
                                       GpuOpt, GpuPriceOpt, HardwareOpt, JsonOpt, LocalOpt, ModelOpt,
                                       NoCalibrationOpt, NodesOpt, ProfileOpt, TargetTpsOpt, VariantOpt, VerboseOpt,
                                       YesOpt,
                                       calibrated, hardware_report, planning_flags, with_cloud_settings)
from gptoss_deploy.cli.output import Output
from gptoss_deploy.planner.errors import UsageError


def _interactive(json_out: bool, yes: bool) -> bool:
    return not (json_out or yes) and sys.stdin.isatty() and sys.stdout.isatty()


class NextStep(NamedTuple):
    label: str
    command: str
    elsewhere: bool = False       # the plan is for other machines (--gpu, several nodes): nothing to check here


def next_step(result, hardware: Optional[Path], gpu: Optional[str], nodes: Optional[int],
              target_tps: Optional[float], concurrency: Optional[int], no_calibration: bool = False) -> NextStep:
    """What carries out RESULT: `gptoss-up` with the flags that planned it, for this machine (or the one a hardware
    file describes); the export for a node of named GPUs (--gpu) or several nodes; for a cloud service, `gptoss-up`
    naming it, which plans the same from any machine."""
    from gptoss_deploy.planner.constraints import as_flags

    flags = as_flags(result.constraints)
    chosen = result.chosen
    if chosen.status == "cloud":
        named = [] if result.constraints.backend == chosen.backend else ["--backend", chosen.backend]
        return NextStep("Launch it:", shlex.join(["gptoss-up", *flags, *named]))
    if gpu or result.hardware.nodes > 1:
        machine = ["--gpu", gpu, *(["--nodes", str(nodes)] if nodes else [])] if gpu else ["--hardware", str(hardware)]
        sizing = [*(["--target-tps", f"{target_tps:g}"] if target_tps is not None else []),
                  *(["--concurrency", str(concurrency)] if concurrency is not None else [])]
        export = as_flags(result.constraints, leave_out=("local_only", "cloud", *result.constraints.cloud_settings))
        return NextStep("Deploy it on such nodes (or run gptoss-up on one of them):",
                        shlex.join(["gptoss", "export", "--format", "kubernetes", *export, *machine, *sizing]), True)
    return NextStep("Launch it:", shlex.join(["gptoss-up", *flags, *(["--hardware", str(hardware)] if hardware else []),
                                              *(["--no-calibration"] if no_calibration else [])]))


def probe_command(json_out: JsonOpt = False, example: Annotated[Optional[str], typer.Option(
        "--example", metavar="NAME", help="Print a ready-made hardware file for a common machine instead (edit it, "
        "then plan with --hardware FILE); an unknown NAME lists them.")] = None) -> None:
    """Show what the planner sees on this machine: CPU, RAM, GPUs, disk.

    \b
    Examples:
      gptoss probe
      gptoss probe --json > machine.json
      gptoss probe --example h100-sxm > h100.json    (a machine you do not have)
    """
    from gptoss_deploy.cli.render import render_hardware
    from gptoss_deploy.planner.probe import probe

    if example is not None:
        from gptoss_deploy.planner.hardware import example_text

        sys.stdout.write(example_text(example))     # the file itself, JSON either way: `> machine.json` saves it
        return
    report = probe()
    Output(json_out).result(report.to_json(), lambda console: render_hardware(console, report))


@with_cloud_settings(at_plan_only=True)
def plan_command(profile: ProfileOpt = None, model: ModelOpt = None, variant: VariantOpt = None,
                 backend: BackendOpt = None,
                 context: ContextOpt = None, reasoning_effort: EffortOpt = None, local: LocalOpt = False, cloud: CloudOpt = False,
                 hardware: HardwareOpt = None, gpu: GpuOpt = None,
                 target_tps: TargetTpsOpt = None, concurrency: ConcurrencyOpt = None,
                 usd_per_gpu_hour: GpuPriceOpt = None, nodes: NodesOpt = None, no_calibration: NoCalibrationOpt = False,
                 json_out: JsonOpt = False, yes: YesOpt = False, verbose: VerboseOpt = False, *,
                 cloud_settings: Mapping[str, str]) -> None:
    """Plan the gpt-oss deployment for this machine (a wizard on a terminal, unless --yes or --json).

    \b
    Examples:
      gptoss-plan
      gptoss-plan --yes --profile laptop --context 64k
      gptoss-plan --json --hardware h100.json --profile server > plan.json
      gptoss-plan --yes --gpu H100 --model 120b --target-tps 5000     (how many H100s)
    """
    from gptoss_deploy.backends import REGISTRY
    from gptoss_deploy.planner.constraints import load_constraints
    from gptoss_deploy.planner.errors import NoFitError
    from gptoss_deploy.planner.plan import plan

    flags = planning_flags(model, variant, backend, context, reasoning_effort, local, cloud, cloud_settings)
    constraints = load_constraints(profile, flags, os.environ, REGISTRY)
    from gptoss_deploy.planner.capacity import check_capacity_flags

    check_capacity_flags(target_tps, concurrency, usd_per_gpu_hour)
    hw = hardware_report(hardware, gpu, nodes)
    constraints = calibrated(constraints, hw, no_calibration)
    if _interactive(json_out, yes):
        from gptoss_deploy.cli.wizard import ask

        try:
            suggestion = plan(hw, constraints, REGISTRY)
        except NoFitError:
            suggestion = None
        answers = ask(constraints, suggestion, REGISTRY)
        constraints = calibrated(load_constraints(profile, flags, os.environ, REGISTRY, answers), hw, no_calibration)
    result = plan(hw, constraints, REGISTRY)
    doc = result.to_json()
    doc["prerequisites"] = prerequisites_json(result.chosen.backend, result.chosen.model.name, hw)
    if target_tps is not None or concurrency is not None or usd_per_gpu_hour is not None:
        doc["capacity"] = _capacity_json(result, target_tps, concurrency, usd_per_gpu_hour)
    step = next_step(result, hardware, gpu, nodes, target_tps, concurrency, no_calibration)
    Output(json_out).result(doc, lambda console: _render(console, result, doc, step, verbose))


def _render(console, result, doc, step, verbose) -> None:
    from gptoss_deploy.cli.render import render_plan      # its typed documents cost start-up time: --json skips them

    render_plan(console, result, doc, step, verbose)


def _capacity_json(result, target_tps, concurrency, usd_per_gpu_hour) -> dict:
    from gptoss_deploy.planner.capacity import capacity

    if result.chosen.placement is None:
        return {"replicas": None, "why": f"{result.chosen.backend} is a cloud service: it scales by itself"}
    return capacity(result.chosen.placement, result.hardware, target_tps, concurrency, usd_per_gpu_hour).to_json()


def prerequisites_json(backend: str, model: str, hw) -> list[dict]:
    """What serving MODEL through BACKEND needs on this machine, checked here (backends.base.Backend.prerequisites)."""
    from gptoss_deploy.backends import get_backend

    return [need.to_json() for need in get_backend(backend).prerequisites(model=model, hardware=hw)]


def profiles_command(json_out: JsonOpt = False) -> None:
    """List the profiles: built-in ones and yours (in the user config dir).

    \b
    Example:
      gptoss profiles
    """
    from gptoss_deploy.backends import REGISTRY
    from gptoss_deploy.cli.render import render_profiles
    from gptoss_deploy.planner.profiles import available_profiles, user_profile_dir

    profiles = available_profiles(REGISTRY)
    document = [{"name": p.name, "source": p.source, "description": p.profile.description, **p.profile.model_dump()}
                for p in profiles]
    Output(json_out).result(document, lambda console: render_profiles(console, profiles, user_profile_dir()))


def backends_command(json_out: JsonOpt = False) -> None:
    """List the backends: what each is, and whether it can run from here (and if not, what to do).

    \b
    Example:
      gptoss backends --json
    """
    from gptoss_deploy.backends import REGISTRY
    from gptoss_deploy.cli.render import render_backends

    document = [{"name": b.name, "title": b.title, "kind": "cloud" if b.cloud else "local",
                 "unavailable": b.unavailable()} for b in REGISTRY.values()]
    Output(json_out).result(document, lambda console: render_backends(console, document))


SCHEMAS = {   # document name -> (module, model): imported only when asked for
    "plan": ("gptoss_deploy.planner.documents", "PlanDocument"),
    "deployment": ("gptoss_deploy.runtime.records", "Deployment"),
    "hardware": ("gptoss_deploy.planner.hardware", "HardwareReport"),
}


def schema_command(document: Annotated[str, typer.Argument(help=f"One of: {', '.join(SCHEMAS)}.")]) -> None:
    """Print the JSON Schema of a document this tool reads or writes, for pipelines that validate them.

    \b
    Example:
      gptoss schema plan > plan.schema.json
    """
    from importlib import import_module

    if document not in SCHEMAS:
        raise UsageError(f"no schema named {document!r}; choose one of: {', '.join(SCHEMAS)}")
    module, model = SCHEMAS[document]
    Output.json(getattr(import_module(module), model).model_json_schema())
