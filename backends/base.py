"""What every backend's command builder takes: the placement chosen by the planner and a few settings."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LaunchSettings:
    host: str = "127.0.0.1"          # loopback unless the user asks otherwise (then an API key is required)
    port: int | None = None          # None: the backend's usual port
    reasoning_effort: str = "medium"
    region: str | None = None        # cloud backends
    cloud_model_id: str | None = None


def endpoint(host: str, port: int) -> str:
    return f"http://{host}:{port}/v1"
