"""A plan as a docker compose file for one node with GPUs: the same engine flags, in the engine's own image.

The API key comes from the environment of whoever runs `docker compose up` (GPTOSS_API_KEY), never from the file;
the port is published on 127.0.0.1 unless asked otherwise. llama.cpp's per-GPU copies become one service each,
on consecutive host ports.
"""
from __future__ import annotations

from gptoss_deploy.export.common import (CACHE, CACHE_ENV, PORT, ExportRequest, container_image, copies, exportable,
                                         gpus_per_container, key_env, nodes, render_yaml, startup_seconds)
from gptoss_deploy.planner.documents import PlanDocument
from gptoss_deploy.planner.errors import UsageError
from gptoss_deploy.planner.vendors import GPU_VENDORS, Vendor

KEY_FROM_ENV = "${GPTOSS_API_KEY:?set GPTOSS_API_KEY}"
SHM_SIZE = "16gb"                  # compose's byte units: the same 16 GiB /dev/shm as the other targets


def compose(plan: PlanDocument, name: str, vendor: str | None, image: str | None = None,
            host: str = "127.0.0.1") -> dict:
    """The compose document: one service per container the plan needs, and the model cache volume."""
    served = exportable(plan)
    if nodes(plan) > 1:
        raise UsageError(f"a compose file runs one node and this plan spans {nodes(plan)}: export --format "
                         "kubernetes or --format skypilot")
    gpus = gpus_per_container(plan, vendor)
    count, image_ref = copies(plan), container_image(plan, vendor, image).ref
    services = {}
    for n in range(count):
        service = {
            "image": image_ref, "entrypoint": served.entrypoint, "command": served.args,
            "environment": {**served.env, **CACHE_ENV, key_env(plan): KEY_FROM_ENV},
            "ports": [f"{host}:{PORT + n}:{PORT}"], "volumes": [f"models:{CACHE}"],
            "shm_size": SHM_SIZE,             # vLLM's docs: this or `ipc: host`, which would share the host's IPC
            # the engine's own probe, at the port it serves here (llama.cpp's image probes 8080 by itself)
            "healthcheck": {"test": ["CMD", *served.health], "interval": "30s",
                            "start_period": f"{startup_seconds(plan)}s"},
            "restart": "unless-stopped",
        }
        if vendor:
            service.update(_gpus(GPU_VENDORS[vendor], [str(n * gpus + i) for i in range(gpus)], count > 1,
                                 service["environment"]))
        services[name if count == 1 else f"{name}-{n}"] = service
    return {"services": services, "volumes": {"models": {}}}


def write(request: ExportRequest) -> str:
    return render(compose(request.plan, request.name, request.vendor, request.image))


def _gpus(vendor: Vendor, ids: list[str], shared: bool, environment: dict) -> dict:
    """What gives a service the GPUs IDS: a runtime's reservation by id (NVIDIA's toolkit), or the device files with
    the GPUs limited by the vendor's variable where other services share them (ROCm)."""
    if vendor.compose_driver:
        return {"deploy": {"resources": {"reservations": {"devices": [
            {"driver": vendor.compose_driver, "device_ids": ids, "capabilities": ["gpu"]}]}}}}
    if shared and vendor.visible_devices:
        environment[vendor.visible_devices] = ",".join(ids)
    return {"devices": list(vendor.container_devices), "group_add": list(vendor.container_groups)}


def render(document: dict) -> str:
    return render_yaml([document], "# gptoss export: run with GPTOSS_API_KEY set (it is never written here):\n"
                                   "#   GPTOSS_API_KEY=$(openssl rand -hex 24) docker compose up -d\n")
