"""LM Studio: its `lms` CLI starts the server (`lms server start`), fetches the model (`lms get`) and loads it with
the planned context and GPU offload (`lms load`); clients and the benchmark use its OpenAI-compatible API.

LM Studio runs GGUFs on its llama.cpp engine and, on Apple Silicon, MLX builds on Apple's own framework. Its server
is LM Studio's process, not ours: `down` unloads the model gptoss loaded and stops the server only if gptoss started
it. lms's flags are those of lmstudio-ai/lms 07b7252 (2026-08-13): load --context-length/--gpu/--identifier/-y,
get --mlx/--gguf/-y, server start --port/--bind.
"""
from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gptoss_deploy.backends.addresses import NAME_PATTERN, endpoint, require_loopback
from gptoss_deploy.backends.base import LocalBackend, ServerLaunch
from gptoss_deploy.backends.flags import configured_program, port_number
from gptoss_deploy.backends.llamacpp import LLAMACPP
from gptoss_deploy.planner.backend import LocalLaunch
from gptoss_deploy.planner.catalog import MAX_CONTEXT, VARIANT_MODELS, model_named
from gptoss_deploy.planner.errors import BackendError, UsageError
from gptoss_deploy.planner.explain import whole_layers_reason
from gptoss_deploy.planner.placement import LAYERS, MIN_CONTEXT

DEFAULT_PORT = 1234
# LM Studio's catalog keys (lms get's help; gpt-oss-safeguard's: `lms get openai/gpt-oss-safeguard-20b`, SGG)
MODEL_KEYS = {name: f"openai/{name}" for name in VARIANT_MODELS}
READY_DEADLINE_S = 60.0           # the server answers within seconds; the model loads afterwards (after_ready)
LMS_TIMEOUT_S = 600.0             # a load of 120b from a slow disk; `lms get` downloads without a limit
NOT_INSTALLED = ("LM Studio is not installed: get it from https://lmstudio.ai/download, run it once, then "
                 "`~/.lmstudio/bin/lms bootstrap` puts lms on PATH (or set GPTOSS_LMS); or choose --backend llamacpp")
GPU_RATIO = r"^(max|off|0\.\d\d)$"       # lms load --gpu, as gptoss writes it


class LoadRequest(BaseModel):
    """What the plan asks LM Studio once its server runs: which build to fetch, and how to load it."""

    model_config = ConfigDict(extra="forbid", defer_build=True)    # built when a saved plan is read, not to plan
    format: Literal["gguf", "mlx"]
    context_length: int = Field(ge=MIN_CONTEXT, le=MAX_CONTEXT)
    gpu: str = Field(pattern=GPU_RATIO)
    identifier: str = Field(pattern=f"^(?:{NAME_PATTERN.pattern})$")


@dataclass(frozen=True)
class LmsSteps:
    """The lms commands `up` runs, decided once: start the server (None: one already answers), fetch, load."""

    start: list[str] | None
    get: list[str]
    load: list[str]
    identifier: str


class LmStudio(LocalBackend):
    name = "lmstudio"
    title = "LM Studio"
    offload = LAYERS                            # lms load --gpu: the share of whole layers on the GPU
    # LM Studio's GGUFs of gpt-oss (and of gpt-oss-safeguard) are MXFP4 files the size of those llama.cpp loads.
    artifacts = {name: replace(LLAMACPP.artifacts[f"gpt-oss-{model_named(name).size}"], ref=key, files=())
                 for name, key in MODEL_KEYS.items()}
    checks_identity_when_ready = False          # the model is listed once loaded (after_ready)
    has_health = False                          # LM Studio's server has no /health
    program = "lms (LM Studio's CLI: on PATH, ~/.lmstudio/bin, or GPTOSS_LMS)"
    renders = {"context_length": ("context_length",), "gpu_layers": ("gpu",), "cpu_layers": ("gpu",)}   # lms load's
    leaves_to_engine = {"ubatch": "lms load has no batch size; LM Studio sets its own"}

    def placement_reasons(self, placement, hw) -> list[str]:
        return whole_layers_reason(placement, self.title)

    def program_missing(self) -> str | None:
        return None if _lms() else NOT_INSTALLED

    def download_bytes(self, model) -> int | None:
        return None                             # LM Studio keeps its own models folder

    def build_launch(self, placement, settings) -> LocalLaunch:
        port = settings.port or DEFAULT_PORT
        gpus = [d for d in placement.devices if d.device != "cpu"]
        # Apple Silicon: LM Studio's MLX engine, on Apple's own framework; elsewhere its llama.cpp engine.
        apple = bool(gpus) and gpus[0].name.startswith("Apple")
        request = LoadRequest(format="mlx" if apple else "gguf", context_length=placement.context_length,
                              gpu=_gpu_ratio(placement.gpu_layers or 0, placement.model.layers),
                              identifier=placement.model.name)
        return LocalLaunch(["lms", "server", "start", "--port", str(port), "--bind", settings.host], {},
                           MODEL_KEYS[placement.model.name], endpoint(settings.host, port), request=request.model_dump())

    def server_launch(self, *, plan, options, hardware, gguf) -> ServerLaunch:
        host, port = _address(plan.launch.argv)
        host, port = options.host or host, options.port or port
        require_loopback(host, "LM Studio's server")
        request, lms, key = load_request(plan.launch.request), _lms() or "lms", plan.launch.model_ref
        if key not in MODEL_KEYS.values():
            raise UsageError(f"the plan's launch.model_ref {key[:80]!r} is none of {', '.join(MODEL_KEYS.values())}")
        running = self.served_models(base_url=endpoint(host, port), api_key=None) is not None
        steps = LmsSteps(
            start=None if running else [lms, "server", "start", "--port", str(port), "--bind", host],
            get=[lms, "get", key, f"--{request.format}", "-y"],
            load=[lms, "load", key, "--context-length", str(request.context_length), "--gpu", request.gpu,
                  "--identifier", request.identifier, "-y"], identifier=request.identifier)
        # argv None: LM Studio's server is its own process, which `lms server start` leaves running
        launch = ServerLaunch(argv=None, env={}, host=host, port=port, served_model=request.identifier,
                              protocol="openai", ready_deadline_s=options.ready_timeout_s or READY_DEADLINE_S,
                              unavailable=self.program_missing(), command=steps,
                              commands=[c for c in (steps.start, steps.get, steps.load) if c])
        if running:
            launch.warnings.append(f"using the LM Studio server already running at {host}:{port} (gptoss will not "
                                   "stop it)")
        return launch

    def command_here(self, *, plan, hardware) -> list[str]:
        return [_lms() or "lms", *plan.launch.argv[1:]]

    def prepare(self, *, launch, plan, progress) -> None:
        """Start LM Studio's server, unless one answered at the planned address already (that one is not ours)."""
        if launch.command.start is None:
            return
        progress(f"starting LM Studio's server on {launch.host}:{launch.port}")
        _lms_run(launch.command.start, "start its server")
        launch.created.append(("lmstudio-server", str(launch.port)))

    def after_ready(self, *, launch, plan, progress) -> None:
        """Fetch the planned build, then load it with the planned context and offload under the plan's name."""
        steps, key = launch.command, plan.launch.model_ref
        progress(f"fetching {key}: {shlex.join(steps.get[1:])}")
        _lms_run(steps.get, f"fetch {key}", timeout_s=None)
        progress(f"loading {key}: {shlex.join(steps.load[1:])}")
        _lms_run(steps.load, f"load {key}")
        launch.created.append(("lmstudio-model", steps.identifier))
        if steps.identifier not in (self.served_models(base_url=launch.base_url, api_key=None) or []):
            raise BackendError(f"LM Studio at {launch.base_url} does not list {steps.identifier} after loading it")

    def release(self, *, created, progress) -> list[str]:
        """Unload what gptoss loaded, then stop the server if gptoss started it; what failed, in words."""
        failed = []
        for kind, name in sorted(created, key=lambda item: item[0] != "lmstudio-model"):   # models first
            args = ["unload", name] if kind == "lmstudio-model" else ["server", "stop"]
            progress(f"LM Studio: lms {' '.join(args)}")
            try:
                _lms_run([_lms() or "lms", *args], f"{args[0]} {name}", timeout_s=60.0)
            except BackendError as err:
                failed.append(str(err))
        return failed

    def use_api_key(self, *, launch, key) -> None:
        raise BackendError("LM Studio's server takes no API key that gptoss can set; it serves on 127.0.0.1 only")

    def effort_fields(self, effort: str) -> dict:
        return {"reasoning_effort": effort}     # LM Studio's chat completions take gpt-oss's effort


def _gpu_ratio(gpu_layers: int, layers: int) -> str:
    """lms load --gpu: max, off, or the share of layers on the GPU (two decimals, rounded down: never more)."""
    if gpu_layers >= layers:
        return "max"
    if gpu_layers <= 0:
        return "off"
    return f"{int(gpu_layers / layers * 100) / 100:.2f}"


def load_request(raw) -> LoadRequest:
    """The plan's LM Studio request, checked: a saved plan is untrusted input."""
    try:
        return LoadRequest.model_validate(raw or {})
    except ValidationError as err:
        first = err.errors()[0]
        raise UsageError(f"the plan's launch.request: {'.'.join(map(str, first['loc'])) or 'request'}: "
                         f"{first['msg']}") from None


def _address(argv: list[str]) -> tuple[str, int]:
    """Host and port from the plan's `lms server start --port P --bind H`, which must be exactly that."""
    if len(argv) != 7 or argv[:4] != ["lms", "server", "start", "--port"] or argv[5] != "--bind":
        raise UsageError(f"the plan's launch.argv is not `lms server start --port P --bind HOST`: "
                         f"{' '.join(argv)[:120]}")
    try:
        return argv[6], port_number(argv[4])
    except ValueError as err:
        raise UsageError(f"the plan's launch.argv: {err}") from None


def _lms() -> str | None:
    found = configured_program("GPTOSS_LMS") or shutil.which("lms")
    bundled = Path.home() / ".lmstudio" / "bin" / "lms"     # where LM Studio puts it before `lms bootstrap`
    return found or (str(bundled) if bundled.is_file() else None)


def _lms_run(argv: list[str], doing: str, timeout_s: float | None = LMS_TIMEOUT_S) -> None:
    """Run ARGV (an lms command); a failure is one line: what lms said last."""
    args = argv[1:]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise BackendError(NOT_INSTALLED) from None
    except subprocess.TimeoutExpired:
        raise BackendError(f"LM Studio could not {doing}: lms {args[0]} took over {timeout_s:.0f} s") from None
    if done.returncode != 0:
        said = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        raise BackendError(f"LM Studio could not {doing}: {said[-1] if said else f'lms exited {done.returncode}'}")


LMSTUDIO = LmStudio()
