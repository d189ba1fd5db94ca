"""What every export target shares: the engine's image, its command listening for the cluster, the key's variable.

Targets (export_kubernetes, export_compose) turn a plan into their own files with these.
"""
from __future__ import annotations

from gptoss_deploy.planner.documents import PlanDocument
from gptoss_deploy.planner.errors import UsageError

PORT = 8000
CACHE = "/models"
# The engines' published images (vLLM's docs, llama.cpp's packages): --image replaces them.
IMAGES = {("vllm", "nvidia"): "vllm/vllm-openai:latest", ("vllm", "amd"): "rocm/vllm:latest",
          ("llamacpp", "nvidia"): "ghcr.io/ggml-org/llama.cpp:server-cuda",
          ("llamacpp", "amd"): "ghcr.io/ggml-org/llama.cpp:server-rocm",
          ("llamacpp", None): "ghcr.io/ggml-org/llama.cpp:server"}
KEY_ENV = {"vllm": "VLLM_API_KEY", "llamacpp": "LLAMA_API_KEY"}     # each server reads its key from there
CACHE_ENV = {"HF_HOME": CACHE, "LLAMA_CACHE": CACHE}                # where each engine keeps downloaded models
SHM = "16Gi"                     # NCCL and vLLM's workers share tensors through /dev/shm


def require_exportable(plan: PlanDocument) -> None:
    if plan.backend not in KEY_ENV:
        raise UsageError(f"export runs vLLM and llama.cpp plans; this plan is for {plan.backend}: plan with "
                         "--backend vllm or --backend llamacpp")


def copies(plan: PlanDocument) -> int:
    """llama.cpp's per-GPU copies run as separate containers of one GPU (the router that joins them locally is not
    in the engine's image); vLLM keeps its data parallelism inside one."""
    return plan.offload.data_parallel_size if plan.backend == "llamacpp" else 1


def gpus_per_container(plan: PlanDocument, vendor: str | None) -> int:
    if vendor is None:
        return 0
    return 1 if copies(plan) > 1 else plan.offload.tensor_parallel_size * plan.offload.data_parallel_size


def command(plan: PlanDocument) -> tuple[list[str], list[str]]:
    """The plan's server command (entrypoint, arguments), listening on every address at PORT (the key guards it)."""
    argv = list(plan.launch.argv)
    for flag, value in (("--host", "0.0.0.0"), ("--port", str(PORT))):
        argv[argv.index(flag) + 1] = value
    if plan.backend == "vllm":
        return ["vllm", "serve"], argv[2:]
    return ["/app/llama-server"], argv[1:]


def render_yaml(documents: list[dict], head: str) -> str:
    """DOCUMENTS as one YAML stream after the comment HEAD, each written out in full (no &anchors)."""
    import yaml

    class Plain(yaml.SafeDumper):
        def ignore_aliases(self, data) -> bool:
            return True

    return head + yaml.dump_all(documents, Dumper=Plain, sort_keys=False)
