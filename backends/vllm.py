"""vLLM: the `vllm serve` command for a placement (VR)."""
from __future__ import annotations

import os
import shutil

from gptoss_deploy.backends.base import (LaunchSettings, ServerLaunch, UpOptions, bound, endpoint, local_hardware,
                           ready_deadline_s)
from gptoss_deploy.planner.devices import supports_vllm
from gptoss_deploy.planner.placement import Placement

DEFAULT_PORT = 8000


def build_launch(placement: Placement, settings: LaunchSettings) -> dict:
    port = settings.port or DEFAULT_PORT
    argv = [
        "vllm", "serve", placement.artifact.ref,
        "--served-model-name", placement.model.name,
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
    return {"argv": argv, "env": env, "model_ref": placement.artifact.ref, "served_model": placement.model.name,
            "base_url": endpoint(settings.host, port)}


# --- running it -------------------------------------------------------------------------------------------

READY_BASE_S = 300.0              # vLLM compiles kernels and captures CUDA graphs before it serves
NOT_INSTALLED = ("vLLM is not installed: `pip install vllm` on Linux with a supported GPU (docs.vllm.ai), "
                 "or set GPTOSS_VLLM to its executable; or choose --backend llamacpp")


def _unavailable(doc: dict, options: UpOptions, program: str | None) -> str | None:
    if program is None:
        return NOT_INSTALLED
    gpus = local_hardware(options).gpus
    supported = [g for g in gpus if supports_vllm(g)[0]]
    needed = doc["offload"]["tensor_parallel_size"]
    if len(supported) < needed:
        why = "; ".join(supports_vllm(g)[1] for g in gpus if not supports_vllm(g)[0]) or "no GPU was found"
        return (f"vLLM needs {needed} supported GPU(s) (NVIDIA compute capability 8.0+, AMD MI300+) and this "
                f"machine has {len(supported)}: {why}; choose --backend llamacpp")
    return None


def server_launch(doc: dict, options: UpOptions, gguf) -> ServerLaunch:
    launch = doc["launch"]
    argv, host, port = bound(list(launch["argv"]), options, DEFAULT_PORT)
    program = os.environ.get("GPTOSS_VLLM") or shutil.which("vllm")
    weights = doc["memory"]["breakdown"]["weights"]
    return ServerLaunch(argv=[program or argv[0], *argv[1:]], env=dict(launch.get("env", {})), host=host, port=port,
                        served_model=launch.get("served_model", doc["model"]), protocol="openai",
                        ready_deadline_s=ready_deadline_s(options, READY_BASE_S, weights),
                        unavailable=_unavailable(doc, options, program))


def prepare(launch: ServerLaunch, doc: dict, progress) -> None:
    """Nothing to fetch first: vLLM downloads the checkpoint through huggingface_hub itself (progress in its log)."""


def use_api_key(launch: ServerLaunch, key: str) -> None:
    launch.env["VLLM_API_KEY"] = key      # the environment, not --api-key: argv shows in `ps`


def after_ready(launch: ServerLaunch, doc: dict, progress) -> None:
    """Nothing to do: vLLM serves the model it loaded."""
