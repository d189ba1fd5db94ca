"""Foundry Local (Microsoft): gpt-oss-20b through Foundry Local's Python SDK, whose wheel carries its native runtime
(foundry-local-sdk 2.x, manylinux, macOS and Windows builds). gptoss runs it as a supervised child process
(backends/foundry_service.py) that lets Foundry pick the variant for the device, downloads, loads and serves it on
Foundry's OpenAI-compatible web service; `down` stops that process, which unloads the model.
"""
from __future__ import annotations

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


class FoundryLocal(LocalBackend):
    name = "foundry"
    title = "Foundry Local"
    offload = LAYERS                            # placed as whole layers; unsupported() demands all on the GPU
    # Its ONNX build keeps gpt-oss's MXFP4 experts; its size is not in our sources: planned as the GGUF's.
    artifacts = {"gpt-oss-20b": Artifact(ALIAS, LLAMACPP.artifacts["gpt-oss-20b"].disk_bytes,
                                         LLAMACPP.artifacts["gpt-oss-20b"].loaded_bytes)}
    sdk_module, extra = "foundry_local_sdk", "foundry"
    checks_identity_when_ready = False          # the web service answers only once the model is loaded
    has_health = False                          # Foundry's web service has no /health
    takes_effort = False                        # its chat completions document no reasoning effort
    program = "Foundry Local's native runtime (it comes in the foundry-local-sdk wheel)"
    # Its catalog model loads as built: nothing of a placement is a setting of Foundry Local's.
    leaves_to_engine = {"context_length": "the catalog model runs at the context it was built for",
                        "gpu_layers": "the CUDA variant runs wholly on the GPU (unsupported() demands it)",
                        "ubatch": "Foundry Local has no batch-size setting"}

    def program_missing(self) -> str | None:
        return self.sdk_missing()               # the runtime is the SDK's: one install gives both

    def download_bytes(self, model) -> int | None:
        return None                             # Foundry Local keeps its own model cache

    def unsupported(self, model, hw) -> str | None:
        if model.name not in self.artifacts:
            return f"Foundry Local's catalog has {ALIAS} only"
        if not any(g.vendor == "nvidia" and g.memory_total_bytes >= MIN_GPU_BYTES for g in hw.gpus):
            have = ", ".join(f"{g.name} ({gib(g.memory_total_bytes)})" for g in hw.gpus) or "no GPU"
            return (f"Foundry Local runs {ALIAS} on an NVIDIA GPU with 16 GB or more (its CUDA variant); "
                    f"this machine has {have}")
        return None

    def build_launch(self, placement, settings) -> LocalLaunch:
        port = settings.port or DEFAULT_PORT
        return LocalLaunch(["foundry_service", "--alias", ALIAS, "--host", settings.host, "--port", str(port)], {},
                           ALIAS, endpoint(settings.host, port))

    def server_launch(self, *, plan, options, hardware, gguf) -> ServerLaunch:
        argv = plan.launch.argv
        if len(argv) != 7 or argv[:3] != ["foundry_service", "--alias", ALIAS] or argv[3::2] != ["--host", "--port"]:
            raise UsageError(f"the plan's launch.argv is not `foundry_service --alias {ALIAS} --host H --port P`: "
                             f"{' '.join(argv)[:120]}")
        try:
            host, port = options.host or argv[4], options.port or port_number(argv[6])
        except ValueError as err:
            raise UsageError(f"the plan's launch.argv: {err}") from None
        require_loopback(host, "Foundry Local's web service")
        return ServerLaunch(argv=[*python_module(MODULE), "--alias", ALIAS, "--host", host, "--port", str(port)],
                            env={}, host=host, port=port, served_model=ALIAS, protocol="openai",
                            ready_deadline_s=options.ready_timeout_s or READY_DEADLINE_S,
                            unavailable=self.sdk_missing())

    def command_here(self, *, plan, hardware) -> list[str]:
        return [*python_module(MODULE), *plan.launch.argv[1:]]

    def use_api_key(self, *, launch, key) -> None:
        raise BackendError("Foundry Local's web service takes no API key; it serves on 127.0.0.1 only")


FOUNDRY = FoundryLocal()
