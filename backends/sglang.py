"""SGLang: `sglang serve` for a placement, on the GPUs its gpt-oss cookbook covers (SGC: docs/sources.md).

The model is placed like vLLM's (the whole model on the GPUs, tensor and data parallel); the cookbook's flags are its
reasoning and tool-call parsers. SGLang takes its API key as --api-key or in a --config YAML file, never from the
environment: `up` writes the key into a config file readable by this user only, so it is in no argv.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass, replace

from gptoss_deploy.backends.addresses import endpoint
from gptoss_deploy.backends.base import (CONTAINER_PORT, ContainerCommand, ContainerImage, LocalBackend, ServerLaunch,
                                         health_probe, key_config_path, ready_deadline_s)
from gptoss_deploy.backends.flags import bounded, checked_env, configured_program, parse_flags, port_number, word
from gptoss_deploy.backends.vllm import VLLM
from gptoss_deploy.planner.backend import LocalLaunch
from gptoss_deploy.planner.catalog import MAX_CONTEXT
from gptoss_deploy.planner.errors import UsageError
from gptoss_deploy.planner.placement import WHOLE_MODEL

DEFAULT_PORT = 30000               # SGLang's own default
SGLANG_RELEASE = "0.5.23"          # the release whose parser checks our commands (tests/upstream/check_sglang.py)
READY_BASE_S = 300.0               # it captures CUDA graphs before it serves
NOT_INSTALLED = ("SGLang is not installed: `pip install sglang` on Linux with a supported GPU (docs.sglang.io), or "
                 "set GPTOSS_SGLANG to its `sglang` program; or choose --backend vllm")
# The GPUs the cookbook's command generator serves MXFP4 gpt-oss on (SGC): MI300X and MI325X are "Work In Progress".
COOKBOOK_GPUS = ("H100", "H200", "B200", "MI355X")
AMD_ENV = {"SGLANG_USE_AITER": "0"}       # SGC: AMD Instinct GPUs, "due to YaRN RoPE precision issues"
PLANNED_ENV = {name: (value,) for name, value in AMD_ENV.items()}   # all a saved plan may set
PARSER = "gpt-oss"                        # SGC: --reasoning-parser gpt-oss, --tool-call-parser gpt-oss


def _fraction(text: str) -> str:
    value = float(text)
    if not 0 < value < 1:
        raise ValueError(text)
    return f"{value:.2f}"


GPUS = bounded(1, 64)
FLAGS = {"--model-path": word, "--served-model-name": word, "--host": word, "--port": port_number, "--tp-size": GPUS,
         "--dp-size": GPUS, "--mem-fraction-static": _fraction, "--context-length": bounded(1, MAX_CONTEXT),
         "--reasoning-parser": lambda v: {PARSER: v}[v], "--tool-call-parser": lambda v: {PARSER: v}[v]}
OPTIONAL_FLAGS = ("--dp-size",)


@dataclass(frozen=True)
class SglangServeCommand:
    """The `sglang serve` command, typed: built from a placement or parsed strictly from a saved plan."""

    model: str
    served_model_name: str
    host: str
    port: int
    tp_size: int
    mem_fraction_static: str
    context_length: int
    dp_size: int = 1
    config: str | None = None          # `up`: the file that holds the API key (never in a plan)
    program: tuple[str, ...] = ("sglang",)

    def argv(self) -> list[str]:
        return [*self.program, "serve", "--model-path", self.model, "--served-model-name", self.served_model_name,
                "--host", self.host, "--port", str(self.port), "--tp-size", str(self.tp_size),
                *(["--dp-size", str(self.dp_size)] if self.dp_size > 1 else []),
                "--mem-fraction-static", self.mem_fraction_static, "--context-length", str(self.context_length),
                "--reasoning-parser", PARSER, "--tool-call-parser", PARSER,
                *(["--config", self.config] if self.config else [])]

    @classmethod
    def parse(cls, argv: list[str]) -> SglangServeCommand:
        if argv[:2] != ["sglang", "serve"]:
            raise UsageError(f"the plan's launch.argv runs {' '.join(argv[:2])[:80]!r}, not sglang serve")
        flags = parse_flags(argv[2:], FLAGS)
        missing = [flag for flag in FLAGS if flag not in flags and flag not in OPTIONAL_FLAGS]
        if missing:
            raise UsageError(f"the plan's launch.argv lacks {', '.join(missing)}")
        return cls(model=flags["--model-path"], served_model_name=flags["--served-model-name"], host=flags["--host"],
                   port=flags["--port"], tp_size=flags["--tp-size"], dp_size=flags.get("--dp-size", 1),
                   mem_fraction_static=flags["--mem-fraction-static"], context_length=flags["--context-length"])


class Sglang(LocalBackend):
    name = "sglang"
    title = "SGLang"
    offload = WHOLE_MODEL
    why_chosen = "SGLang serves gpt-oss on the datacenter GPUs its cookbook covers"
    artifacts = VLLM.artifacts          # OpenAI's repositories, as vLLM loads them (SGC: --model openai/gpt-oss-*)
    program = "sglang (on PATH or GPTOSS_SGLANG)"
    container_images = {"nvidia": ContainerImage(f"lmsysorg/sglang:v{SGLANG_RELEASE}", None,
                                                 "SGLang's image runs as root; it ships no other user")}
    key_env = "SGLANG_API_KEY"           # exports: the Secret's variable, which the start script writes to a file
    container_writes = "SGLang compiles kernels at start into caches under its HOME (Triton, FlashInfer)"
    renders = {"context_length": ("--context-length",), "tensor_parallel_size": ("--tp-size",),
               "data_parallel_size": ("--dp-size",), "gpu_memory_utilization": ("--mem-fraction-static",)}
    leaves_to_engine = {"max_num_batched_tokens": "SGLang sizes its own prefill chunks (--chunked-prefill-size)",
                        "pipeline_parallel_size": "unsupported() keeps SGLang to one node"}

    def unsupported(self, model, hw) -> str | None:
        if (missing := super().unsupported(model, hw)) is not None:
            return missing
        if hw.nodes > 1:
            return "SGLang serves from one node here; a plan over nodes runs vLLM"
        outside = [g.name for g in hw.gpus if not any(mark in g.name for mark in COOKBOOK_GPUS)]
        if not hw.gpus or outside:
            return (f"SGLang's gpt-oss cookbook covers {', '.join(COOKBOOK_GPUS)} (MI300X and MI325X with MXFP4: work "
                    f"in progress); this machine has {', '.join(outside) or 'no GPU'}")
        return None

    def key_from_environment(self) -> str:
        return (f"SGLang reads its API key only from argv (which ps shows) or its --config file: the start script "
                f"writes {self.key_env} into that file before it runs SGLang")

    def program_missing(self) -> str | None:
        return None if _program() else NOT_INSTALLED

    def placement_reasons(self, placement, hw) -> list[str]:
        tp, copies = placement.tensor_parallel_size, placement.data_parallel_size
        split = (f"GPUs: one {hw.gpus[0].name} holds the whole model and its KV cache" if tp == 1 else
                 f"GPUs: --tp-size {tp}: one {hw.gpus[0].name} cannot hold the model and the KV cache")
        copies_words = f"; --dp-size {copies}: copies on the other GPUs serve streams side by side" if copies > 1 else ""
        return [f"{split} (--mem-fraction-static {_static_fraction(placement)}: weights and KV cache; the rest for "
                f"activations and CUDA graphs){copies_words}; the cookbook's parsers: --reasoning-parser {PARSER} "
                f"--tool-call-parser {PARSER}"]

    def build_launch(self, placement, settings) -> LocalLaunch:
        command = SglangServeCommand(
            model=placement.artifact.ref, served_model_name=placement.model.name, host=settings.host,
            port=settings.port or DEFAULT_PORT, tp_size=placement.tensor_parallel_size,
            dp_size=placement.data_parallel_size, mem_fraction_static=_static_fraction(placement),
            context_length=placement.context_length)
        amd = (placement.compute_capability or "").startswith("gfx")
        return LocalLaunch(command.argv(), dict(AMD_ENV) if amd else {}, placement.artifact.ref,
                           endpoint(command.host, command.port), served_model=placement.model.name)

    def server_launch(self, *, plan, options, hardware, gguf) -> ServerLaunch:
        planned = SglangServeCommand.parse(plan.launch.argv)
        program = _program()
        command = replace(planned, host=options.host or planned.host, port=options.port or planned.port,
                          program=(program or "sglang",))
        return ServerLaunch(argv=command.argv(), env=checked_env(plan.launch.env, PLANNED_ENV),
                            host=command.host, port=command.port, served_model=command.served_model_name,
                            protocol="openai",
                            ready_deadline_s=ready_deadline_s(options, READY_BASE_S, plan.memory.breakdown.weights),
                            unavailable=None if program else NOT_INSTALLED, command=command)

    def use_api_key(self, *, launch, key) -> None:
        """The key in a YAML config file beside the key file, this user's only: SGLang reads --config in-process."""
        config = key_config_path(launch.api_key_file)
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(f"api-key: {json.dumps(key)}\n")   # SGLang turns a key into its flag verbatim: --api-key
        launch.set_command(replace(launch.command, config=str(config)))

    def container_command(self, *, plan, key_file=None) -> ContainerCommand:
        command = replace(SglangServeCommand.parse(plan.launch.argv), host="0.0.0.0", port=CONTAINER_PORT)
        # The key arrives as a variable (the Secret's); the image's Python writes it, quoted whatever it holds, into
        # a config file in the container's /tmp, so that it is in no argv, and SGLang starts on that file.
        write = f'import json, os; print("api-key: " + json.dumps(os.environ["{self.key_env}"]))'
        script = f"umask 077 && python3 -c '{write}' > /tmp/sglang.yaml && exec \"$@\" --config /tmp/sglang.yaml"
        return ContainerCommand(["sh", "-c", script, "sglang"], command.argv(),
                                checked_env(plan.launch.env, PLANNED_ENV), health=health_probe(CONTAINER_PORT))

    def command_here(self, *, plan, hardware) -> list[str]:
        return replace(SglangServeCommand.parse(plan.launch.argv), program=(_program() or "sglang",)).argv()

    def effort_fields(self, effort: str) -> dict:
        return {"reasoning_effort": effort}   # SGC: gpt-oss's configurable reasoning effort, per request


def _static_fraction(placement) -> str:
    """SGLang's --mem-fraction-static: the share of a GPU for weights and KV cache, the plan's budget less what
    vLLM's budget also holds (activations, CUDA graphs), which SGLang keeps outside the static pool."""
    gpu = next(d for d in placement.devices if d.device != "cpu")
    total = (gpu.available_bytes - gpu.headroom_bytes) / placement.gpu_memory_utilization
    return f"{math.floor(100 * (gpu.weights_bytes + gpu.kv_cache_bytes) / total) / 100:.2f}"


def _program() -> str | None:
    return configured_program("GPTOSS_SGLANG") or shutil.which("sglang")


SGLANG = Sglang()
