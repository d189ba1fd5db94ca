"""llama.cpp (llama-server): the command for a placement, the model file, and how to run it (G15396, LCS)."""
from __future__ import annotations

import functools
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from gptoss_deploy.backends.addresses import endpoint
from gptoss_deploy.backends.base import (CONTAINER_PORT, INTEL_DEVICES_NEED_ROOT, NONROOT_UID, ROCM_DEVICES_NEED_ROOT,
                                         ContainerCommand, ContainerImage, LocalBackend, ServerLaunch,
                                         ready_deadline_s, relaunched)
from gptoss_deploy.backends.flags import bounded, checked_env, configured_program, parse_flags, port_number, word
from gptoss_deploy.backends.hub import cached_path, download_plan, fetch
from gptoss_deploy.backends.llama_threads import THREADS_VARIABLE, engine_threads
from gptoss_deploy.backends.process_groups import python_module
from gptoss_deploy.planner.backend import LocalLaunch, MachineClass
from gptoss_deploy.planner.catalog import MAX_CONTEXT, Artifact, model_named
from gptoss_deploy.planner.errors import UsageError
from gptoss_deploy.planner.placement import EXPERTS
from gptoss_deploy.planner.throughput import AGGREGATE_STREAMS, predict_aggregate
from gptoss_deploy.planner.units import GIB, MIB, gib, tokens_per_s
from gptoss_deploy.planner.vendors import GPU_VENDORS, NVIDIA

if TYPE_CHECKING:
    from gptoss_deploy.backends.engine_report import EngineReport
    from gptoss_deploy.planner.gguf_info import GgufInfo

DEFAULT_PORT = 8080
READY_BASE_S = 60.0
NOT_INSTALLED = ("llama.cpp is not installed: put llama-server on PATH (or set GPTOSS_LLAMA_SERVER), "
                 "or `pip install 'gptoss-deploy[llamacpp]'` for the embedded engine")


def executable() -> list[str] | None:
    """llama-server from GPTOSS_LLAMA_SERVER or PATH, else the engine in the xllamacpp wheel; None if neither."""
    configured = configured_program("GPTOSS_LLAMA_SERVER") or shutil.which("llama-server")
    if configured:
        return [configured]
    if importlib.util.find_spec("xllamacpp"):
        return python_module(f"{__package__}.llamacpp_embedded")
    return None


def _json_object(text: str) -> str:
    if not isinstance(json.loads(text), dict):
        raise ValueError(text)
    return text


# llama-server prints its buffers per device (model, KV cache, compute) only from this log level since it quieted
# its log (llama.cpp PR 23021, build b9181): the level it logged at before, and Ollama runs it at. Older builds print
# them by default, and at 4 print every debug line, prompts included: they run without the flag.
BUFFER_REPORT_VERBOSITY = 4
QUIET_LOG_BUILD = 9181
LLAMACPP_BUILD = 11549    # the build our engine embeds, and the containers run
LLAMACPP_IMAGES = "ghcr.io/ggml-org/llama.cpp"
BUILD_LINE = re.compile(r"version: (\d+)")
# One line per buffer, e.g. "load_tensors:   CUDA0 model buffer size = 11536.18 MiB",
# "llama_kv_cache:  CUDA0 KV buffer size = 1536.00 MiB", "sched_reserve:  CUDA_Host compute buffer size = 47.51 MiB"
BUFFER_LINE = re.compile(r"\s(?P<device>\S+)\s+(?P<kind>model|KV|compute|output) buffer size\s*=\s*"
                         r"(?P<mib>\d+(?:\.\d+)?) MiB")
BUFFER_PART = {"model": "weights", "KV": "kv_cache", "compute": "compute", "output": "compute"}

ZERO_MEANS_OFF = ("--cache-ram", "--ctx-checkpoints")   # 0 is a setting (none kept), not a flag to leave out
CPU_MOE_STEPS = 4        # the fallback ladder moves the experts of a quarter of the layers to RAM at each step

# llama-server's flags as gptoss plans them (LCS): the converter checks a saved plan's value; None: a switch.
BATCH = bounded(1, 1 << 16)
FLAGS = {"-hf": word, "--model": word, "--alias": word, "--ctx-size": bounded(1, MAX_CONTEXT), "--jinja": None,
         "-ub": BATCH, "-b": BATCH, "--n-gpu-layers": bounded(0, 999),
         "--flash-attn": lambda v: {"on": v, "off": v, "auto": v}[v], "--n-cpu-moe": bounded(0, 999),
         "--tensor-split": lambda v: ",".join(f"{float(x):g}" for x in v.split(",")),
         "--temp": lambda v: str(float(v)), "--top-p": lambda v: str(float(v)),
         "--chat-template-kwargs": _json_object, "--host": word, "--port": port_number, "--api-key-file": word,
         "--cache-ram": bounded(0, 1 << 20), "--ctx-checkpoints": bounded(0, 1024),
         "--fit": lambda v: {"on": v, "off": v}[v], "--log-verbosity": bounded(0, 5)}


@dataclass(frozen=True)
class LlamaServerCommand:
    """The llama-server command, typed: built from a placement or parsed strictly from a saved plan, and rendered
    in one order, so what runs differs from the plan only in the fields `up` sets (model file, address, key)."""

    model: str                      # a hub repo until the file is local
    from_hub: bool
    alias: str
    ctx_size: int
    ubatch: int
    batch: int
    gpu_layers: int
    flash_attn: str | None
    n_cpu_moe: int | None
    tensor_split: str | None
    chat_template_kwargs: str
    host: str
    port: int
    temp: str = "1.0"               # OpenAI's recommended sampling for gpt-oss
    top_p: str = "1.0"
    api_key_file: str | None = None
    # RAM beyond the model, as the plan sized it (planner.placement.with_host_caches); None: the engine's defaults
    cache_ram_mib: int | None = None
    ctx_checkpoints: int | None = None
    fit: str | None = None          # "off": llama-server runs the plan's placement, not its own --fit search
    log_verbosity: int | None = None
    program: tuple[str, ...] = ("llama-server",)
    copies_on: tuple[str, ...] = ()         # devices for one copy each (llamacpp_replicas), as VISIBLE_ENV names them
    visible_env: str = NVIDIA.visible_devices

    def argv(self) -> list[str]:
        copies = [*python_module(f"{__package__}.llamacpp_replicas"), "--visible-env", self.visible_env,
                  "--devices", ",".join(self.copies_on), "--"] if self.copies_on else []
        argv = [*copies, *self.program, *(("-hf", self.model) if self.from_hub else ("--model", self.model)),
                "--alias", self.alias,             # the model id clients ask for, whatever the file is called
                "--ctx-size", str(self.ctx_size),
                "--jinja",                         # gpt-oss needs its Harmony chat template
                "-ub", str(self.ubatch), "-b", str(self.batch), "--n-gpu-layers", str(self.gpu_layers)]
        for flag, value in (("--flash-attn", self.flash_attn), ("--n-cpu-moe", self.n_cpu_moe),
                            ("--tensor-split", self.tensor_split), ("--cache-ram", self.cache_ram_mib),
                            ("--ctx-checkpoints", self.ctx_checkpoints), ("--fit", self.fit),
                            ("--log-verbosity", self.log_verbosity)):
            argv += [flag, str(value)] if value is not None and (value or flag in ZERO_MEANS_OFF) else []
        argv += ["--temp", self.temp, "--top-p", self.top_p, "--chat-template-kwargs", self.chat_template_kwargs,
                 "--host", self.host, "--port", str(self.port)]
        return argv + (["--api-key-file", self.api_key_file] if self.api_key_file else [])

    @classmethod
    def parse(cls, argv: list[str]) -> LlamaServerCommand:
        if argv[:1] != ["llama-server"]:
            raise UsageError(f"the plan's launch.argv runs {argv[:1]}, not llama-server")
        flags = parse_flags(argv[1:], FLAGS)
        if ("-hf" in flags) == ("--model" in flags):
            raise UsageError("the plan's launch.argv needs one model: -hf REPO or --model FILE")
        missing = [flag for flag in ("--alias", "--ctx-size") if flag not in flags]
        if missing:
            raise UsageError(f"the plan's launch.argv lacks {', '.join(missing)}")
        return cls(model=flags["-hf"] if "-hf" in flags else flags["--model"], from_hub="-hf" in flags,
                   alias=flags["--alias"], ctx_size=flags["--ctx-size"],
                   ubatch=flags.get("-ub", 512), batch=flags.get("-b", 2048),
                   gpu_layers=flags.get("--n-gpu-layers", 0), flash_attn=flags.get("--flash-attn"),
                   n_cpu_moe=flags.get("--n-cpu-moe"), tensor_split=flags.get("--tensor-split"),
                   temp=flags.get("--temp", "1.0"), top_p=flags.get("--top-p", "1.0"),
                   chat_template_kwargs=flags.get("--chat-template-kwargs", "{}"),
                   host=flags.get("--host", "127.0.0.1"), port=flags.get("--port", DEFAULT_PORT),
                   api_key_file=flags.get("--api-key-file"), cache_ram_mib=flags.get("--cache-ram"),
                   ctx_checkpoints=flags.get("--ctx-checkpoints"), fit=flags.get("--fit"),
                   log_verbosity=flags.get("--log-verbosity"))


class LlamaCpp(LocalBackend):
    name = "llamacpp"
    title = "llama.cpp (llama-server)"
    offload = EXPERTS
    auto_rank = {MachineClass.DESKTOP: 0, MachineClass.SERVER: 0, MachineClass.DATACENTER: 1}
    why_chosen = ("keeps attention on the GPU and can move MoE experts to RAM per layer (--n-cpu-moe), "
                  "the best fit for desktops and laptops")
    serves_gguf_files = True
    host_caches = True
    # llama.cpp's packages of the build the engine we ship embeds (xllamacpp 2026.10.11549 is llama.cpp b11549: its
    # version ends in the build number, scripts/generate-release-version.sh). Their Dockerfiles set no USER, and
    # llama-server needs no root: it writes only its cache (LLAMA_CACHE, the exports' volume) and logs to stdout.
    container_images = {
        "nvidia": ContainerImage(f"{LLAMACPP_IMAGES}:server-cuda-b{LLAMACPP_BUILD}", NONROOT_UID, ""),
        "amd": ContainerImage(f"{LLAMACPP_IMAGES}:server-rocm-b{LLAMACPP_BUILD}", None, ROCM_DEVICES_NEED_ROOT),
        # the SYCL build (llama.cpp's .devops/intel.Dockerfile, docs/docker.md "Docker with SYCL")
        "intel": ContainerImage(f"{LLAMACPP_IMAGES}:server-intel-b{LLAMACPP_BUILD}", None, INTEL_DEVICES_NEED_ROOT),
        None: ContainerImage(f"{LLAMACPP_IMAGES}:server-b{LLAMACPP_BUILD}", NONROOT_UID, ""),
    }
    key_env = "LLAMA_API_KEY"
    renders = {"context_length": ("--ctx-size",), "ubatch": ("-ub",), "cpu_layers": ("--n-cpu-moe", "--n-gpu-layers"),
               "tensor_split": ("--tensor-split",), "data_parallel_size": ("--devices",),   # a server per copy, at up
               "prompt_cache_bytes": ("--cache-ram",), "context_checkpoints": ("--ctx-checkpoints",)}
    leaves_to_engine = {"gpu_layers": "--n-gpu-layers 999 puts every layer on the GPUs; --n-cpu-moe says which "
                                      "experts stay in RAM"}
    # ggml-org's MXFP4 GGUFs (G15396). ggml-org publishes none of gpt-oss-safeguard (SGG): `--gguf FILE` serves one.
    artifacts = {
        "gpt-oss-20b": Artifact("ggml-org/gpt-oss-20b-GGUF", int(11.27 * GIB), int(11.27 * GIB),
                                ("gpt-oss-20b-mxfp4.gguf",)),
        "gpt-oss-120b": Artifact("ggml-org/gpt-oss-120b-GGUF", int(59.02 * GIB), int(59.02 * GIB),
                                 tuple(f"gpt-oss-120b-mxfp4-0000{i}-of-00003.gguf" for i in (1, 2, 3))),
    }

    program = ("llama-server (on PATH or GPTOSS_LLAMA_SERVER; built for ROCm/HIP or Vulkan on AMD, SYCL or Vulkan on "
               "Intel), or the xllamacpp engine")

    def program_missing(self) -> str | None:
        return None if executable() else NOT_INSTALLED

    def build_launch(self, placement, settings) -> LocalLaunch:
        uses_gpu = any(d.device != "cpu" for d in placement.devices)
        command = LlamaServerCommand(
            model=placement.artifact.ref, from_hub=True, alias=placement.model.name,
            ctx_size=placement.context_length, ubatch=placement.ubatch, batch=max(placement.ubatch, 2048),
            gpu_layers=999 if uses_gpu else 0, flash_attn="on" if uses_gpu else None,
            n_cpu_moe=placement.cpu_layers if uses_gpu and placement.cpu_layers else None,
            tensor_split=",".join(f"{s:g}" for s in placement.tensor_split) or None,
            chat_template_kwargs=json.dumps({"reasoning_effort": settings.reasoning_effort}),
            host=settings.host, port=settings.port or DEFAULT_PORT,
            cache_ram_mib=placement.prompt_cache_bytes // MIB, ctx_checkpoints=placement.context_checkpoints,
            fit="off", log_verbosity=BUFFER_REPORT_VERBOSITY)
        return LocalLaunch(command.argv(), {}, placement.artifact.ref, endpoint(command.host, command.port),
                           model_files=placement.artifact.files, served_model=placement.model.name)

    def computes_on(self, hw):
        """HW with the cores llama-server is told to use (LLAMA_ARG_THREADS, one thread a core), where fewer: its
        CPU's share of decode and prefill is predicted for those."""
        threads = _fewer_threads(hw)
        if threads is None:
            return hw
        cores = {"physical_cores": threads, "logical_cores": min(threads, hw.cpu.logical_cores)}
        return hw.model_copy(update={"cpu": hw.cpu.model_copy(update=cores)})

    def placement_reasons(self, placement, hw) -> list[str]:
        reasons = (_threads_reason(hw), _offload_reason(placement, hw), _host_cache_reason(placement, hw))
        return [reason for reason in reasons if reason]

    def server_launch(self, *, plan, options, hardware, gguf: GgufInfo | None) -> ServerLaunch:
        """The llama-server command for PLAN, with the model as a local file (fetched by `prepare`)."""
        launch = plan.launch
        checked_env(launch.env, {})
        planned = LlamaServerCommand.parse(launch.argv)
        if not launch.model_files:
            raise UsageError("the plan's launch.model_files is empty: a llama.cpp plan names its GGUF files")
        if gguf is None and plan.model not in self.artifacts:
            raise UsageError(f"ggml-org publishes no GGUF of {plan.model}: this plan runs a file of it you have, "
                             "so pass it with --gguf FILE")
        command = replace(planned, host=options.host or planned.host, port=options.port or planned.port)
        warnings, plan_applies = [], True
        if gguf is not None:
            size, downloads = gguf.size_bytes, []
            command = replace(command, model=str(gguf.path), from_hub=False)
            if gguf.gpt_oss_size is None:
                warnings.append(_not_gpt_oss_warning(gguf))
                plan_applies = False
                command = replace(command, alias=gguf.served_name,
                                  ctx_size=min(command.ctx_size, gguf.context_length or command.ctx_size))
        else:
            size = _one_copy(plan)
            downloads = [download_plan(launch.model_ref, launch.model_files, size)]
            cached = cached_path(launch.model_ref, launch.model_files[0])
            command = replace(command, from_hub=False,
                              model=str(cached) if cached else f"<{launch.model_ref}/{launch.model_files[0]}>")
        program = executable()
        command = _verbosity_for_build(_here(command, plan, hardware, program), program)
        return ServerLaunch(argv=command.argv(), env={}, host=command.host, port=command.port,
                            served_model=command.alias, protocol="openai",
                            ready_deadline_s=ready_deadline_s(options, READY_BASE_S, size), downloads=downloads,
                            warnings=warnings, plan_applies=plan_applies,
                            unavailable=None if program else NOT_INSTALLED, command=command)

    def container_command(self, *, plan, key_file=None) -> ContainerCommand:
        command = replace(LlamaServerCommand.parse(plan.launch.argv), host="0.0.0.0", port=CONTAINER_PORT,
                          api_key_file=key_file)
        return ContainerCommand(["/app/llama-server"], command.argv()[1:], checked_env(plan.launch.env, {}),
                                health=["curl", "-f", f"http://localhost:{CONTAINER_PORT}/health"], key_file=key_file)

    def command_here(self, *, plan, hardware) -> list[str]:
        planned = LlamaServerCommand.parse(plan.launch.argv)
        cached = f"<{plan.launch.model_ref}/{(plan.launch.model_files or ['?'])[0]}>"
        return _here(replace(planned, from_hub=False, model=cached), plan, hardware, executable()).argv()

    def prepare(self, *, launch, plan, progress) -> None:
        """Fetch the model files that are not cached yet and point --model at them."""
        if not launch.downloads:
            return
        path = fetch(plan.launch.model_ref, plan.launch.model_files, _one_copy(plan), progress)
        launch.set_command(replace(launch.command, model=str(path)))

    def use_api_key(self, *, launch, key) -> None:
        launch.set_command(replace(launch.command, api_key_file=str(launch.api_key_file)))   # a path, not the key

    def effort_fields(self, effort: str) -> dict:
        return {"chat_template_kwargs": {"reasoning_effort": effort}}

    def reported_memory(self, log_lines: list[str]) -> EngineReport | None:
        """The buffers llama-server allocated, summed over the GPUs and the host (pinned *_Host buffers are RAM);
        copies of the model (one server per GPU) add up like the GPUs they run on."""
        from gptoss_deploy.backends.engine_report import EngineReport, Reported, plain    # read at `up` only

        totals: dict[tuple[str, str], float] = {}
        for match in filter(None, map(BUFFER_LINE.search, plain(log_lines))):
            device = match["device"]
            where = "host" if device.startswith("CPU") or device.endswith("_Host") else "GPUs"
            key = (where, BUFFER_PART[match["kind"]])
            totals[key] = totals.get(key, 0.0) + float(match["mib"]) * MIB
        if not totals:
            return None
        return EngineReport("llama-server's buffer report in its log", [Reported(w, p, round(b))
                                                                        for (w, p), b in totals.items()])

    def leaner(self, plan):
        command = LlamaServerCommand.parse(plan.launch.argv)
        layers = model_named(plan.model).layers
        if not command.gpu_layers or (command.n_cpu_moe or 0) >= layers:
            return None                       # all on the CPU already, or every layer's experts in RAM
        more = min(layers, (command.n_cpu_moe or 0) + math.ceil(layers / CPU_MOE_STEPS))
        return (relaunched(plan, replace(command, n_cpu_moe=more).argv(), n_cpu_moe=more),
                f"--n-cpu-moe {more} (the MoE experts of {more} of {layers} layers in RAM)")


def _here(command: LlamaServerCommand, plan, hardware, program: list[str] | None) -> LlamaServerCommand:
    """COMMAND as this installation runs it: PROGRAM (its llama-server or the embedded engine), one copy per GPU
    where the plan copies the model."""
    command = replace(command, program=tuple(program or command.program))
    if plan.offload.data_parallel_size > 1 and hardware is not None:
        command = replace(command, **_copies_on(plan, hardware))
    return command


def _verbosity_for_build(command: LlamaServerCommand, program: list[str] | None) -> LlamaServerCommand:
    """COMMAND without --log-verbosity where the llama-server that runs predates its quieter log (the embedded
    engine is of today's)."""
    if command.log_verbosity is None or not program or len(program) != 1:
        return command
    build = llama_server_build(program[0])
    return replace(command, log_verbosity=None) if build and build < QUIET_LOG_BUILD else command


@functools.cache       # one question a process: `up` reads the launch again on the fallback ladder's rungs
def llama_server_build(executable_path: str) -> int | None:
    """The build number `llama-server --version` prints ("version: 9181 (abc123)"); None when it says none."""
    try:
        done = subprocess.run([executable_path, "--version"], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    found = BUILD_LINE.search(done.stdout + done.stderr)
    return int(found[1]) if found else None


def _one_copy(plan) -> int:
    """The bytes of one copy of the weights: the plan's breakdown counts every copy (data parallelism)."""
    return plan.memory.breakdown.weights // plan.offload.data_parallel_size


def _copies_on(plan, hardware) -> dict:
    """The GPUs that hold one copy each, as the child process must be told: the variable of their vendor, and
    each one's entry in that variable as this process has it (the plan numbers GPUs as this process sees them)."""
    indices = [int(d.device.removeprefix("gpu")) for d in plan.memory.devices if d.device != "cpu"]
    vendor = next((g.vendor for g in hardware.gpus if g.index == indices[0]), NVIDIA.name)
    variable = GPU_VENDORS[vendor].visible_devices or NVIDIA.visible_devices
    visible = [v.strip() for v in os.environ[variable].split(",")] if os.environ.get(variable) else None
    return {"visible_env": variable,
            "copies_on": tuple(visible[i] if visible and i < len(visible) else str(i) for i in indices)}


def _not_gpt_oss_warning(gguf: GgufInfo) -> str:
    if gguf.architecture == "gpt-oss":
        what = (f"a gpt-oss of a shape gptoss does not know ({gguf.block_count} layers, "
                f"{gguf.expert_count} experts)")
    else:
        what = f"a {gguf.architecture} model, not gpt-oss"
    return f"{gguf.path.name} is {what}: the plan's memory and speed figures do not apply to it"


LLAMACPP = LlamaCpp()


def _fewer_threads(hw) -> int | None:
    """The threads llama-server is told to use where fewer than HW's cores; None: one a core."""
    threads = engine_threads()
    return threads if threads is not None and threads < hw.cpu.physical_cores else None


def _threads_reason(hw) -> str | None:
    threads = _fewer_threads(hw)
    if threads is None:
        return None
    return (f"threads: llama-server runs {threads} of this machine's {hw.cpu.physical_cores} cores "
            f"({THREADS_VARIABLE}={threads}): its CPU work is predicted for {threads}")


def _offload_reason(placement, hw) -> str | None:
    gpus = [d for d in placement.devices if d.device != "cpu"]
    if gpus and placement.cpu_layers:
        return (f"offload: --n-cpu-moe {placement.cpu_layers}: the MoE experts of {placement.cpu_layers} of "
                f"{placement.model.layers} layers stay in RAM so the rest fits "
                f"{gib(sum(d.available_bytes for d in gpus))} of free GPU memory")
    if placement.data_parallel_size > 1:
        return (f"GPUs: each of {placement.data_parallel_size} GPUs holds the whole model, so each runs its own "
                f"{LLAMACPP.title} copy behind one address: streams run side by side (predicted "
                f"{tokens_per_s(predict_aggregate(placement, hw))} over {AGGREGATE_STREAMS} streams), each at "
                "one GPU's speed")
    if placement.tensor_split:
        return (f"GPUs: one {LLAMACPP.title} server splits the layers over {len(gpus)} GPUs (--tensor-split "
                f"{','.join(f'{share:g}' for share in placement.tensor_split)}): no one GPU holds the model at this "
                "context, so each adds memory, not speed")
    return None


def _host_cache_reason(placement, hw) -> str | None:
    """What llama-server may keep in RAM beyond the model, set rather than left to its growing defaults."""
    if placement.context_checkpoints is None:
        return None
    held = gib(placement.devices[-1].cache_bytes)
    fit = ("; --fit off: the engine runs this placement rather than its own search; --log-verbosity 4: it prints "
           "its buffers, which gptoss-up records beside these figures")
    if placement.prompt_cache_bytes or placement.context_checkpoints:
        return (f"memory: llama-server keeps {held} of RAM for its prompt cache (--cache-ram "
                f"{placement.prompt_cache_bytes // MIB}) and {placement.context_checkpoints} context "
                f"checkpoint{'' if placement.context_checkpoints == 1 else 's'} a slot (--ctx-checkpoints), out of "
                f"what the plan leaves; its defaults (8,192 MiB and 32) would grow "
                f"past the plan{fit}")
    why = ("unified memory is the GPU's too" if any(g.unified_memory for g in hw.gpus)
           else "the plan leaves too little RAM for them")
    return (f"memory: no prompt cache and no context checkpoints (--cache-ram 0 --ctx-checkpoints 0): {why}, and "
            f"llama-server's defaults would grow into it after start-up{fit}")
