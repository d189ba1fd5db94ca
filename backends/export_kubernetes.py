"""A plan as Kubernetes objects: the same engine flags as the local launch, in the engine's official image.

One pod is one replica of the planned node (vLLM: its tensor-parallel group and data-parallel copies); llama.cpp's
copies become pods of one GPU each, since the router that joins them locally is not in the engine's image.
The API key comes from a Secret the user creates (never a value here); the model cache is a PersistentVolumeClaim.
"""
from __future__ import annotations

import math

from gptoss_deploy.backends.base import LOAD_BYTES_PER_S
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
GPU_RESOURCE = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu"}
DOWNLOAD_BYTES_PER_S = 100e6     # a first start downloads the model: the startup probe allows for it
PROBE_PERIOD_S = 10
SHM = "16Gi"                     # NCCL and vLLM's workers share tensors through /dev/shm


def secret_name(name: str) -> str:
    return f"{name}-api-key"


def manifests(plan: PlanDocument, name: str, replicas: int, vendor: str | None, gpu_name: str | None,
              image: str | None = None) -> list[dict]:
    """Deployment, Service and model-cache claim for PLAN, REPLICAS times the planned node."""
    if plan.backend not in KEY_ENV:
        raise UsageError(f"export runs vLLM and llama.cpp plans; this plan is for {plan.backend}: plan with "
                         "--backend vllm or --backend llamacpp")
    copies = plan.offload.data_parallel_size if plan.backend == "llamacpp" else 1
    gpus = 0 if vendor is None else (1 if copies > 1 else plan.offload.tensor_parallel_size
                                     * plan.offload.data_parallel_size)
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "gptoss"}
    pod = _pod(plan, name, labels, vendor, gpus, gpu_name, image or IMAGES[(plan.backend, vendor)])
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": replicas * copies, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": pod}},
    }
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels},
               "spec": {"selector": labels, "ports": [{"name": "http", "port": PORT, "targetPort": "http"}]}}
    size_gib = math.ceil(plan.memory.breakdown.weights / plan.offload.data_parallel_size / 2**30 * 1.2)
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": f"{name}-models",
                                                                                "labels": labels},
             # pods on several nodes share one cache only where the storage class offers ReadWriteMany
             "spec": {"accessModes": ["ReadWriteMany" if replicas * copies > 1 else "ReadWriteOnce"],
                      "resources": {"requests": {"storage": f"{size_gib}Gi"}}}}
    return [claim, deployment, service]


def _pod(plan: PlanDocument, name: str, labels: dict, vendor: str | None, gpus: int, gpu_name: str | None,
         image: str) -> dict:
    command, args = _command(plan)
    env = [{"name": k, "value": v} for k, v in plan.launch.env.items()]
    env += [{"name": KEY_ENV[plan.backend], "valueFrom": {"secretKeyRef": {"name": secret_name(name),
                                                                            "key": "api-key"}}},
            {"name": "HF_HOME", "value": CACHE}, {"name": "LLAMA_CACHE", "value": CACHE}]
    health = {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": PROBE_PERIOD_S}
    start_s = plan.memory.breakdown.weights * (1 / DOWNLOAD_BYTES_PER_S + 1 / LOAD_BYTES_PER_S) + 300
    container = {
        "name": plan.backend, "image": image, "command": command, "args": args, "env": env,
        "ports": [{"name": "http", "containerPort": PORT}],
        "readinessProbe": health, "livenessProbe": {**health, "failureThreshold": 6},
        "startupProbe": {**health, "failureThreshold": math.ceil(start_s / PROBE_PERIOD_S)},
        "volumeMounts": [{"name": "models", "mountPath": CACHE}, {"name": "shm", "mountPath": "/dev/shm"}],
    }
    if gpus:
        container["resources"] = {"limits": {GPU_RESOURCE[vendor]: gpus}}
    pod = {"containers": [container],
           "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": f"{name}-models"}},
                       {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM}}]}
    if vendor == "nvidia" and gpu_name:     # NVIDIA's GPU feature discovery labels nodes by product name
        pod["nodeSelector"] = {"nvidia.com/gpu.product": gpu_name.replace(" ", "-")}
    return pod


def _command(plan: PlanDocument) -> tuple[list[str], list[str]]:
    """The plan's server command, listening on every address of the pod at PORT (the key guards it)."""
    argv = list(plan.launch.argv)
    for flag, value in (("--host", "0.0.0.0"), ("--port", str(PORT))):
        argv[argv.index(flag) + 1] = value
    if plan.backend == "vllm":
        return ["vllm", "serve"], argv[2:]
    return ["/app/llama-server"], argv[1:]


def render_yaml(objects: list[dict], name: str) -> str:
    """The objects as one YAML stream, headed by how to create the Secret they read the API key from."""
    import yaml

    class Plain(yaml.SafeDumper):         # each object written out in full: no &anchors for repeated labels
        def ignore_aliases(self, data) -> bool:
            return True

    head = (f"# gptoss export: create the API key first (it is never written here):\n"
            f"#   kubectl create secret generic {secret_name(name)} --from-literal=api-key=$(openssl rand -hex 24)\n")
    return head + yaml.dump_all(objects, Dumper=Plain, sort_keys=False)
