"""vLLM: the `vllm serve` command for a placement, and whether this machine can run it (VR)."""
from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from gptoss_deploy.backends.addresses import endpoint
from gptoss_deploy.backends.base import (CONTAINER_PORT, INTEL_DEVICES_NEED_ROOT, ROCM_DEVICES_NEED_ROOT,
                                         ContainerCommand, ContainerImage, LocalBackend, ServerLaunch, health_probe,
                                         ready_deadline_s, relaunched)
from gptoss_deploy.backends.flags import (Several, bounded, checked_env, configured_program, parse_flags, port_number,
                                          word)
from gptoss_deploy.planner.backend import LocalLaunch, MachineClass
from gptoss_deploy.planner.catalog import MAX_CONTEXT, VARIANTS, Artifact
from gptoss_deploy.planner.devices import UNSUPPORTED, vllm_serves_on_cpu, vllm_support
from gptoss_deploy.planner.errors import UsageError
from gptoss_deploy.planner.placement import WHOLE_MODEL
from gptoss_deploy.planner.throughput import AGGREGATE_STREAMS, predict_aggregate
from gptoss_deploy.planner.units import GIB, tokens_per_s

if TYPE_CHECKING:
    from gptoss_deploy.backends.engine_report import EngineReport

DEFAULT_PORT = 8000
VLLM_RELEASE = "0.33.0"           # the release whose parser checks our flags (tests/upstream/run.sh)
READY_BASE_S = 300.0              # vLLM compiles kernels and captures CUDA graphs before it serves
NOT_INSTALLED = ("vLLM is not installed: `pip install vllm` on Linux with a supported GPU (docs.vllm.ai; Intel GPUs "
                 "and Xeon 6: its XPU and CPU builds), or set GPTOSS_VLLM to its executable; or choose --backend "
                 "llamacpp")
# Resident size: vllm#33155 measured 64.38 GiB for the 120b (60.8 GiB on disk); the 20b scaled by the same ratio.
_LOAD_RATIO = 64.38 / 60.8


# What each worker logs once it has profiled its GPU (vLLM 0.33: gpu_model_runner.py, gpu_worker.py,
# kv_cache_utils.py), in GiB of 2**30 bytes: per GPU, so the plan's figure to compare is one GPU's.
MODEL_LOADED = re.compile(r"Model loading took (\d+(?:\.\d+)?) GiB")
KV_AVAILABLE = re.compile(r"Available KV cache memory: (-?\d+(?:\.\d+)?) GiB")
MAX_CONCURRENCY = re.compile(r"Maximum concurrency for [\d,]+ tokens per request: (\d+(?:\.\d+)?)x")


def _utilization(text: str) -> str:
    value = float(text)
    if not 0 < value <= 1:
        raise ValueError(text)
    return f"{value:.2f}"


# `vllm serve`'s flags as gptoss plans them (VR): the converter checks a saved plan's value; None: a switch.
GPUS = bounded(1, 64)
FLAGS = {"--served-model-name": Several(word), "--host": word, "--port": port_number, "--tensor-parallel-size": GPUS,
         "--data-parallel-size": GPUS, "--pipeline-parallel-size": GPUS,
         "--distributed-executor-backend": lambda v: {"ray": v}[v], "--gpu-memory-utilization": _utilization,
         "--kv-cache-memory-bytes": bounded(1, 1 << 50), "--max-model-len": bounded(1, MAX_CONTEXT),
         "--max-num-batched-tokens": bounded(1, 1 << 20),
         "--tool-call-parser": lambda v: {"openai": v}[v], "--enable-auto-tool-choice": None,
         "--async-scheduling": None}
OPTIONAL_FLAGS = ("--data-parallel-size", "--pipeline-parallel-size", "--distributed-executor-backend")
# How much memory vLLM takes: a share of each GPU's, or (the CPU build) the KV cache's size, which overrides the share.
MEMORY_FLAGS = ("--gpu-memory-utilization", "--kv-cache-memory-bytes")
# The recipe's per-family settings (Tuning.args), in the order they are rendered.
TUNING_FLAGS = {"--kv-cache-dtype": lambda v: {"fp8": v}[v],
                "--attention-backend": lambda v: {"ROCM_AITER_UNIFIED_ATTN": v}[v], "--block-size": bounded(1, 1024),
                "-cc.pass_config.fuse_rope_kvcache=True": None, "-cc.use_inductor_graph_partition=True": None}


@dataclass(frozen=True)
class Tuning:
    """What the recipe adds for one GPU family (VR, vllm-project/recipes 8959cf6, 2026-08-21). Ampere needs nothing
    now: vLLM picks Triton attention and Marlin MXFP4 itself, and ignores the VLLM_ATTENTION_BACKEND it once
    needed."""

    env: Mapping[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    model_120b: str | None = None              # a checkpoint the recipe serves instead of openai/gpt-oss-120b


# The recipe's VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8 is gone from vLLM 0.33's vllm.envs: vLLM picks FlashInfer's TRT-LLM
# MXFP4 MoE kernels on Blackwell by itself (BF16 activations; --moe-backend flashinfer_trtllm_afp8 would ask for the
# MXFP8 ones). Checked by tests/upstream/check_vllm.py.
BLACKWELL = Tuning(args=("--kv-cache-dtype", "fp8"))                      # GPT-OSS_Blackwell.yaml
_INSTINCT_ENV = {"VLLM_ROCM_USE_AITER": "1", "VLLM_ROCM_QUICK_REDUCE_QUANTIZATION": "INT4",
                 "HSA_NO_SCRATCH_RECLAIM": "1", "AMDGCN_USE_BUFFER_OPS": "0"}
_INSTINCT_ARGS = ("--attention-backend", "ROCM_AITER_UNIFIED_ATTN", "--block-size", "64",  # TUNING_FLAGS' order
                  "-cc.pass_config.fuse_rope_kvcache=True", "-cc.use_inductor_graph_partition=True")
TUNINGS = {
    "gfx942": Tuning(_INSTINCT_ENV, _INSTINCT_ARGS),                                          # MI300X, MI325X
    "gfx950": Tuning(_INSTINCT_ENV, _INSTINCT_ARGS, model_120b="amd/gpt-oss-120b-w-mxfp4-a-fp8"),  # MI355X
}
# Every variable a plan may set, with its one value: a saved plan that sets anything else is refused.
PLANNED_ENV = {name: (value,) for tuning in (BLACKWELL, *TUNINGS.values()) for name, value in tuning.env.items()}


def tuning_for(arch: str | None) -> Tuning:
    if arch and arch.split(".")[0] == "10":          # B200, B300
        return BLACKWELL
    return TUNINGS.get(arch or "", Tuning())


@dataclass(frozen=True)
class VllmServeCommand:
    """The `vllm serve` command, typed: built from a placement or parsed strictly from a saved plan, rendered in
    one order."""

    model: str
    served_model_names: tuple[str, ...]        # the short name first: clients and the benchmark use it
    host: str
    port: int
    tensor_parallel_size: int
    gpu_memory_utilization: str | None          # on GPUs
    max_model_len: int
    max_num_batched_tokens: int
    # vLLM schedules asynchronously by default since late 2025 (vllm#27614) and turns it off where it cannot (a
    # pipeline over Ray nodes: GPUStack#3836 failed with both): plans leave it to vLLM; a saved plan that asks keeps it.
    async_scheduling: bool
    data_parallel_size: int = 1
    pipeline_parallel_size: int = 1            # over nodes: vLLM joins them through Ray
    tuning_args: tuple[str, ...] = ()
    kv_cache_memory_bytes: int | None = None    # on the CPU
    program: tuple[str, ...] = ("vllm",)

    def argv(self) -> list[str]:
        return [*self.program, "serve", self.model, "--served-model-name", *self.served_model_names,
                "--host", self.host, "--port", str(self.port),    # vLLM binds 0.0.0.0 unless told
                "--tensor-parallel-size", str(self.tensor_parallel_size),
                *(["--data-parallel-size", str(self.data_parallel_size)] if self.data_parallel_size > 1 else []),
                *(["--pipeline-parallel-size", str(self.pipeline_parallel_size), "--distributed-executor-backend",
                   "ray"] if self.pipeline_parallel_size > 1 else []),
                *(["--gpu-memory-utilization", self.gpu_memory_utilization] if self.gpu_memory_utilization else
                  ["--kv-cache-memory-bytes", str(self.kv_cache_memory_bytes)]),
                "--max-model-len", str(self.max_model_len),
                "--max-num-batched-tokens", str(self.max_num_batched_tokens),
                "--tool-call-parser", "openai", "--enable-auto-tool-choice",
                *(["--async-scheduling"] if self.async_scheduling else []), *self.tuning_args]

    @classmethod
    def parse(cls, argv: list[str]) -> VllmServeCommand:
        if argv[:2] != ["vllm", "serve"] or len(argv) < 3:
            raise UsageError(f"the plan's launch.argv runs {' '.join(argv[:2])!r}, not vllm serve MODEL")
        flags = parse_flags(argv[3:], {**FLAGS, **TUNING_FLAGS})
        missing = [flag for flag, convert in FLAGS.items()
                   if convert is not None and flag not in flags and flag not in (*OPTIONAL_FLAGS, *MEMORY_FLAGS)]
        memory = [flag for flag in MEMORY_FLAGS if flag in flags]
        if len(memory) > 1:
            raise UsageError(f"the plan's launch.argv sets both {' and '.join(memory)}: one of them sizes vLLM's memory")
        if not memory:
            missing.append(" or ".join(MEMORY_FLAGS))
        if missing:
            raise UsageError(f"the plan's launch.argv lacks {', '.join(missing)}")
        tuning = [arg for flag in TUNING_FLAGS if flag in flags
                  for arg in ((flag,) if flags[flag] is True else (flag, str(flags[flag])))]
        if argv[2].startswith("-") or not argv[2].strip() or not argv[2].isprintable():
            raise UsageError(f"the plan's launch.argv serves {argv[2][:80]!r}, not a model")
        return cls(model=argv[2], served_model_names=flags["--served-model-name"], host=flags["--host"],
                   port=flags["--port"], tensor_parallel_size=flags["--tensor-parallel-size"],
                   data_parallel_size=flags.get("--data-parallel-size", 1),
                   pipeline_parallel_size=flags.get("--pipeline-parallel-size", 1),
                   gpu_memory_utilization=flags.get("--gpu-memory-utilization"),
                   kv_cache_memory_bytes=flags.get("--kv-cache-memory-bytes"), max_model_len=flags["--max-model-len"],
                   max_num_batched_tokens=flags["--max-num-batched-tokens"],
                   async_scheduling="--async-scheduling" in flags, tuning_args=tuple(tuning))


# The fallback ladder's rung for vLLM: vLLM refuses to start when utilization x total exceeds what is free, and
# another process may have taken memory since the plan was made. Below the floor, the weights of 120b on an 80 GB
# card would leave no KV cache.
UTILIZATION_STEP, MIN_UTILIZATION = 0.05, 0.8


class Vllm(LocalBackend):
    name = "vllm"
    title = "vLLM"
    offload = WHOLE_MODEL
    auto_rank = {MachineClass.DATACENTER: 0, MachineClass.SERVER: 2}    # desktops: only when asked for
    why_chosen = "datacenter GPUs serve best through vLLM (continuous batching, CUDA graphs)"
    artifacts = {      # OpenAI's repositories; gpt-oss-safeguard's (`vllm serve openai/gpt-oss-safeguard-120b`, SGG)
        f"{prefix}-{size}": Artifact(f"openai/{prefix}-{size}", disk, loaded)      # the same checkpoint format
        for prefix in VARIANTS.values()
        for size, disk, loaded in (("20b", int(12.8 * GIB), int(12.8 * GIB * _LOAD_RATIO)),
                                   ("120b", int(60.8 * GIB), int(64.38 * GIB)))}

    program = "vllm (on PATH or GPTOSS_VLLM)"
    # vLLM's own images of the release whose parser checks the plans' flags (tests/upstream, docs/sources.md). The
    # CUDA image ships a `vllm` user, UID 2000, whose HOME is writable (vLLM PR 40275, 2026-04; its
    # vllm-nonroot-entrypoint.sh); another UID has no passwd entry, and torch's compile cache fails at import.
    container_images = {
        "nvidia": ContainerImage(f"vllm/vllm-openai:v{VLLM_RELEASE}", 2000,
                                 "2000 is the vllm user vLLM's image ships (its passwd entry and writable HOME): a UID "
                                 "without a passwd entry fails at torch's import"),
        "amd": ContainerImage(f"vllm/vllm-openai-rocm:v{VLLM_RELEASE}", None, ROCM_DEVICES_NEED_ROOT),
        # the XPU build the recipe runs on Arc Pro B60/B70 (VR); vLLM's release pipeline tags it v<release>
        "intel": ContainerImage(f"vllm/vllm-openai-xpu:v{VLLM_RELEASE}", None, INTEL_DEVICES_NEED_ROOT),
        # the CPU build the recipe runs on Xeon 6 (VR); its Dockerfile.cpu sets no user
        None: ContainerImage(f"vllm/vllm-openai-cpu:v{VLLM_RELEASE}", None,
                             "vLLM's CPU image (docker/Dockerfile.cpu) sets no user: its venv and caches are root's"),
    }
    key_env = "VLLM_API_KEY"
    container_writes = "vLLM compiles kernels at start into caches under its HOME (torch.compile, Triton, FlashInfer)"
    renders = {"context_length": ("--max-model-len",), "tensor_parallel_size": ("--tensor-parallel-size",),
               "data_parallel_size": ("--data-parallel-size",), "pipeline_parallel_size": ("--pipeline-parallel-size",),
               "gpu_memory_utilization": ("--gpu-memory-utilization",),
               "max_num_batched_tokens": ("--max-num-batched-tokens",)}

    def program_missing(self) -> str | None:
        return None if _program() else NOT_INSTALLED

    def unsupported(self, model, hw) -> str | None:
        if not hw.gpus and not vllm_serves_on_cpu(hw.cpu.model):
            return (f"vLLM's gpt-oss recipe serves without a GPU only on Intel Xeon 6 CPUs (its CPU build); this "
                    f"machine has {hw.cpu.model} and no GPU")
        xpus = [g for g in hw.gpus if g.vendor == "intel" and vllm_support(g)[0] != UNSUPPORTED]
        where = "Intel GPUs (Arc Pro B60/B70)" if xpus else "Xeon 6 CPUs" if not hw.gpus else None
        if where and model.size != "20b":
            return f"vLLM's gpt-oss recipe verifies only gpt-oss-20b on {where}, not {model.name}"
        return super().unsupported(model, hw)

    def placement_reasons(self, placement, hw) -> list[str]:
        """Why this many GPUs split the model (tensor parallel) and why this many copies of it (data parallel)."""
        tp, copies = placement.tensor_parallel_size, placement.data_parallel_size
        if not hw.gpus:
            return [f"CPU: vLLM's CPU build holds the whole model and its KV cache in RAM (--kv-cache-memory-bytes "
                    f"{_kv_cache_bytes(placement)}: what a request of the planned context needs, rather than the "
                    "recipe's --gpu-memory-utilization 0.8, which on the CPU reserves that share of a NUMA node's "
                    "memory, the host's even inside a container; --max-num-batched-tokens "
                    f"{placement.max_num_batched_tokens}, the recipe's for Xeon 6)"]
        memory = (f"--gpu-memory-utilization {placement.gpu_memory_utilization:.2f}, "
                  f"--max-num-batched-tokens {placement.max_num_batched_tokens}")
        name = hw.gpus[0].name
        if placement.pipeline_parallel_size > 1:
            return [f"nodes: --pipeline-parallel-size {placement.pipeline_parallel_size}: one node cannot hold the "
                    f"model and its KV cache, so each of {placement.pipeline_parallel_size} nodes holds a stage of its "
                    f"layers, split over its {tp} {name}(s) by --tensor-parallel-size {tp} ({memory}); vLLM joins the "
                    "nodes with Ray, and the prediction leaves out the network between them"]
        if tp == 1:
            split = f"GPUs: one {name} holds the whole model and its KV cache ({memory})"
        else:
            split = (f"GPUs: --tensor-parallel-size {tp}: one {name} cannot hold the model and the KV cache, so {tp} "
                     f"split each layer ({memory})")
        if copies > 1:
            return [f"{split}; --data-parallel-size {copies}: the other GPUs serve copies, so streams run side by "
                    f"side (predicted {tokens_per_s(predict_aggregate(placement, hw))} over {AGGREGATE_STREAMS} "
                    "streams) instead of waiting on all-reduces"]
        spare = len(hw.gpus) - tp
        return [f"{split}; {spare} GPU(s) cannot hold another copy and stay idle" if spare > 0 else split]

    def build_launch(self, placement, settings) -> LocalLaunch:
        arch = placement.compute_capability or ""
        tuning = tuning_for(arch)
        substitute = tuning.model_120b and placement.model.name == "gpt-oss-120b"    # a checkpoint of gpt-oss's only
        model = tuning.model_120b if substitute else placement.artifact.ref
        on_gpus = placement.gpu_memory_utilization is not None        # else the CPU build (planner.placement)
        command = VllmServeCommand(
            model=model, served_model_names=(placement.model.name, placement.artifact.ref), host=settings.host,
            port=settings.port or DEFAULT_PORT, tensor_parallel_size=placement.tensor_parallel_size,
            data_parallel_size=placement.data_parallel_size, pipeline_parallel_size=placement.pipeline_parallel_size,
            gpu_memory_utilization=f"{placement.gpu_memory_utilization:.2f}" if on_gpus else None,
            kv_cache_memory_bytes=None if on_gpus else _kv_cache_bytes(placement),
            max_model_len=placement.context_length,
            max_num_batched_tokens=placement.max_num_batched_tokens, async_scheduling=False,
            tuning_args=tuning.args)
        return LocalLaunch(command.argv(), dict(tuning.env), model, endpoint(command.host, command.port),
                           served_model=placement.model.name)

    def server_launch(self, *, plan, options, hardware, gguf) -> ServerLaunch:
        launch = plan.launch
        planned = VllmServeCommand.parse(launch.argv)
        program = _program()
        command = replace(planned, host=options.host or planned.host, port=options.port or planned.port,
                          program=(program or "vllm",))
        weights = plan.memory.breakdown.weights
        return ServerLaunch(argv=command.argv(), env=checked_env(launch.env, PLANNED_ENV), host=command.host,
                            port=command.port, served_model=command.served_model_names[0], protocol="openai",
                            ready_deadline_s=ready_deadline_s(options, READY_BASE_S, weights),
                            unavailable=_unavailable(plan, hardware, program), command=command)

    def container_command(self, *, plan, key_file=None) -> ContainerCommand:     # vLLM reads no key file
        command = replace(VllmServeCommand.parse(plan.launch.argv), host="0.0.0.0", port=CONTAINER_PORT)
        return ContainerCommand(["vllm", "serve"], command.argv()[2:], checked_env(plan.launch.env, PLANNED_ENV),
                                health=health_probe(CONTAINER_PORT))

    def command_here(self, *, plan, hardware) -> list[str]:
        return replace(VllmServeCommand.parse(plan.launch.argv), program=(_program() or "vllm",)).argv()

    def use_api_key(self, *, launch, key) -> None:
        launch.env["VLLM_API_KEY"] = key      # the environment, not --api-key: argv shows in `ps`

    def effort_fields(self, effort: str) -> dict:
        return {"reasoning_effort": effort}

    def reported_memory(self, log_lines: list[str]) -> EngineReport | None:
        """Each worker's weights and KV cache as it logged them: the GPU that holds the least KV cache binds."""
        from gptoss_deploy.backends.engine_report import EngineReport, Reported, plain    # read at `up` only

        lines = plain(log_lines)
        loaded = [float(m[1]) for m in filter(None, map(MODEL_LOADED.search, lines))]
        kv = [float(m[1]) for m in filter(None, map(KV_AVAILABLE.search, lines))]
        concurrency = [float(m[1]) for m in filter(None, map(MAX_CONCURRENCY.search, lines))]
        figures = ([Reported("each GPU", "weights", round(max(loaded) * GIB))] if loaded else []) + \
                  ([Reported("each GPU", "kv_cache", max(0, round(min(kv) * GIB)))] if kv else [])
        if not figures:
            return None
        return EngineReport("vLLM's workers' log", figures, min(concurrency) if concurrency else None,
                            kv_takes_the_room=True)

    def leaner(self, plan):
        command = VllmServeCommand.parse(plan.launch.argv)
        if command.gpu_memory_utilization is None:        # the CPU build: its KV cache is the planned context's
            return None
        lower = round(float(command.gpu_memory_utilization) - UTILIZATION_STEP, 2)
        if lower < MIN_UTILIZATION:
            return None
        return (relaunched(plan, replace(command, gpu_memory_utilization=f"{lower:.2f}").argv()),
                f"--gpu-memory-utilization {lower:.2f} (more of the GPU left to other processes)")


def _kv_cache_bytes(placement) -> int:
    return sum(device.kv_cache_bytes for device in placement.devices)


def _program() -> str | None:
    return configured_program("GPTOSS_VLLM") or shutil.which("vllm")


def _unavailable(plan, hardware, program: str | None) -> str | None:
    if plan.offload.pipeline_parallel_size > 1:
        return (f"this plan spans {plan.offload.pipeline_parallel_size} nodes: run it on them with gptoss export "
                "--format kubernetes (a LeaderWorkerSet) or --format skypilot")
    if program is None:
        return NOT_INSTALLED
    if not plan.memory.gpu_bytes:            # the CPU build
        return None if vllm_serves_on_cpu(hardware.cpu.model) else (
            f"this plan runs vLLM's CPU build, which its gpt-oss recipe verifies on Intel Xeon 6; this machine has "
            f"{hardware.cpu.model}: choose --backend llamacpp")
    gpus = hardware.gpus
    supported = [g for g in gpus if vllm_support(g)[0] != UNSUPPORTED]
    needed = plan.offload.tensor_parallel_size * plan.offload.data_parallel_size
    if len(supported) < needed:
        why = "; ".join(vllm_support(g)[1] for g in gpus if vllm_support(g)[0] == UNSUPPORTED) or "no GPU was found"
        return (f"vLLM needs {needed} supported GPU(s) (NVIDIA compute capability 8.0+, AMD MI300+, Intel Arc Pro "
                f"B60/B70) and this machine has {len(supported)}: {why}; choose --backend llamacpp")
    return None


VLLM = Vllm()
