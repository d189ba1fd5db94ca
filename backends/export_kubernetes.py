"""A plan as Kubernetes objects: the same engine flags as the local launch, in the engine's official image.

One pod is one replica of the planned node (vLLM: its tensor-parallel group and data-parallel copies); llama.cpp's
copies become pods of one GPU each, since the router that joins them locally is not in the engine's image.
The API key comes from a Secret the user creates (never a value here); the model cache is a PersistentVolumeClaim.
"""
from __future__ import annotations

import math

from gptoss_deploy.backends.base import LOAD_BYTES_PER_S
from gptoss_deploy.backends.export import (CACHE, CACHE_ENV, IMAGES, KEY_ENV, PORT, SHM, command, copies,
                                           gpus_per_container, render_yaml, require_exportable)
from gptoss_deploy.planner.documents import PlanDocument

GPU_RESOURCE = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu"}
DOWNLOAD_BYTES_PER_S = 100e6     # a first start downloads the model: the startup probe allows for it
PROBE_PERIOD_S = 10


def secret_name(name: str) -> str:
    return f"{name}-api-key"


def manifests(plan: PlanDocument, name: str, replicas: int, vendor: str | None, gpu_name: str | None,
              image: str | None = None) -> list[dict]:
    """Deployment, Service and model-cache claim for PLAN, REPLICAS times the planned node."""
    require_exportable(plan)
    pods = replicas * copies(plan)
    gpus = gpus_per_container(plan, vendor)
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "gptoss"}
    pod = _pod(plan, name, labels, vendor, gpus, gpu_name, image or IMAGES[(plan.backend, vendor)])
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": pods, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": pod}},
    }
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels},
               "spec": {"selector": labels, "ports": [{"name": "http", "port": PORT, "targetPort": "http"}]}}
    size_gib = math.ceil(plan.memory.breakdown.weights / plan.offload.data_parallel_size / 2**30 * 1.2)
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": f"{name}-models",
                                                                                "labels": labels},
             # pods on several nodes share one cache only where the storage class offers ReadWriteMany
             "spec": {"accessModes": ["ReadWriteMany" if pods > 1 else "ReadWriteOnce"],
                      "resources": {"requests": {"storage": f"{size_gib}Gi"}}}}
    return [claim, deployment, service]


def _pod(plan: PlanDocument, name: str, labels: dict, vendor: str | None, gpus: int, gpu_name: str | None,
         image: str) -> dict:
    entrypoint, args = command(plan)
    env = [{"name": k, "value": v} for k, v in {**plan.launch.env, **CACHE_ENV}.items()]
    env.append({"name": KEY_ENV[plan.backend], "valueFrom": {"secretKeyRef": {"name": secret_name(name),
                                                                               "key": "api-key"}}})
    health = {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": PROBE_PERIOD_S}
    start_s = plan.memory.breakdown.weights * (1 / DOWNLOAD_BYTES_PER_S + 1 / LOAD_BYTES_PER_S) + 300
    container = {
        "name": plan.backend, "image": image, "command": entrypoint, "args": args, "env": env,
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


def render(objects: list[dict], name: str) -> str:
    """The objects as one YAML stream, headed by how to create the Secret they read the API key from."""
    return render_yaml(objects, f"# gptoss export: create the API key first (it is never written here):\n"
                                f"#   kubectl create secret generic {secret_name(name)} "
                                "--from-literal=api-key=$(openssl rand -hex 24)\n")
