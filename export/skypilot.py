"""A plan as a SkyPilot service: the same engine command in the engine's image, on the planned GPUs, REPLICAS times.

SkyServe's load balancer routes to replicas that answer the readiness probe on /health. The API key is a SkyPilot
secret with no value here: `sky serve up --secret KEY` passes it from the launching shell, and the servers check it.
"""
from __future__ import annotations

import re
import shlex

from gptoss_deploy.backends.base import ContainerCommand
from gptoss_deploy.export.common import (CACHE_ENV, PORT, Autoscale, ExportRequest, cache_gib, container_image,
                                         container_size, copies, exportable, gpus_per_container, key_env,
                                         leader_script, nodes, render_yaml, startup_seconds, worker_script)
from gptoss_deploy.planner.documents import PlanDocument
from gptoss_deploy.planner.errors import UsageError
from gptoss_deploy.planner.gpus import CLOUD_GPUS

# SkyPilot's accelerator names for the cloud GPUs (`sky show-gpus`): ours, except the 40 GB A100, which it calls A100.
ACCELERATORS = {gpu.name: ("A100" if key == "A100-40GB" else key) for key, gpu in CLOUD_GPUS.items()}
VENDOR_WORDS = {"NVIDIA", "GeForce", "Tesla", "AMD", "Radeon", "Instinct"}
CONSUMER_LINES = {"RTX", "GTX", "TITAN", "Titan"}     # named by their product words together: RTX4090
MEMORY_VARIANTS = {"A100": "80GB", "V100": "32GB"}    # the larger variant has a name of its own in SkyPilot's catalog
# SkyPilot's GPU names: skypilot-catalog's catalogs/v8/common/accelerators.csv (at 001ca54; v8 is the schema
# SkyPilot 0.14 reads), TPUs left out. SkyPilot's offline reader takes any name: only a launch would refuse one.
SKYPILOT_GPUS = frozenset({"A10", "A100", "A100-80GB", "A100-80GB-SXM", "A10G", "A30", "A40", "A4000", "A6000",
    "A800", "B200", "GH200", "GTX1660S", "Gaudi HL-205", "H100", "H100-MEGA", "H100-NVL", "H100-NVLINK", "H100-SXM",
    "H200", "H200-SXM", "K80", "L4", "L40", "L40S", "M4000", "M60", "MI300X", "P100", "P4", "P4000", "RTX3060",
    "RTX3070", "RTX3080", "RTX3090", "RTX4000-Ada", "RTX4090", "RTX5060", "RTX5090", "RTX6000", "RTX6000-Ada",
    "RTX6000Ada", "RTXA4000", "RTXA4500", "RTXA5000", "RTXA6000", "RTXPRO6000S", "RTXPRO6000WS", "Radeon MI25",
    "Radeon Pro V520", "T4", "T4g", "V100", "V100-32GB"})
IMAGE_DISK_GIB = 50             # the engine's image and the OS beside the model's files
LEADER = '$(echo "$SKYPILOT_NODE_IPS" | head -n1)'     # SkyPilot lists a replica's node addresses, the first first


def accelerator(gpu_name: str) -> str:
    """SkyPilot's name for GPU_NAME as a driver reports it: the table's; a datacenter GPU by its model, with the
    memory where SkyPilot's catalog tells variants apart by it (Tesla V100-SXM2-32GB: V100-32GB; Tesla T4: T4;
    AMD's "Aqua Vanjaram [Instinct MI300X]": MI300X); a consumer card's product words run together, as its
    catalogs write them (NVIDIA GeForce RTX 4090: RTX4090)."""
    if gpu_name in ACCELERATORS:
        return ACCELERATORS[gpu_name]
    marketed = re.search(r"\[(.+)\]", gpu_name)            # amd-smi: the codename, then the product in brackets
    words = [w for w in (marketed[1] if marketed else gpu_name).split() if w not in VENDOR_WORDS]
    if not words or words[0] in CONSUMER_LINES:
        return "".join(words)
    model = words[0].split("-")[0]
    memory = MEMORY_VARIANTS.get(model)
    return f"{model}-{memory}" if memory and memory in gpu_name else model


def service(request: ExportRequest) -> dict:
    """The service YAML's document: REPLICAS replicas of the planned node (llama.cpp's copies: one GPU each), or
    from AUTOSCALE's minimum up to that many, scaled by SkyServe on the requests per second one was planned for."""
    plan, name, vendor = request.plan, request.name, request.vendor
    served = exportable(plan)
    gpus = gpus_per_container(plan, vendor)
    size = container_size(request)      # what Kubernetes pods ask for: SkyPilot picks a VM with at least as much
    resources: dict = {"image_id": f"docker:{container_image(plan, vendor, request.image).ref}", "ports": PORT,
                       "cpus": f"{size.cpus}+", "memory": f"{size.memory_gib}+",
                       "disk_size": cache_gib(plan) + IMAGE_DISK_GIB}
    if gpus:
        resources["accelerators"] = f"{_catalog_name(request.gpu_name or '')}:{gpus}"
    return {
        "name": name, "resources": resources, **({"num_nodes": nodes(plan)} if nodes(plan) > 1 else {}),
        "envs": {**served.env, **CACHE_ENV},
        "secrets": {key_env(plan): None},
        "service": {"readiness_probe": {"path": "/health", "initial_delay_seconds": startup_seconds(plan)},
                    **_replicas(request.replicas * copies(plan), copies(plan), request.autoscale)},
        "run": _run(plan, served),
    }


def _catalog_name(gpu_name: str) -> str:
    name = accelerator(gpu_name)
    if name not in SKYPILOT_GPUS:
        raise UsageError(f"SkyPilot's catalog offers no {gpu_name} (it would be {name!r}): no cloud would launch "
                         "it; export --format kubernetes or compose for this machine, or plan with --gpu and a GPU "
                         "SkyPilot offers (H100, L4, ...)")
    return name


def _run(plan: PlanDocument, served: ContainerCommand) -> str:
    """The command; over several nodes, the first leads and the others join it (SKYPILOT_NODE_RANK)."""
    if nodes(plan) == 1:
        return shlex.join([*served.entrypoint, *served.args]) + "\n"
    return (f'if [ "$SKYPILOT_NODE_RANK" = 0 ]; then\n  {leader_script(served)}\n'
            f"else\n  {worker_script(LEADER)}\nfi\n")


def _replicas(count: int, per_replica: int, autoscale: Autoscale | None) -> dict:
    if autoscale is None:
        return {"replicas": count}
    return {"replica_policy": {
        "min_replicas": autoscale.min_replicas * per_replica, "max_replicas": count,
        "target_qps_per_replica": round(autoscale.requests_per_s_per_replica / per_replica, 2)}}


def write(request: ExportRequest) -> str:
    return render(service(request))


def render(document: dict) -> str:
    key = next(iter(document["secrets"]))
    return render_yaml([document], f"# gptoss export: launch with the API key from your shell (it is never written here):\n"
                                   f"#   {key}=$(openssl rand -hex 24) sky serve up -n {document['name']} "
                                   f"--secret {key} gpt-oss.sky.yaml\n")
