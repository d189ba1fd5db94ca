"""vLLM: the `vllm serve` command for a placement (VR)."""
from __future__ import annotations

from backends.base import LaunchSettings, endpoint
from planner.placement import Placement

DEFAULT_PORT = 8000


def build_launch(placement: Placement, settings: LaunchSettings) -> dict:
    port = settings.port or DEFAULT_PORT
    argv = [
        "vllm", "serve", placement.artifact.ref,
        "--host", settings.host, "--port", str(port),   # vLLM binds 0.0.0.0 unless told
        "--tensor-parallel-size", str(placement.tensor_parallel_size),
        "--gpu-memory-utilization", f"{placement.gpu_memory_utilization:.2f}",
        "--max-model-len", str(placement.context_length),
        "--max-num-batched-tokens", str(placement.max_num_batched_tokens),
        "--tool-call-parser", "openai", "--enable-auto-tool-choice",
    ]
    env = {}
    major = int((placement.compute_capability or "0").split(".")[0])
    if major >= 9:
        argv.append("--async-scheduling")
    elif major == 8:
        env["VLLM_ATTENTION_BACKEND"] = "TRITON_ATTN"    # Ampere: Triton attention + Marlin MXFP4 (VR)
    return {"argv": argv, "env": env, "model_ref": placement.artifact.ref, "base_url": endpoint(settings.host, port)}
