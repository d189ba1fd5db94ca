"""Foundry Local (Microsoft): gpt-oss-20b through Foundry Local's Python SDK, whose wheel carries its native runtime
(foundry-local-sdk 2.x, manylinux, macOS and Windows builds). gptoss runs it as a supervised child process
(backends/foundry_service.py) that selects the catalog variant the plan expects (the CUDA one on an NVIDIA GPU of
16 GB or more, else the CPU one), downloads, loads and serves it on Foundry's OpenAI-compatible web service; `down`
stops that process, which unloads the model. Foundry's own choice of variant is unreliable on some machines
(foundry-local issues 895, 1109, 1121: CPU variants only, though a GPU is there): `up` says so where the variant it
loaded is not the planned one, and holds its benchmark to no prediction.
"""
from __future__ import annotations

from dataclasses import dataclass

from gptoss_deploy.backends.addresses import endpoint, require_loopback
from gptoss_deploy.backends.base import LocalBackend, ServerLaunch
from gptoss_deploy.backends.flags import port_number
from gptoss_deploy.backends.llamacpp import LLAMACPP
from gptoss_deploy.backends.process_groups import python_module
from gptoss_deploy.planner.backend import LocalLaunch
from gptoss_deploy.planner.catalog import Artifact
from gptoss_deploy.planner.errors import BackendError, UsageError
from gptoss_deploy.planner.placement import LAYERS
from gptoss_deploy.planner.units import GIB, gib

DEFAULT_PORT = 5273                # Foundry Local's usual service port
ALIAS = "gpt-oss-20b"              # Foundry Local's catalog serves the 20b only (Microsoft, 2025-08-05)
# Microsoft: gpt-oss-20b runs in Foundry Local on its CUDA variant, on GPUs with 16 GB of memory or more; a 16 GB
# card reports a little under 16 GiB.
MIN_GPU_BYTES = int(15.5 * GIB)
READY_DEADLINE_S = 3600.0          # the first start downloads about 12 GB before the web service answers
MODULE = f"{__package__}.foundry_service"
LOADED = "Foundry Local serves "     # the line foundry_service prints naming the variant it loaded


@dataclass(frozen=True)
class Variant:
    """A build of gpt-oss-20b in Foundry Local's catalog, by its model id."""

    model_id: str
    on_gpu: bool
    artifact: Artifact


# The catalog's ids (`foundry model list`: gpt-oss-20b-cuda-gpu:1, gpt-oss-20b-generic-cpu:1). The CUDA build's size
# is not in our sources: planned as the MXFP4 GGUF's; the CPU build is 12.26 GB (the catalog's size_gb; about
# 12.3 GB in foundry-local issue 995).
CUDA = Variant("gpt-oss-20b-cuda-gpu:1", True, Artifact(ALIAS, LLAMACPP.artifacts["gpt-oss-20b"].disk_bytes,
                                                         LLAMACPP.artifacts["gpt-oss-20b"].loaded_bytes))
CPU = Variant("gpt-oss-20b-generic-cpu:1", False, Artifact(ALIAS, int(12.26e9), int(12.26e9)))
VARIANTS = {v.model_id: v for v in (CUDA, CPU)}


def variant_for(hw) -> Variant:
    """The CUDA build where an NVIDIA GPU of 16 GB or more is there (Microsoft's requirement), else the CPU one."""
    return CUDA if any(g.vendor == "nvidia" and g.memory_total_bytes >= MIN_GPU_BYTES for g in hw.gpus) else CPU


class FoundryLocal(LocalBackend):
    name = "foundry"
    title = "Foundry Local"
    offload = LAYERS                            # whole layers: all on the GPU (the CUDA build), or all on the CPU
    artifacts = {"gpt-oss-20b": CUDA.artifact}  # the model it has; what it loads is its variant's (artifact())
    sdk_module, extra = "foundry_local_sdk", "foundry"
    checks_identity_when_ready = False          # the web service answers only once the model is loaded
    has_health = False                          # Foundry's web service has no /health
    takes_effort = False                        # its chat completions document no reasoning effort
    program = "Foundry Local's native runtime (it comes in the foundry-local-sdk wheel)"
    # Its catalog model loads as built: nothing of a placement is a setting of Foundry Local's.
    renders = {"gpu_layers": ("--variant",), "cpu_layers": ("--variant",)}    # its CUDA or its CPU build, wholly
    leaves_to_engine = {"context_length": "the catalog model runs at the context it was built for",
                        "ubatch": "Foundry Local has no batch-size setting"}

    def program_missing(self) -> str | None:
        return self.sdk_missing()               # the runtime is the SDK's: one install gives both

    def download_bytes(self, model) -> int | None:
        return None                             # Foundry Local keeps its own model cache

    def unsupported(self, model, hw) -> str | None:
        if model.name not in self.artifacts:
            return f"Foundry Local's catalog has {ALIAS} only"
        return None

    def artifact(self, model, hw=None) -> Artifact:
        return variant_for(hw).artifact if hw is not None else super().artifact(model)

    def computes_on(self, hw):
        return hw if variant_for(hw).on_gpu else hw.model_copy(update={"gpus": []})   # the CPU build: RAM only

    def placement_reasons(self, placement, hw) -> list[str]:
        variant = _variant_of(placement)
        if variant.on_gpu:
            return [f"Foundry Local: its CUDA variant {variant.model_id}, wholly on the GPU"]
        nvidia = [g for g in hw.gpus if g.vendor == "nvidia"]
        why = (f"{nvidia[0].name} has {gib(nvidia[0].memory_total_bytes)}, under the 16 GB its CUDA variant needs"
               if nvidia else "its CUDA variant needs an NVIDIA GPU of 16 GB or more")
        return [f"Foundry Local: its CPU variant {variant.model_id} ({gib(variant.artifact.loaded_bytes)}), "
                f"wholly in RAM: {why}; the speed is predicted as llama.cpp's on this CPU (Foundry's ONNX runtime "
                "is not calibrated: gptoss bench measures it, and the next plan learns from that)"]

    def build_launch(self, placement, settings) -> LocalLaunch:
        port = settings.port or DEFAULT_PORT
        return LocalLaunch(["foundry_service", "--alias", ALIAS, "--variant", _variant_of(placement).model_id,
                            "--host", settings.host, "--port", str(port)], {}, ALIAS, endpoint(settings.host, port))

    def server_launch(self, *, plan, options, hardware, gguf) -> ServerLaunch:
        argv = plan.launch.argv
        if len(argv) != 9 or argv[:3] != ["foundry_service", "--alias", ALIAS] or argv[3::2] != [
                "--variant", "--host", "--port"] or argv[4] not in VARIANTS:
            raise UsageError(f"the plan's launch.argv is not `foundry_service --alias {ALIAS} --variant "
                             f"{'|'.join(VARIANTS)} --host H --port P`: {' '.join(argv)[:160]}")
        try:
            host, port = options.host or argv[6], options.port or port_number(argv[8])
        except ValueError as err:
            raise UsageError(f"the plan's launch.argv: {err}") from None
        require_loopback(host, "Foundry Local's web service")
        return ServerLaunch(argv=[*python_module(MODULE), "--alias", ALIAS, "--variant", argv[4], "--host", host,
                                  "--port", str(port)],
                            env={}, host=host, port=port, served_model=ALIAS, protocol="openai",
                            ready_deadline_s=options.ready_timeout_s or READY_DEADLINE_S,
                            unavailable=self.sdk_missing())

    def loaded_off_plan(self, *, plan, log_lines: list[str]) -> str | None:
        expected = plan.launch.argv[4]
        loaded = next((line.split(LOADED, 1)[1].split()[0] for line in reversed(log_lines) if LOADED in line), None)
        if loaded is None or loaded == expected:
            return None
        return (f"Foundry Local loaded {loaded}, not the planned {expected} (its own choice of variant: foundry-local "
                "issues 895, 1109, 1121); the plan's memory and speed are not this variant's, so the benchmark is "
                "held to no prediction")

    def command_here(self, *, plan, hardware) -> list[str]:
        return [*python_module(MODULE), *plan.launch.argv[1:]]

    def use_api_key(self, *, launch, key) -> None:
        raise BackendError("Foundry Local's web service takes no API key; it serves on 127.0.0.1 only")


def _variant_of(placement) -> Variant:
    return CUDA if any(d.device != "cpu" for d in placement.devices) else CPU


FOUNDRY = FoundryLocal()
