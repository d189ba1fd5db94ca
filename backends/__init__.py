"""The backend registry: the closed set of ways to serve gpt-oss. Every list of backend names (CLI choices, the
wizard, profiles, the planner's order) derives from it; a new backend is one adapter file and one line here."""
from __future__ import annotations

from gptoss_deploy.backends.azure import AZURE
from gptoss_deploy.backends.base import Backend
from gptoss_deploy.backends.bedrock import BEDROCK
from gptoss_deploy.backends.foundry import FOUNDRY
from gptoss_deploy.backends.hf_endpoints import HF_ENDPOINTS
from gptoss_deploy.backends.llamacpp import LLAMACPP
from gptoss_deploy.backends.lmstudio import LMSTUDIO
from gptoss_deploy.backends.ollama import OLLAMA
from gptoss_deploy.backends.vllm import VLLM
from gptoss_deploy.planner.errors import UsageError

REGISTRY: dict[str, Backend] = {backend.name: backend for backend in (LLAMACPP, OLLAMA, VLLM, LMSTUDIO, FOUNDRY, BEDROCK, AZURE, HF_ENDPOINTS)}


def get_backend(name: str) -> Backend:
    """The adapter for NAME, or a usage error that lists the valid names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown backend {name!r}; choose one of: auto, {', '.join(REGISTRY)}") from None
