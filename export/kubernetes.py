"""A plan as Kubernetes objects: the same engine flags as the local launch, in the engine's official image.

One pod is one replica of the planned node (vLLM: its tensor-parallel group and data-parallel copies); llama.cpp's
copies become pods of one GPU each, since the router that joins them locally is not in the engine's image. A plan
over several nodes becomes a LeaderWorkerSet: a group of one pod per node for each replica, joined by Ray.
The API key comes from a Secret the user creates (never a value here); the model cache is a PersistentVolumeClaim.
Pods run as Pod Security "restricted" asks where the engine's image allows it; what checkov would still report is
waived on the object with its reason (tests/test_export.py runs checkov).
"""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass

from gptoss_deploy.backends.base import ContainerCommand, ContainerImage
from gptoss_deploy.export.common import (CACHE, CACHE_ENV, PORT, SHM, Autoscale, ContainerSize, ExportRequest,
                                         cache_gib, container_image, container_size, copies, engine_of, exportable,
                                         gpus_per_container, key_env, leader_script, nodes, render_yaml,
                                         startup_seconds, worker_script)
from gptoss_deploy.planner.documents import PlanDocument
from gptoss_deploy.planner.errors import UsageError
from gptoss_deploy.planner.vendors import GPU_VENDORS, Vendor

PROBE_PERIOD_S = 10
# vLLM's gauge of the requests waiting for room on each server (its /metrics), read by the autoscaler through a
# custom metrics adapter; llama.cpp's /metrics sits behind its API key, which a cluster's scraper does not hold.
# Running requests are capped by a replica's KV cache, so a saturated replica's running gauge stays flat while its
# queue grows: the queue is the signal. 5 waiting a pod: vLLM production-stack's KEDA trigger
# (docs/source/use_cases/autoscaling-keda.rst at 183a136).
REQUESTS_WAITING, WAITING_PER_POD = "vllm:num_requests_waiting", 5
SCALE_DOWN_WINDOW_S = 600    # a new replica takes minutes to load: do not give one back on a short lull
KEY_DIR = "/var/run/secrets/gptoss"    # the Secret, mounted: an engine that reads a key file reads it here
HIGH_UID = 10000             # checkov CKV_K8S_40: UIDs below it may be a node's own users


def secret_name(name: str) -> str:
    return f"{name}-api-key"


def manifests(request: ExportRequest, image: ContainerImage) -> list[dict]:
    """Model-cache claim, Deployment and Service for the request's plan in IMAGE, REPLICAS times the planned node
    (at most that many, from AUTOSCALE's minimum, with a HorizontalPodAutoscaler)."""
    plan, name, replicas, autoscale = request.plan, request.name, request.replicas, request.autoscale
    served = exportable(plan, key_file=f"{KEY_DIR}/api-key")
    if autoscale and plan.backend != "vllm":
        raise UsageError(f"autoscaling on Kubernetes reads vLLM's {REQUESTS_WAITING}; llama.cpp's metrics need "
                         "its API key to scrape: give --replicas, or export --format skypilot")
    if autoscale and nodes(plan) > 1:
        raise UsageError("autoscaling a replica of several nodes is not written: give --replicas, or export "
                         "--format skypilot")
    pods = replicas * copies(plan) * nodes(plan)
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "gptoss"}
    # One pod keeps the model in a claim across restarts. Several would share it only where the storage class offers
    # ReadWriteMany (EBS and PD do not: every pod would stay Pending), so each has a volume of its own, made and
    # deleted with it, and a new pod downloads the model (its start-up allowance counts the download).
    shared = pods == 1 and autoscale is None
    cache = ({"persistentVolumeClaim": {"claimName": f"{name}-models"}} if shared else
             {"ephemeral": {"volumeClaimTemplate": {"spec": _cache_claim(plan)}}})
    pod = Pod(plan, name, request.vendor, request.gpu_name, image, container_size(request), cache)
    serving = labels
    if nodes(plan) > 1:
        workload = _leader_worker_set(plan, served, name, labels, replicas, pod)
        serving = {**labels, "app.kubernetes.io/component": "leader"}      # only the leaders serve
    else:
        workload = {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": pods, "selector": {"matchLabels": labels},
                     # a rollout stops a pod before it starts its successor: no spare GPU or second attachment needed
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
                     "template": {"metadata": {"labels": labels}, "spec": pod.spec(served, serves=True)}},
        }
    workload["metadata"]["annotations"] = _waivers(pod, served, workers=nodes(plan) > 1)
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": name, "labels": labels, "annotations": _waivers()},
               "spec": {"selector": serving, "ports": [{"name": "http", "port": PORT, "targetPort": "http"}]}}
    claim = [{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
              "metadata": {"name": f"{name}-models", "labels": labels}, "spec": _cache_claim(plan)}] if shared else []
    objects = [*claim, workload, service, _network_policy(name, labels, nodes(plan))]
    return objects if autoscale is None else [*objects, _autoscaler(name, labels, pods, autoscale)]


def _cache_claim(plan: PlanDocument) -> dict:
    return {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": f"{cache_gib(plan)}Gi"}}}


def _leader_worker_set(plan: PlanDocument, served: ContainerCommand, name: str, labels: dict, replicas: int,
                      pod: Pod) -> dict:
    """REPLICAS groups of one pod per node (LeaderWorkerSet, kubernetes-sigs/lws): the leader runs Ray's head and
    the server, the workers join its Ray cluster; one pod's restart recreates its group, which Ray needs."""

    def shell(script: str) -> ContainerCommand:
        return ContainerCommand(["sh", "-c"], [script], served.env)
    return {
        "apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
        "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": replicas, "leaderWorkerTemplate": {
            "size": nodes(plan), "restartPolicy": "RecreateGroupOnPodRestart",
            "leaderTemplate": {"metadata": {"labels": {**labels, "app.kubernetes.io/component": "leader"}},
                               "spec": pod.spec(shell(leader_script(served)), serves=True)},
            "workerTemplate": {"metadata": {"labels": {**labels, "app.kubernetes.io/component": "worker"}},
                               # LWS gives every pod of a group its leader's address
                               "spec": pod.spec(shell(worker_script("$LWS_LEADER_ADDRESS")), serves=False)},
        }},
    }


def _network_policy(name: str, labels: dict, nodes_per_replica: int) -> dict:
    """Traffic in on the API port only; the pods of a replica over nodes also reach each other (Ray, NCCL). Out is
    left open: a first start downloads the model."""
    ingress: list[dict] = [{"ports": [{"protocol": "TCP", "port": PORT}]}]
    if nodes_per_replica > 1:
        ingress.append({"from": [{"podSelector": {"matchLabels": labels}}]})
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "labels": labels, "annotations": _waivers()},
            "spec": {"podSelector": {"matchLabels": labels}, "policyTypes": ["Ingress"], "ingress": ingress}}


def _waivers(pod: Pod | None = None, served: ContainerCommand | None = None, workers: bool = False) -> dict[str, str]:
    """The checkov findings these objects keep, each with its reason, as the annotations checkov reads; with POD,
    those of its containers; with WORKERS, those of pods that serve nothing."""
    reasons = {"CKV_K8S_21": "no namespace is written: the objects go where they are applied (kubectl apply -n NS)"}
    if pod is not None and served is not None:
        image, engine = pod.image, engine_of(pod.plan)
        if "@sha256:" not in image.ref:
            reasons["CKV_K8S_43"] = ("a tag: the release gptoss checks its flags against (gptoss export --image "
                                     "REF@sha256:DIGEST pins a digest)")
        if image.user is None:
            reasons["CKV_K8S_23"] = f"runs as root: {image.why}"
        if image.user is None or image.user < HIGH_UID:
            reasons["CKV_K8S_40"] = image.why
        if served.key_file is None:
            reasons["CKV_K8S_35"] = f"{engine.key_from_environment()}; the value comes from the Secret"
        if engine.container_writes:
            reasons["CKV_K8S_22"] = f"{engine.container_writes}: its root filesystem stays writable"
    if workers:
        reasons["CKV_K8S_8"] = reasons["CKV_K8S_9"] = ("a worker serves no HTTP and has nothing to probe: it lives "
                                                      "as long as its Ray node, and a restart recreates its group")
    return {f"checkov.io/skip{n}": f"{check}={reason}" for n, (check, reason) in enumerate(reasons.items(), 1)}


def _autoscaler(name: str, labels: dict, pods: int, autoscale: Autoscale) -> dict:
    """Pods added while requests queue on them: more than WAITING_PER_POD waiting, on average."""
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name, "labels": labels},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                 "minReplicas": autoscale.min_replicas, "maxReplicas": pods,
                 "metrics": [{"type": "Pods", "pods": {
                     "metric": {"name": REQUESTS_WAITING},
                     "target": {"type": "AverageValue", "averageValue": str(WAITING_PER_POD)}}}],
                 "behavior": {"scaleDown": {"stabilizationWindowSeconds": SCALE_DOWN_WINDOW_S}}},
    }


@dataclass(frozen=True)
class Pod:
    """The pods of PLAN: its engine's image and GPUs, the model cache, /dev/shm, the key from the Secret."""
    plan: PlanDocument
    name: str
    vendor: str | None
    gpu_name: str | None
    image: ContainerImage
    size: ContainerSize
    cache: dict                  # the model cache's volume source: the claim, or one of the pod's own

    @property
    def gpu_vendor(self) -> Vendor:
        return GPU_VENDORS[self.vendor or ""]

    def spec(self, runs: ContainerCommand, serves: bool) -> dict:
        """A pod running RUNS; one that SERVES has the port and the health probes."""
        # llama-server's threads: the CPUs the pod is given, not the node's cores it would count by itself
        threads = {"LLAMA_ARG_THREADS": str(self.size.cpus)} if self.plan.backend == "llamacpp" else {}
        env = [{"name": k, "value": v} for k, v in {**runs.env, **CACHE_ENV, **threads}.items()]
        mounts = [{"name": "models", "mountPath": CACHE}, {"name": "shm", "mountPath": "/dev/shm"}]
        volumes = [{"name": "models", **self.cache},
                   {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM}}]
        key = {"secretName": secret_name(self.name), "items": [{"key": "api-key", "path": "api-key"}]}
        if runs.key_file:                                   # the engine reads the key from the Secret's file
            mounts.append({"name": "api-key", "mountPath": KEY_DIR, "readOnly": True})
            volumes.append({"name": "api-key", "secret": key})
        else:
            env.append({"name": key_env(self.plan), "valueFrom": {"secretKeyRef": {"name": key["secretName"],
                                                                                   "key": "api-key"}}})
        read_only = not engine_of(self.plan).container_writes
        if read_only:                                       # what it writes beside its cache goes to /tmp
            mounts.append({"name": "tmp", "mountPath": "/tmp"})
            volumes.append({"name": "tmp", "emptyDir": {}})
        container = {"name": self.plan.backend, "image": self.image.ref, "imagePullPolicy": "Always",
                     "command": runs.entrypoint, "args": runs.args, "env": env,
                     "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                         "readOnlyRootFilesystem": read_only,
                                         **({"runAsNonRoot": True, "runAsUser": self.image.user}
                                            if self.image.user is not None else {})}}
        if serves:
            health = {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": PROBE_PERIOD_S}
            container.update({
                "ports": [{"name": "http", "containerPort": PORT}],
                "readinessProbe": health, "livenessProbe": {**health, "failureThreshold": 6},
                "startupProbe": {**health,
                                 "failureThreshold": math.ceil(startup_seconds(self.plan) / PROBE_PERIOD_S)}})
        container["volumeMounts"] = mounts
        needs = {"cpu": str(self.size.cpus), "memory": f"{self.size.memory_gib}Gi"}
        gpus = gpus_per_container(self.plan, self.vendor)
        container["resources"] = {"requests": needs,
                                  "limits": {**needs, **({self.gpu_vendor.kubernetes_resource: gpus} if gpus else {})}}
        security = {"seccompProfile": {"type": "RuntimeDefault"}}
        if self.image.user is not None:                     # its volumes writable by its user's group
            security["fsGroup"] = self.image.user
        pod = {"automountServiceAccountToken": False,      # the server never calls the Kubernetes API
               "securityContext": security, "containers": [container], "volumes": volumes}
        label = self.gpu_vendor.kubernetes_product_label if self.vendor else None
        if label and self.gpu_name:                       # nodes labelled by GPU product: only the planned one
            pod["nodeSelector"] = {label: self.gpu_name.replace(" ", "-")}
        return pod


def write(request: ExportRequest) -> str:
    image = container_image(request.plan, request.vendor, request.image)
    return render(manifests(request, image), request.name, as_root=None if image.user is not None else image)


def render(objects: list[dict], name: str, as_root: ContainerImage | None = None) -> str:
    """The objects as one YAML stream, headed by how to create the Secret they read the API key from, and by why
    the engine's image runs as root where it must (AS_ROOT)."""
    head = (f"# gptoss export: create the API key first (it is never written here):\n"
            f"#   kubectl create secret generic {secret_name(name)} --from-literal=api-key=$(openssl rand -hex 24)\n")
    if as_root:
        head += "".join(f"# {line}\n" for line in textwrap.wrap(
            f"Pod Security 'restricted' but for runAsNonRoot: {as_root.ref} runs as root, since {as_root.why}.", 116))
    if objects[-1]["kind"] == "HorizontalPodAutoscaler":
        head += (f"# The autoscaler reads {REQUESTS_WAITING} from each pod's /metrics through a custom metrics adapter\n"
                 "# (prometheus-adapter, or your cloud's managed Prometheus); without one it keeps the minimum.\n")
    return render_yaml(objects, head)
