"""`gptoss export`: a plan as files for the engines and orchestrators people already run."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from gptoss_deploy.cli.options import (BackendOpt, ConcurrencyOpt, ContextOpt, EffortOpt, GpuOpt, HardwareOpt,
                                       ModelOpt, ProfileOpt, TargetTpsOpt, hardware_report, planning_flags)
from gptoss_deploy.planner.errors import BackendError, UsageError

FORMATS = ("kubernetes", "compose")


def export_command(
        format_: Annotated[str, typer.Option("--format", metavar="|".join(FORMATS), help="What to write.")],
        profile: ProfileOpt = None, model: ModelOpt = None, backend: BackendOpt = None, context: ContextOpt = None,
        reasoning_effort: EffortOpt = None, hardware: HardwareOpt = None, gpu: GpuOpt = None,
        plan_file: Annotated[Optional[Path], typer.Option("--plan", metavar="FILE",
                                                          help="Export a plan saved from `gptoss-plan --json`.")] = None,
        replicas: Annotated[Optional[int], typer.Option("--replicas", metavar="INTEGER", min=1,
                                                        help="Replicas of the planned node (default 1).")] = None,
        target_tps: TargetTpsOpt = None, concurrency: ConcurrencyOpt = None,
        name: Annotated[str, typer.Option("--name", metavar="NAME", help="Name of the objects.")] = "gpt-oss",
        image: Annotated[Optional[str], typer.Option("--image", metavar="IMAGE",
                                                     help="Container image (default: the engine's own).")] = None,
        output: Annotated[Optional[Path], typer.Option("--output", metavar="DIR",
                                                       help="Write DIR/kubernetes.yaml (or compose.yaml) instead of stdout.")] = None,
) -> None:
    """Write a plan for an engine people already run: Kubernetes objects (Deployment, Service, model-cache claim), or
    a docker compose file for one node; the same engine flags as the local launch.

    \b
    Examples:
      gptoss export --format kubernetes --gpu H100 --model 120b --target-tps 5000 > gpt-oss.yaml
      gptoss export --format kubernetes --plan plan.json --replicas 2 --output deploy/
      gptoss export --format compose --plan plan.json > compose.yaml
    """
    from gptoss_deploy.backends import export_compose, export_kubernetes
    from gptoss_deploy.backends.base import check_name

    if format_ not in FORMATS:
        raise UsageError(f"--format {format_[:40]!r}: choose one of {', '.join(FORMATS)}")
    if replicas is not None and target_tps is not None:
        raise UsageError("--replicas and --target-tps both set the replica count: give one")
    if format_ == "compose" and (replicas or target_tps):
        raise UsageError("a compose file runs one node: --replicas and --target-tps are for --format kubernetes")
    check_name(name)
    doc, hw, placement = _plan(profile, model, backend, context, reasoning_effort, hardware, gpu, plan_file)
    count = replicas or _replicas_for(placement, hw, target_tps, concurrency)
    gpus = [d for d in doc.memory.devices if d.device != "cpu"] if doc.memory else []
    vendor = _vendor(hw, gpus[0].name) if gpus else None
    try:
        if format_ == "compose":
            text = export_compose.render(export_compose.compose(doc, name, vendor, image))
        else:
            text = export_kubernetes.render(export_kubernetes.manifests(doc, name, count, vendor,
                                                                        gpus[0].name if gpus else None, image), name)
    except ImportError:
        raise BackendError("export writes YAML with PyYAML: pip install 'gptoss-deploy[k8s]'") from None
    if output is None:
        sys.stdout.write(text)
        return
    output.mkdir(parents=True, exist_ok=True)
    written = output / ("compose.yaml" if format_ == "compose" else "kubernetes.yaml")
    written.write_text(text)
    sys.stderr.write(f"gptoss: wrote {written}\n")


def _plan(profile, model, backend, context, effort, hardware, gpu, plan_file):
    from gptoss_deploy.backends import REGISTRY
    from gptoss_deploy.planner.constraints import load_constraints
    from gptoss_deploy.planner.plan import plan
    from gptoss_deploy.planner.saved_plan import load_plan

    flags = planning_flags(model, backend, context, effort, True)
    if plan_file:
        if profile or hardware or gpu or any(v is not None for k, v in flags.items() if k != "local_only"):
            raise UsageError("--plan exports a saved plan as it is: drop the planning flags, or drop --plan")
        return load_plan(plan_file), None, None
    hw = hardware_report(hardware, gpu)
    result = plan(hw, load_constraints(profile, flags, os.environ, REGISTRY), REGISTRY)
    return result.document(), hw, result.chosen.placement


def _replicas_for(placement, hw, target_tps, concurrency) -> int:
    if target_tps is None:
        return 1
    if placement is None:
        raise UsageError("--target-tps plans replicas for a node: give --gpu or --hardware, not --plan")
    from gptoss_deploy.planner.capacity import capacity

    return capacity(placement, hw, target_tps, concurrency).replicas


def _vendor(hw, gpu_name: str) -> str:
    """Whose GPU resource the pods ask for: the hardware's, or for a saved plan the GPU's name."""
    if hw is not None and hw.gpus:
        return hw.gpus[0].vendor
    return "nvidia" if gpu_name.startswith("NVIDIA") else "amd"
