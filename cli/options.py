"""What the CLI's commands share: option types, and how flags become a plan's inputs."""
from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Optional

import typer

from gptoss_deploy.backends import REGISTRY
from gptoss_deploy.planner.backend import declared_settings
from gptoss_deploy.planner.catalog import REASONING_EFFORTS, VARIANTS
from gptoss_deploy.planner.constraints import checked_setting

ProfileOpt = Annotated[Optional[str], typer.Option(
    "--profile", "-p", metavar="NAME|FILE", help="Profile name (see `gptoss profiles`) or path to a .toml file.")]
ModelOpt = Annotated[Optional[str], typer.Option("--model", metavar="auto|20b|120b", help="auto, 20b or 120b.")]
VariantOpt = Annotated[Optional[str], typer.Option(
    "--variant", metavar="|".join(VARIANTS), help="Whose weights: gpt-oss, or safeguard (gpt-oss-safeguard: "
    "classifies content under a policy you write; the same size and speed). Also GPTOSS_VARIANT.")]
BackendOpt = Annotated[Optional[str], typer.Option(
    "--backend", metavar="NAME", help=f"auto, {', '.join(REGISTRY)} (see `gptoss backends`).")]
ContextOpt = Annotated[Optional[str], typer.Option(
    "--context", metavar="TOKENS", help="Context length in tokens: 32768, 32k or 128k; from 4k (4096) up to 128k (131072).")]
EffortOpt = Annotated[Optional[str], typer.Option(
    "--reasoning-effort", metavar="|".join(REASONING_EFFORTS),
    help=f"{', '.join(REASONING_EFFORTS[:-1])} or {REASONING_EFFORTS[-1]}.")]
LocalOpt = Annotated[bool, typer.Option("--local", help="Never plan a cloud backend.")]
CloudOpt = Annotated[bool, typer.Option(
    "--cloud", help="Cloud is fine: a cloud service may win over a local plan below the speed floor.")]
HardwareOpt = Annotated[Optional[Path], typer.Option(
    "--hardware", metavar="FILE", help="Plan for the machine described in FILE (as `gptoss probe --json` prints it).")]
GpuOpt = Annotated[Optional[str], typer.Option(
    "--gpu", metavar="TYPE[:COUNT]", help="Plan for a node of COUNT GPUs of TYPE instead of this machine: A10G, L4, "
    "L40S, A100-40GB, A100-80GB, H100, H200, B200, MI300X (e.g. H100:8).")]
NodesOpt = Annotated[Optional[int], typer.Option(
    "--nodes", metavar="INTEGER", min=1, max=64, help="With --gpu: that many such nodes as one vLLM deployment "
    "(tensor parallel within a node, a pipeline stage per node), for a model one node cannot hold.")]
TargetTpsOpt = Annotated[Optional[float], typer.Option(
    "--target-tps", metavar="TOKENS_PER_S", help="Capacity: the replicas of the planned node that serve this many "
    "output tokens/s in all (with 20% headroom).")]
ConcurrencyOpt = Annotated[Optional[int], typer.Option(
    "--concurrency", metavar="INTEGER", help="Capacity: concurrent requests per replica (default: what one holds).")]
GpuPriceOpt = Annotated[Optional[float], typer.Option(
    "--usd-per-gpu-hour", metavar="USD", help="Capacity: what one GPU-hour costs you, for the cost per hour and per "
    "1M output tokens (no prices ship: they differ by cloud, region and contract).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout; messages go to stderr.")]
VerboseOpt = Annotated[bool, typer.Option(
    "--verbose", "--all", "-v", help="The whole plan: every runner-up and what does not fit, with why, and the "
    "memory terms explained.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Ask nothing: accept the planner's choices.")]
NoCalibrationOpt = Annotated[bool, typer.Option(
    "--no-calibration", help="Predict from the model alone, not scaled by this machine's own benchmarks (which "
    "gptoss-up and `gptoss bench` keep per machine, engine and model).")]


def hardware_report(path: Optional[Path], gpu: Optional[str] = None, nodes: Optional[int] = None):
    """The machine to plan for: a node of named GPUs (--gpu), a hardware file (--hardware), else this one."""
    from gptoss_deploy.planner.errors import UsageError
    from gptoss_deploy.planner.hardware import load_hardware
    from gptoss_deploy.planner.probe import probe

    if gpu and path:
        raise UsageError("--gpu and --hardware both describe the machine: give one")
    if nodes and not gpu:
        raise UsageError("--nodes counts nodes of the --gpu kind: give --gpu TYPE[:COUNT] too")
    if gpu:
        from gptoss_deploy.planner.gpus import node_from_spec

        return node_from_spec(gpu, nodes or 1)
    return load_hardware(path) if path else probe()


def calibrated(constraints, hw, no_calibration: bool):
    """CONSTRAINTS with what this machine's kept benchmarks measured (runtime.calibrations), unless --no-calibration
    (or nothing was kept for it)."""
    if no_calibration:
        return constraints
    from dataclasses import replace

    from gptoss_deploy.runtime.calibrations import calibrations_for
    from gptoss_deploy.runtime.state import state_dir

    found = calibrations_for(state_dir(), hw)
    return replace(constraints, calibrations=found) if found else constraints


def planning_flags(model, variant, backend, context, effort, local, cloud=False,
                   settings: Mapping[str, str] | None = None) -> dict:
    """The planning choices given as flags, by constraint name; SETTINGS: the cloud services' own, by key."""
    return {"model": model, "variant": variant, "backend": backend, "context": context, "reasoning_effort": effort,
            "local_only": True if local else None, "cloud": True if cloud else None, **(settings or {})}


SETTINGS = declared_settings(REGISTRY)     # the cloud services' own settings, by key


def with_cloud_settings(*, at_plan_only: bool):
    """A command that takes a flag for each setting the registered cloud services declare (with AT_PLAN_ONLY, those
    the plan depends on): their values reach it as `cloud_settings`, by key, each checked as its service says. The
    flags are the services' own: a new service's settings need no change here."""
    settings = [s for s in SETTINGS.values() if s.flag and (s.at_plan or not at_plan_only)]

    def wrap(command):
        @functools.wraps(command)
        def run(**kwargs):
            given = {s.key: (s, kwargs.pop(s.key)) for s in settings}
            return command(**kwargs, cloud_settings={key: checked_setting(s, value, f"{s.flag} {value}")
                                                     for key, (s, value) in given.items() if value is not None})

        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "cloud_settings"]
        run.__signature__ = inspect.Signature([*own, *(inspect.Parameter(
            s.key, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[Optional[str], typer.Option(
                s.flag, metavar="|".join(s.choices) or "VALUE", help=s.help + (f" (or {s.env})" if s.env else ""))])
            for s in settings)])
        return run
    return wrap
