"""Backend registry: the closed set of ways to serve gpt-oss, and how to reach each one's module."""
from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module

from gptoss_deploy.planner.errors import UsageError


@dataclass(frozen=True)
class BackendInfo:
    name: str
    cloud: bool
    title: str


BACKENDS: dict[str, BackendInfo] = {
    info.name: info
    for info in (
        BackendInfo("llamacpp", cloud=False, title="llama.cpp (llama-server)"),
        BackendInfo("ollama", cloud=False, title="Ollama"),
        BackendInfo("vllm", cloud=False, title="vLLM"),
        BackendInfo("bedrock", cloud=True, title="AWS Bedrock"),
        BackendInfo("azure", cloud=True, title="Azure AI Foundry"),
    )
}


def get_backend_info(name: str) -> BackendInfo:
    """The registry entry for NAME, or a usage error that lists the valid names."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise UsageError(f"unknown backend {name!r}; choose one of: auto, {', '.join(BACKENDS)}") from None


def get_backend_module(name: str):
    """The module that builds launch commands for NAME (imported on demand: keeps start-up fast)."""
    get_backend_info(name)
    return import_module(f"{__name__}.{name}")
