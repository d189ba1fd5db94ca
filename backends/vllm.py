"""vLLM: the `vllm serve` command for a placement, and whether this machine can run it (VR)."""
from __future__ import annotations

import os
import shutil

from gptoss_deploy.backends.base import LocalBackend, ServerLaunch, bound, endpoint, ready_deadline_s
from gptoss_deploy.planner.backend import MachineClass
from gptoss_deploy.planner.catalog import Artifact
from gptoss_deploy.planner.devices import supports_vllm
from gptoss_deploy.planner.placement import WHOLE_MODEL
from gptoss_deploy.planner.units import GIB

DEFAULT_PORT = 8000
READY_BASE_S = 300.0              # vLLM compiles kernels and captures CUDA graphs before it serves
NOT_INSTALLED = ("vLLM is not installed: `pip install vllm` on Linux with a supported GPU (docs.vllm.ai), "
                 "or set GPTOSS_VLLM to its executable; or choose --backend llamacpp")
# Resident size: vllm#33155 measured 64.38 GiB for the 120b (60.8 GiB on disk); the 20b scaled by the same ratio.
_LOAD_RATIO = 64.38 / 60.8


class Vllm(LocalBackend):
    name = "vllm"
    title = "vLLM"
    offload = WHOLE_MODEL
    auto_rank = {MachineClass.DATACENTER: 0}    # desktops: only when asked for
    why_chosen = "datacenter GPUs serve best through vLLM (continuous batching, CUDA graphs)"
    artifacts = {
        "20b": Artifact("openai/gpt-oss-20b", int(12.8 * GIB), int(12.8 * GIB * _LOAD_RATIO)),
        "120b": Artifact("openai/gpt-oss-120b", int(60.8 * GIB), int(64.38 * GIB)),
    }

    def unavailable(self) -> str | None:
        return None if _program() else NOT_INSTALLED

    def build_launch(self, placement, settings) -> dict:
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

    def server_launch(self, *, plan, options, hardware, gguf) -> ServerLaunch:
        launch = plan["launch"]
        argv, host, port = bound(list(launch["argv"]), options, DEFAULT_PORT)
        program = _program()
        weights = plan["memory"]["breakdown"]["weights"]
        return ServerLaunch(argv=[program or argv[0], *argv[1:]], env=dict(launch.get("env", {})), host=host,
                            port=port, served_model=launch.get("served_model", plan["model"]), protocol="openai",
                            ready_deadline_s=ready_deadline_s(options, READY_BASE_S, weights),
                            unavailable=_unavailable(plan, hardware, program))

    def use_api_key(self, *, launch, key) -> None:
        launch.env["VLLM_API_KEY"] = key      # the environment, not --api-key: argv shows in `ps`

    def effort_fields(self, effort: str) -> dict:
        return {"reasoning_effort": effort}


def _program() -> str | None:
    return os.environ.get("GPTOSS_VLLM") or shutil.which("vllm")


def _unavailable(plan: dict, hardware, program: str | None) -> str | None:
    if program is None:
        return NOT_INSTALLED
    gpus = hardware.gpus
    supported = [g for g in gpus if supports_vllm(g)[0]]
    needed = plan["offload"]["tensor_parallel_size"]
    if len(supported) < needed:
        why = "; ".join(supports_vllm(g)[1] for g in gpus if not supports_vllm(g)[0]) or "no GPU was found"
        return (f"vLLM needs {needed} supported GPU(s) (NVIDIA compute capability 8.0+, AMD MI300+) and this "
                f"machine has {len(supported)}: {why}; choose --backend llamacpp")
    return None


VLLM = Vllm()
