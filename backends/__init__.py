"""The backend registry: the closed set of ways to serve gpt-oss. Every list of backend names (CLI choices, the
wizard, profiles, the planner's order) derives from it; a new backend is one adapter file and one line here."""
from __future__ import annotations

from pathlib import Path

from gptoss_deploy.backends.azure import AZURE
from gptoss_deploy.backends.base import Backend
from gptoss_deploy.backends.bedrock import BEDROCK
from gptoss_deploy.backends.foundry import FOUNDRY
from gptoss_deploy.backends.hf_endpoints import HF_ENDPOINTS
from gptoss_deploy.backends.llamacpp import LLAMACPP
from gptoss_deploy.backends.lmstudio import LMSTUDIO
from gptoss_deploy.backends.ollama import OLLAMA
from gptoss_deploy.backends.sglang import SGLANG
from gptoss_deploy.backends.vllm import VLLM
from gptoss_deploy.planner.errors import UsageError

REGISTRY: dict[str, Backend] = {backend.name: backend for backend in (LLAMACPP, OLLAMA, VLLM, SGLANG, LMSTUDIO, FOUNDRY,
                                                                       BEDROCK, AZURE, HF_ENDPOINTS)}


def get_backend(name: str) -> Backend:
    """The adapter for NAME, or a usage error that lists the valid names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown backend {name!r}; choose one of: auto, {', '.join(REGISTRY)}") from None


def load_saved_plan(path: Path):
    """A plan saved from `gptoss-plan --json`, read strictly (planner.saved_plan) and checked against the backend it
    names: known, and launched its way (a server command for a local backend, an API call for a cloud one)."""
    from gptoss_deploy.planner.documents import ApiCall
    from gptoss_deploy.planner.saved_plan import load_plan

    doc = load_plan(path)
    if doc.backend not in REGISTRY:
        raise UsageError(f"plan file {path}: unknown backend {doc.backend!r}; plans name one of {', '.join(REGISTRY)}")
    if REGISTRY[doc.backend].cloud != isinstance(doc.launch, ApiCall):
        raise UsageError(f"plan file {path}: backend {doc.backend} " + (
            "is a cloud service, but the plan's launch runs a server command" if REGISTRY[doc.backend].cloud else
            "runs a local server, but the plan's launch calls an API"))
    if REGISTRY[doc.backend].cloud:
        REGISTRY[doc.backend].check_planned(doc)
    return doc
