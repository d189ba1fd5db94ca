"""What every export target shares: the engine's image, its command listening for the cluster, the key's variable.

Each target (kubernetes, compose, skypilot) turns an ExportRequest into its own files with these.
"""
from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, replace

from gptoss_deploy.backends.base import CONTAINER_PORT, ContainerCommand, ContainerImage, LOAD_BYTES_PER_S, LocalBackend
from gptoss_deploy.planner.documents import PlanDocument
from gptoss_deploy.planner.errors import UsageError

PORT = CONTAINER_PORT
CACHE = "/models"
CACHE_ENV = {"HF_HOME": CACHE, "LLAMA_CACHE": CACHE}                # where each engine keeps downloaded models
SHM = "16Gi"                     # NCCL and vLLM's workers share tensors through /dev/shm
DOWNLOAD_BYTES_PER_S = 100e6     # a first start downloads the model: readiness waits allow for it
RAY_PORT = 6379                  # Ray's default: vLLM's multi-node launch joins the nodes through a Ray cluster
# A container's RAM beyond the plan's host share of the model: the engine's runtime (Python, a CUDA context per GPU
# worker, tokenizer, HTTP server). Our allowance, not a published figure: a memory limit below it is an OOM kill.
RUNTIME_BYTES, RUNTIME_BYTES_PER_GPU = 2 * 2**30, 2 * 2**30
GPU_SERVER_CPUS = 4              # a GPU server's host work: scheduling, tokenizing, detokenizing, HTTP
SAVED_CPU_PLAN_CPUS = 8          # a saved CPU plan does not say how many cores it was planned on
UNKNOWN_IMAGE_USER = "gptoss does not know which user an image given by --image runs as"


@dataclass(frozen=True)
class ExportRequest:
    """What `gptoss export` asks a target for: the plan, what to call it, how many replicas, on whose GPUs."""
    plan: PlanDocument
    name: str
    replicas: int
    vendor: str | None                   # whose GPUs the pods ask for; None: a CPU plan
    gpu_name: str | None
    image: str | None = None             # --image: instead of the engine's own
    autoscale: Autoscale | None = None
    cpu_cores: int | None = None         # the planned node's physical cores; None: a saved plan, which omits them


@dataclass(frozen=True)
class ContainerSize:
    """What one container asks of its node: CPUs (a CPU plan: the cores it was planned on) and RAM in GiB."""
    cpus: int
    memory_gib: int


def container_size(request: ExportRequest) -> ContainerSize:
    plan, gpus = request.plan, gpus_per_container(request.plan, request.vendor)
    host_share = plan.memory.cpu_bytes / copies(plan)
    memory = math.ceil((host_share + RUNTIME_BYTES + gpus * RUNTIME_BYTES_PER_GPU) / 2**30)
    computes_on_cpu = not gpus or plan.offload.n_cpu_moe        # llama.cpp runs experts on the CPU: its cores count
    cpus = (request.cpu_cores or SAVED_CPU_PLAN_CPUS) if computes_on_cpu else GPU_SERVER_CPUS
    return ContainerSize(cpus, memory)


@dataclass(frozen=True)
class Autoscale:
    """Between MIN_REPLICAS and the planned count, scaled on the load one replica was planned for."""
    min_replicas: int
    requests_per_s_per_replica: float    # its planned output rate, in answers of a typical length


def exportable(plan: PlanDocument, key_file: str | None = None) -> ContainerCommand:
    """The plan's server in its engine's published image, its command read as strictly as `up` reads it, its key
    read from KEY_FILE where the engine reads one; an engine without an image is a usage error."""
    return engine_of(plan).container_command(plan=plan, key_file=key_file)


def copies(plan: PlanDocument) -> int:
    """llama.cpp's per-GPU copies run as separate containers of one GPU (the router that joins them locally is not
    in the engine's image); vLLM keeps its data parallelism inside one."""
    return plan.offload.data_parallel_size if plan.backend == "llamacpp" else 1


def gpus_per_container(plan: PlanDocument, vendor: str | None) -> int:
    if vendor is None:
        return 0
    return 1 if copies(plan) > 1 else plan.offload.tensor_parallel_size * plan.offload.data_parallel_size


def startup_seconds(plan: PlanDocument) -> int:
    """How long a first start may take before the server answers: download, load, and five minutes of warm-up. The
    copies of a data-parallel plan share one download and load side by side: one copy's weights count."""
    weights = plan.memory.breakdown.weights / plan.offload.data_parallel_size
    return math.ceil(weights * (1 / DOWNLOAD_BYTES_PER_S + 1 / LOAD_BYTES_PER_S) + 300)


def cache_gib(plan: PlanDocument) -> int:
    """Room for one copy of the model's files, with a fifth to spare."""
    return math.ceil(plan.memory.breakdown.weights / plan.offload.data_parallel_size / 2**30 * 1.2)


def container_image(plan: PlanDocument, vendor: str | None, image: str | None) -> ContainerImage:
    """The engine's published image for VENDOR's GPUs; IMAGE (--image) in its place runs as the published one does
    (it is most often built from it)."""
    adapter = engine_of(plan)
    published = adapter.container_images.get(vendor)
    if image:
        return replace(published, ref=image) if published else ContainerImage(image, None, UNKNOWN_IMAGE_USER)
    if published is None:
        raise UsageError(f"{adapter.title} has no published image for {vendor or 'a machine without GPUs'}: "
                         "pass --image")
    return published


def key_env(plan: PlanDocument) -> str:
    """The variable the engine's server reads its API key from."""
    return engine_of(plan).key_env


def engine_of(plan: PlanDocument) -> LocalBackend:
    """The adapter of PLAN's engine: its image, command and key variable; an engine without an image (a cloud
    service, Ollama) is a usage error."""
    from gptoss_deploy.backends import get_backend

    adapter = get_backend(plan.backend)
    if adapter.cloud or not adapter.container_images:      # a cloud service has no image to run
        raise UsageError(f"export runs vLLM and llama.cpp plans; this plan is for {plan.backend}: plan with "
                         "--backend vllm or --backend llamacpp")
    return adapter


def nodes(plan: PlanDocument) -> int:
    """How many nodes one replica spans: a pipeline stage on each."""
    return plan.offload.pipeline_parallel_size


def leader_script(served: ContainerCommand) -> str:
    """The first node of a multi-node replica: Ray's head, then the server, which waits for the workers' GPUs."""
    return f"ray start --head --port={RAY_PORT} && exec {shlex.join([*served.entrypoint, *served.args])}"


def worker_script(leader_address: str) -> str:
    """The other nodes: join the leader's Ray cluster (LEADER_ADDRESS, a shell expression), retried until it is up."""
    return f"until ray start --address={leader_address}:{RAY_PORT} --block; do sleep 5; done"


def render_yaml(documents: list[dict], head: str) -> str:
    """DOCUMENTS as one YAML stream after the comment HEAD, each written out in full (no &anchors), scripts as blocks."""
    import yaml

    class Plain(yaml.SafeDumper):
        def ignore_aliases(self, data) -> bool:
            return True

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:    # a script reads as a block, line by line
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    Plain.add_representer(str, text)
    return head + yaml.dump_all(documents, Dumper=Plain, sort_keys=False)
