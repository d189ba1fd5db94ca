"""`gptoss export`: a plan as files for the engines and orchestrators people already run."""
from __future__ import annotations

import os
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from gptoss_deploy.cli.options import (BackendOpt, ConcurrencyOpt, ContextOpt, EffortOpt, GpuOpt, HardwareOpt,
                                       ModelOpt, NodesOpt, ProfileOpt, TargetTpsOpt, VariantOpt, hardware_report,
                                       planning_flags)
from gptoss_deploy.planner.errors import BackendError, UsageError
from gptoss_deploy.planner.vendors import GPU_VENDORS, vendor_named

from gptoss_deploy.export import TARGETS

# An OCI image reference as registries take it: [host[:port]/]path[:tag][@digest], no spaces, no newlines.
IMAGE_REFERENCE = re.compile(r"[a-z0-9][a-z0-9._-]*(?::[0-9]+)?(?:/[a-z0-9][a-z0-9._-]*)*(?::[\w][\w.-]{0,127})?"
                             r"(?:@sha256:[a-f0-9]{64})?")


def export_command(
        format_: Annotated[str, typer.Option("--format", metavar="|".join(TARGETS), help="What to write.")],
        profile: ProfileOpt = None, model: ModelOpt = None, variant: VariantOpt = None, backend: BackendOpt = None,
        context: ContextOpt = None,
        reasoning_effort: EffortOpt = None, hardware: HardwareOpt = None, gpu: GpuOpt = None, nodes: NodesOpt = None,
        plan_file: Annotated[Optional[Path], typer.Option("--plan", metavar="FILE",
                                                          help="Export a plan saved from `gptoss-plan --json`.")] = None,
        replicas: Annotated[Optional[int], typer.Option("--replicas", metavar="INTEGER", min=1,
                                                        help="Replicas of the planned node (default 1).")] = None,
        target_tps: TargetTpsOpt = None, concurrency: ConcurrencyOpt = None,
        min_replicas: Annotated[Optional[int], typer.Option(
            "--min-replicas", metavar="INTEGER", min=1,
            help="Autoscale from this many up to --replicas / --target-tps's count: a HorizontalPodAutoscaler on "
                 "vLLM's running requests, or SkyServe's replica policy.")] = None,
        name: Annotated[str, typer.Option("--name", metavar="NAME", help="Name of the objects.")] = "gpt-oss",
        image: Annotated[Optional[str], typer.Option("--image", metavar="IMAGE",
                                                     help="Container image (default: the engine's own).")] = None,
        output: Annotated[Optional[Path], typer.Option("--output", metavar="DIR",
                                                       help="Write DIR/kubernetes.yaml (gpt-oss.sky.yaml, compose.yaml) instead of stdout.")] = None,
) -> None:
    """Write a plan for an engine people already run: Kubernetes objects (Deployment, Service, model-cache claim), a
    SkyPilot service, or a docker compose file for one node; the same engine flags as the local launch.

    \b
    Examples:
      gptoss export --format kubernetes --gpu H100 --model 120b --target-tps 5000 > gpt-oss.yaml
      gptoss export --format kubernetes --plan plan.json --replicas 2 --output deploy/
      gptoss export --format skypilot --gpu H200 --model 120b --target-tps 5000 > gpt-oss.sky.yaml
      gptoss export --format compose --plan plan.json > compose.yaml
    """
    import importlib

    from gptoss_deploy.backends.addresses import check_name
    from gptoss_deploy.export.common import ExportRequest

    if format_ not in TARGETS:
        raise UsageError(f"--format {format_[:40]!r}: choose one of {', '.join(TARGETS)}")
    target = TARGETS[format_]
    if replicas is not None and target_tps is not None:
        raise UsageError("--replicas and --target-tps both set the replica count: give one")
    if target.one_node and (replicas or target_tps or min_replicas):
        raise UsageError("a compose file runs one node: --replicas, --target-tps and --min-replicas are for "
                         "kubernetes and skypilot")
    check_name(name)
    if image is not None and not IMAGE_REFERENCE.fullmatch(image):
        raise UsageError(f"--image {image[:80]!r} is not an image reference (registry/name:tag or @sha256:...)")
    doc, hw, placement = _plan(profile, model, variant, backend, context, reasoning_effort, hardware, gpu, nodes,
                               plan_file)
    sized = _capacity(placement, hw, target_tps, concurrency, min_replicas)
    count = replicas or (sized.replicas if sized and sized.replicas else 1)
    autoscale = _autoscale(sized, min_replicas, count)
    gpus = [d for d in doc.memory.devices if d.device != "cpu"] if doc.memory else []
    vendor = _vendor(hw, gpus[0].name) if gpus else None
    if vendor and not GPU_VENDORS[vendor].reaches_containers:
        raise UsageError(f"a container cannot use the {gpus[0].name} ({vendor}'s GPUs reach no container runtime): "
                         "run gptoss-up on that machine, or export a plan for other GPUs (--gpu H100)")
    request = ExportRequest(doc, name, count, vendor, gpus[0].name if gpus else None, image, autoscale,
                            hw.cpu.physical_cores if hw else None)
    try:
        text = importlib.import_module(f"gptoss_deploy.export.{target.module}").write(request)
    except ModuleNotFoundError as err:
        if err.name != "yaml":
            raise
        raise BackendError("export writes YAML with PyYAML: pip install 'gptoss-deploy[k8s]'") from None
    if output is None:
        sys.stdout.write(text)
        return
    if output.exists() and not output.is_dir():
        raise UsageError(f"--output {output} is a file: give a directory to write {target.file_name} in")
    written = output / target.file_name
    try:
        output.mkdir(parents=True, exist_ok=True)
        written.write_text(text)
    except OSError as err:
        raise UsageError(f"--output {output}: cannot write {target.file_name} there ({err.strerror}); give a "
                         "directory you can write") from None
    sys.stderr.write(f"gptoss: wrote {written}\n")


def _plan(profile, model, variant, backend, context, effort, hardware, gpu, nodes, plan_file):
    from gptoss_deploy.backends import REGISTRY, load_saved_plan
    from gptoss_deploy.planner.constraints import load_constraints
    from gptoss_deploy.planner.plan import plan

    flags = planning_flags(model, variant, backend, context, effort, False)
    if plan_file:
        if profile or hardware or gpu or nodes or any(v is not None for v in flags.values()):
            raise UsageError("--plan exports a saved plan as it is: drop the planning flags, or drop --plan")
        return load_saved_plan(plan_file), None, None
    constraints = load_constraints(profile, flags, os.environ, REGISTRY)
    if constraints.backend != "auto" and REGISTRY[constraints.backend].cloud:
        raise UsageError(f"{constraints.backend} ({constraints.source('backend')}) is a cloud service, which runs no "
                         "engine of yours to export: export a local engine (llamacpp, vllm), or launch it with "
                         f"gptoss-up --backend {constraints.backend}")
    # An export runs an engine on your nodes: a rule of this command, which no hint tells the user to undo.
    constraints = replace(constraints, local_only=True,
                          sources={**constraints.sources, "local_only": "export: engines only"})
    hw = hardware_report(hardware, gpu, nodes)
    result = plan(hw, constraints, REGISTRY)
    return result.document(), hw, result.chosen.placement


def _capacity(placement, hw, target_tps, concurrency, min_replicas):
    """What one replica of the planned node serves, where replicas are sized or scaled from it."""
    if target_tps is None and min_replicas is None:
        return None
    if placement is None:
        asked = "--target-tps" if target_tps is not None else "--min-replicas"
        raise UsageError(f"{asked} sizes replicas of a node: give --gpu or --hardware, not --plan")
    from gptoss_deploy.planner.capacity import capacity

    return capacity(placement, hw, target_tps, concurrency)


def _autoscale(sized, min_replicas, count):
    if min_replicas is None:
        return None
    if min_replicas > count:
        raise UsageError(f"--min-replicas {min_replicas} is above the {count} replica(s) to scale up to: raise "
                         "--replicas or --target-tps, or lower --min-replicas")
    from gptoss_deploy.export.common import Autoscale

    return Autoscale(min_replicas, sized.requests_per_s())


def _vendor(hw, gpu_name: str) -> str:
    """Whose GPU resource the pods ask for: the hardware's, or for a saved plan the GPU's name."""
    if hw is not None and hw.gpus:
        return hw.gpus[0].vendor
    vendor = vendor_named(gpu_name)
    if vendor is None:
        raise UsageError(f"the saved plan's GPU {gpu_name[:80]!r} is none gptoss knows the maker of: export with "
                         "--gpu or --hardware instead of --plan")
    return vendor.name
