"""llama.cpp: the llama-server command for a placement (G15396, LCS)."""
from __future__ import annotations

import json

from backends.base import LaunchSettings, endpoint
from planner.placement import Placement

DEFAULT_PORT = 8080


def build_launch(placement: Placement, settings: LaunchSettings) -> dict:
    port = settings.port or DEFAULT_PORT
    uses_gpu = any(d.device != "cpu" for d in placement.devices)
    argv = [
        "llama-server", "-hf", placement.artifact.ref,
        "--ctx-size", str(placement.context_length),
        "--jinja",                                    # gpt-oss needs its Harmony chat template
        "-ub", str(placement.ubatch), "-b", str(max(placement.ubatch, 2048)),
        "--n-gpu-layers", "999" if uses_gpu else "0",
    ]
    if uses_gpu:
        argv += ["--flash-attn", "on"]
    if uses_gpu and placement.cpu_layers:
        argv += ["--n-cpu-moe", str(placement.cpu_layers)]
    if placement.tensor_split:
        argv += ["--tensor-split", ",".join(f"{s:g}" for s in placement.tensor_split)]
    argv += [
        "--temp", "1.0", "--top-p", "1.0",            # OpenAI's recommended sampling for gpt-oss
        "--chat-template-kwargs", json.dumps({"reasoning_effort": settings.reasoning_effort}),
        "--host", settings.host, "--port", str(port),
    ]
    return {"argv": argv, "env": {}, "model_ref": placement.artifact.ref, "base_url": endpoint(settings.host, port)}
