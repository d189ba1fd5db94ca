"""Ollama: `ollama serve` with the planned context, and the per-request options (CBO, OLL)."""
from __future__ import annotations

from backends.base import LaunchSettings, endpoint
from planner.placement import Placement

DEFAULT_PORT = 11434


def build_launch(placement: Placement, settings: LaunchSettings) -> dict:
    port = settings.port or DEFAULT_PORT
    return {
        "argv": ["ollama", "serve"],
        # Ollama's default context (4096) silently truncates prompts: always set it.
        "env": {"OLLAMA_HOST": f"{settings.host}:{port}",
                "OLLAMA_CONTEXT_LENGTH": str(placement.context_length)},
        "model_ref": placement.artifact.ref,
        "request": {"model": placement.artifact.ref, "think": settings.reasoning_effort,
                    "options": {"num_ctx": placement.context_length}},
        "base_url": endpoint(settings.host, port),
    }
