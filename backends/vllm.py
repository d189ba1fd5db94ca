"""vLLM: the `vllm serve` command for a placement, and whether this machine can run it (VR)."""
from __future__ import annotations

import os
import shutil

from dataclasses import dataclass, replace

from gptoss_deploy.backends.base import (LocalBackend, ServerLaunch, checked_env, endpoint, parse_flags, port_number,
                                        ready_deadline_s)
from gptoss_deploy.planner.backend import MachineClass
from gptoss_deploy.planner.catalog import Artifact
from gptoss_deploy.planner.devices import supports_vllm
from gptoss_deploy.planner.errors import UsageError
from gptoss_deploy.planner.placement import WHOLE_MODEL
from gptoss_deploy.planner.units import GIB

DEFAULT_PORT = 8000
READY_BASE_S = 300.0              # vLLM compiles kernels and captures CUDA graphs before it serves
NOT_INSTALLED = ("vLLM is not installed: `pip install vllm` on Linux with a supported GPU (docs.vllm.ai), "
                 "or set GPTOSS_VLLM to its executable; or choose --backend llamacpp")
# Resident size: vllm#33155 measured 64.38 GiB for the 120b (60.8 GiB on disk); the 20b scaled by the same ratio.
_LOAD_RATIO = 64.38 / 60.8


def _utilization(text: str) -> str:
    value = float(text)
    if not 0 < value <= 1:
        raise ValueError(text)
    return f"{value:.2f}"


# `vllm serve`'s flags as gptoss plans them (VR): the converter checks a saved plan's value; None: a switch.
FLAGS = {"--served-model-name": str, "--host": str, "--port": port_number, "--tensor-parallel-size": int,
         "--gpu-memory-utilization": _utilization,
         "--max-model-len": int, "--max-num-batched-tokens": int,
         "--tool-call-parser": lambda v: {"openai": v}[v], "--enable-auto-tool-choice": None,
         "--async-scheduling": None}
# Ampere runs gpt-oss with Triton attention and Marlin MXFP4 (VR): the one variable a plan may set.
PLANNED_ENV = {"VLLM_ATTENTION_BACKEND": ("TRITON_ATTN",)}


@dataclass(frozen=True)
class VllmServeCommand:
    """The `vllm serve` command, typed: built from a placement or parsed strictly from a saved plan, rendered in
    one order."""

    model: str
    served_model_name: str
    host: str
    port: int
    tensor_parallel_size: int
    gpu_memory_utilization: str
    max_model_len: int
    max_num_batched_tokens: int
    async_scheduling: bool
    program: tuple[str, ...] = ("vllm",)

    def argv(self) -> list[str]:
        return [*self.program, "serve", self.model, "--served-model-name", self.served_model_name,
                "--host", self.host, "--port", str(self.port),    # vLLM binds 0.0.0.0 unless told
                "--tensor-parallel-size", str(self.tensor_parallel_size),
                "--gpu-memory-utilization", self.gpu_memory_utilization, "--max-model-len", str(self.max_model_len),
                "--max-num-batched-tokens", str(self.max_num_batched_tokens),
                "--tool-call-parser", "openai", "--enable-auto-tool-choice",
                *(["--async-scheduling"] if self.async_scheduling else [])]

    @classmethod
    def parse(cls, argv: list[str]) -> VllmServeCommand:
        if argv[:2] != ["vllm", "serve"] or len(argv) < 3:
            raise UsageError(f"the plan's launch.argv runs {' '.join(argv[:2])!r}, not vllm serve MODEL")
        flags = parse_flags(argv[3:], FLAGS)
        missing = [flag for flag, convert in FLAGS.items() if convert is not None and flag not in flags]
        if missing:
            raise UsageError(f"the plan's launch.argv lacks {', '.join(missing)}")
        return cls(model=argv[2], served_model_name=flags["--served-model-name"], host=flags["--host"],
                   port=flags["--port"], tensor_parallel_size=flags["--tensor-parallel-size"],
                   gpu_memory_utilization=flags["--gpu-memory-utilization"], max_model_len=flags["--max-model-len"],
                   max_num_batched_tokens=flags["--max-num-batched-tokens"],
                   async_scheduling="--async-scheduling" in flags)


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
        major = int((placement.compute_capability or "0").split(".")[0])
        command = VllmServeCommand(
            model=placement.artifact.ref, served_model_name=placement.model.name, host=settings.host,
            port=settings.port or DEFAULT_PORT, tensor_parallel_size=placement.tensor_parallel_size,
            gpu_memory_utilization=f"{placement.gpu_memory_utilization:.2f}", max_model_len=placement.context_length,
            max_num_batched_tokens=placement.max_num_batched_tokens, async_scheduling=major >= 9)
        env = {"VLLM_ATTENTION_BACKEND": "TRITON_ATTN"} if major == 8 else {}
        return {"argv": command.argv(), "env": env, "model_ref": placement.artifact.ref,
                "served_model": placement.model.name, "base_url": endpoint(command.host, command.port)}

    def server_launch(self, *, plan, options, hardware, gguf) -> ServerLaunch:
        launch = plan.launch
        planned = VllmServeCommand.parse(launch.argv)
        program = _program()
        command = replace(planned, host=options.host or planned.host, port=options.port or planned.port,
                          program=(program or "vllm",))
        weights = plan.memory.breakdown.weights
        return ServerLaunch(argv=command.argv(), env=checked_env(launch.env, PLANNED_ENV), host=command.host,
                            port=command.port, served_model=command.served_model_name, protocol="openai",
                            ready_deadline_s=ready_deadline_s(options, READY_BASE_S, weights),
                            unavailable=_unavailable(plan, hardware, program), command=command)

    def use_api_key(self, *, launch, key) -> None:
        launch.env["VLLM_API_KEY"] = key      # the environment, not --api-key: argv shows in `ps`

    def effort_fields(self, effort: str) -> dict:
        return {"reasoning_effort": effort}


def _program() -> str | None:
    return os.environ.get("GPTOSS_VLLM") or shutil.which("vllm")


def _unavailable(plan, hardware, program: str | None) -> str | None:
    if program is None:
        return NOT_INSTALLED
    gpus = hardware.gpus
    supported = [g for g in gpus if supports_vllm(g)[0]]
    needed = plan.offload.tensor_parallel_size
    if len(supported) < needed:
        why = "; ".join(supports_vllm(g)[1] for g in gpus if not supports_vllm(g)[0]) or "no GPU was found"
        return (f"vLLM needs {needed} supported GPU(s) (NVIDIA compute capability 8.0+, AMD MI300+) and this "
                f"machine has {len(supported)}: {why}; choose --backend llamacpp")
    return None


VLLM = Vllm()
