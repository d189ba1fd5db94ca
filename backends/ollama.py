"""Ollama: `ollama serve` with the planned context, the pull, and the per-request options (CBO, OLL)."""
from __future__ import annotations

import contextlib
import math
import os
import shutil
from urllib.parse import urlsplit

from gptoss_deploy.backends.addresses import endpoint, host_port
from gptoss_deploy.backends.base import LocalBackend, ServerLaunch
from gptoss_deploy.backends.flags import checked_env
from gptoss_deploy.planner.backend import LocalLaunch, MachineClass
from gptoss_deploy.planner.catalog import Artifact
from gptoss_deploy.planner.errors import BackendError, UsageError
from gptoss_deploy.planner.explain import whole_layers_reason
from gptoss_deploy.planner.placement import LAYERS, OLLAMA_NUM_BATCH
from gptoss_deploy.planner.units import GB

DEFAULT_PORT = 11434
READY_DEADLINE_S = 60.0           # `ollama serve` answers at once; models load on the first request
PLANNED_ENV = {"OLLAMA_HOST": (), "OLLAMA_CONTEXT_LENGTH": ()}   # any value: checked where it is used
NOT_INSTALLED = ("Ollama is not installed: get it from https://ollama.com/download (Linux: "
                 "`curl -fsSL https://ollama.com/install.sh | sh`), or choose --backend llamacpp")


class Ollama(LocalBackend):
    name = "ollama"
    title = "Ollama"
    offload = LAYERS
    auto_rank = {MachineClass.DESKTOP: 1, MachineClass.SERVER: 1, MachineClass.DATACENTER: 2}
    # ollama.com library (secondary); gpt-oss-safeguard's tags from OpenAI's safeguard guide (SGG), its sizes
    # gpt-oss's: the same architecture and quantization
    artifacts = {"gpt-oss-20b": Artifact("gpt-oss:20b", 14 * GB, 14 * GB),
                 "gpt-oss-120b": Artifact("gpt-oss:120b", 65 * GB, 65 * GB),
                 "gpt-oss-safeguard-20b": Artifact("gpt-oss-safeguard:20b", 14 * GB, 14 * GB),
                 "gpt-oss-safeguard-120b": Artifact("gpt-oss-safeguard:120b", 65 * GB, 65 * GB)}
    checks_identity_when_ready = False          # Ollama lists the model only once it is pulled (after_ready)
    sdk_module, extra = "ollama", "ollama"      # the official client: pull, create, the NDJSON benchmark

    program = "ollama (installed here, or running where OLLAMA_HOST says)"
    renders = {"context_length": ("OLLAMA_CONTEXT_LENGTH", "num_ctx"), "ubatch": ("num_batch",)}
    leaves_to_engine = {field: "Ollama puts as many whole layers on the GPU as its own estimate allows; the plan "
                               "predicts its split" for field in ("cpu_layers", "gpu_layers")}

    def placement_reasons(self, placement, hw) -> list[str]:
        return whole_layers_reason(placement, self.title)

    def command_here(self, *, plan, hardware) -> list[str]:
        return [shutil.which("ollama") or "ollama", "serve"]   # unless an Ollama already answers: then nothing

    def download_bytes(self, model) -> int | None:
        return None                              # Ollama pulls into its own model store, not the HF cache

    def program_missing(self) -> str | None:
        """Ollama installed here, or running where OLLAMA_HOST says (not checked: nothing is called)."""
        return None if shutil.which("ollama") or os.environ.get("OLLAMA_HOST") else NOT_INSTALLED

    def build_launch(self, placement, settings) -> LocalLaunch:
        port = settings.port or DEFAULT_PORT
        return LocalLaunch(
            ["ollama", "serve"],
            # Ollama's default context (4096) silently truncates prompts: always set it.
            {"OLLAMA_HOST": host_port(settings.host, port), "OLLAMA_CONTEXT_LENGTH": str(placement.context_length)},
            placement.artifact.ref, endpoint(settings.host, port),
            # num_batch as planned: above 4k (32k) context Ollama raises its own to 1024 (2048) where it predicts
            # room, and its compute buffer outgrows the plan's.
            request={"model": placement.artifact.ref, "think": settings.reasoning_effort,
                     "options": {"num_ctx": placement.context_length, "num_batch": placement.ubatch}})

    def server_launch(self, *, plan, options, hardware, gguf) -> ServerLaunch:
        host, port = _address(plan, options)
        _num_batch(plan)                        # a saved plan's bad value is refused before anything starts
        ref, context = plan.launch.model_ref, plan.context_length
        launch = ServerLaunch(argv=None, env={}, host=host, port=port, served_model=context_model_name(ref, context),
                              protocol="ollama", ready_deadline_s=options.ready_timeout_s or READY_DEADLINE_S,
                              unavailable=self.sdk_missing())
        if launch.unavailable:
            return launch                       # without its client, nothing is asked of a running Ollama
        if served_models(launch.base_url, None) is not None:
            launch.warnings.append(f"using the Ollama already running at {host}:{port} (gptoss will not stop it)")
            return launch
        program = shutil.which("ollama")
        launch.argv = [program or "ollama", "serve"]
        # Ollama's default context (4096) silently truncates prompts: the server default is the plan's too.
        launch.env = {"OLLAMA_HOST": host_port(host, port), "OLLAMA_CONTEXT_LENGTH": str(context)}
        launch.unavailable = None if program else NOT_INSTALLED
        return launch

    def use_api_key(self, *, launch, key) -> None:
        raise BackendError("Ollama has no API keys, so gptoss serves it on 127.0.0.1 only; put an authenticating "
                           "proxy in front of it to reach it from other machines")

    def served_models(self, *, base_url, api_key) -> list[str] | None:
        return served_models(base_url, api_key)

    def after_ready(self, *, launch, plan, progress) -> None:
        """Pull the tag (progress from the pull stream), create the model with the planned context, load it."""
        import ollama

        ref, context, batch = plan.launch.model_ref, plan.context_length, _num_batch(plan)
        client = _client(launch.base_url)
        ours = launch.served_model not in (served_models(launch.base_url, None) or [])
        try:
            for update in client.pull(ref, stream=True):
                if update.total and update.completed is not None:
                    progress(f"pulling {ref}: {update.completed / 1e9:.1f} of {update.total / 1e9:.1f} GB")
                elif update.status:
                    progress(f"pulling {ref}: {update.status}")
            progress(f"creating {launch.served_model} (num_ctx {context}, num_batch {batch})")
            for _ in client.create(launch.served_model, from_=ref, parameters={"num_ctx": context, "num_batch": batch},
                                   stream=True):
                pass
        except ollama.ResponseError as err:
            raise BackendError(f"Ollama could not pull {ref}: {err.error}") from None
        except (ConnectionError, OSError) as err:
            raise BackendError(f"Ollama at {launch.base_url} stopped answering while pulling {ref}: {err}") from None
        if launch.served_model not in (served_models(launch.base_url, None) or []):
            raise BackendError(f"Ollama at {launch.base_url} does not list {launch.served_model} after creating it")
        progress(f"loading {launch.served_model}")
        try:        # an empty prompt loads the model (Ollama's API): memory runs out here, not at the first request
            client.generate(launch.served_model)
        except ollama.ResponseError as err:
            if ours:          # a model that cannot load is not left behind (the fallback ladder creates one a rung)
                with contextlib.suppress(ollama.ResponseError, ConnectionError, OSError):
                    client.delete(launch.served_model)
            raise BackendError(f"Ollama could not load {launch.served_model}: {err.error}") from None
        except (ConnectionError, OSError) as err:
            raise BackendError(f"Ollama at {launch.base_url} stopped answering while loading "
                               f"{launch.served_model}: {err}") from None

    def stream_client(self, *, record, api_key, effort):
        return OllamaStream(record.endpoint.base_url, record.endpoint.model, effort)


def _address(plan, options) -> tuple[str, int]:
    """Where Ollama listens: --host/--port, else OLLAMA_HOST (as Ollama reads it), else the plan's address."""
    planned = checked_env(plan.launch.env, PLANNED_ENV).get("OLLAMA_HOST")
    configured = os.environ.get("OLLAMA_HOST") or planned or f"127.0.0.1:{DEFAULT_PORT}"
    try:
        parsed = urlsplit(configured if "://" in configured else f"http://{configured}")
        hostname, port = parsed.hostname, parsed.port
    except ValueError:
        raise UsageError(f"OLLAMA_HOST {configured[:80]!r} is not an address (host:port)") from None
    return options.host or hostname or "127.0.0.1", options.port or port or DEFAULT_PORT


def _num_batch(plan) -> int:
    """The batch the plan sized Ollama's compute buffer for; a plan saved before it said so: Ollama's default."""
    options = (plan.launch.request or {}).get("options") or {}
    if not isinstance(options, dict):
        raise UsageError(f"the plan's launch.request.options {str(options)[:20]!r} is not an object: make the plan "
                         "again with gptoss plan --json")
    batch = options.get("num_batch", OLLAMA_NUM_BATCH)
    if not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= 65536:
        raise UsageError(f"the plan's launch.request.options.num_batch {str(batch)[:20]!r} is not a batch size "
                         "(1 to 65536): make the plan again with gptoss plan --json")
    return batch


def context_model_name(ref: str, context: int) -> str:
    """The model gptoss creates on top of REF with num_ctx set, so every client (the OpenAI API too) gets it."""
    return f"{ref}-ctx{context}"


def _client(base_url: str, timeout_s: float | None = None):
    import ollama

    from gptoss_deploy.backends.openai_api import verify_tls

    return ollama.Client(host=base_url.removesuffix("/v1"), timeout=timeout_s, verify=verify_tls(base_url))


def served_models(base_url: str, api_key: str | None) -> list[str] | None:
    """The models this Ollama has, or None when no Ollama answers at BASE_URL."""
    import ollama

    try:
        return [m.model for m in _client(base_url, timeout_s=2.0).list().models]
    except (ollama.ResponseError, ConnectionError, OSError):
        return None


class OllamaStream:
    """Streams /api/chat (NDJSON) with the real client; reads Ollama's own eval_count and eval_duration."""

    def __init__(self, base_url: str, model: str, reasoning_effort: str):
        self.client, self.model, self.effort = _client(base_url, timeout_s=120.0), model, reasoning_effort

    def stream(self, prompt: str, max_tokens: int, deadline_s: float = math.inf, fixed_length: bool = True):
        # FIXED_LENGTH cannot be asked of Ollama: the benchmark's verdict says when a request stopped early
        import ollama

        from gptoss_deploy.backends.streaming import BenchError, StreamClock

        clock, final = StreamClock(deadline_s=deadline_s), None
        try:
            for chunk in self.client.chat(self.model, [{"role": "user", "content": prompt}], stream=True,
                                          think=self.effort, options={"num_predict": max_tokens}):
                if chunk.message.content or chunk.message.thinking:   # thinking counts: TTFT on any channel
                    clock.token(chunk.message.content or "", chunk.message.thinking or "")
                if chunk.done:
                    final = chunk
        except (ollama.ResponseError, ConnectionError, OSError) as err:
            raise BenchError(f"Ollama chat failed: {err}") from None
        if final is None or not final.eval_count:
            raise BenchError("Ollama reported no eval_count: token counts unknown")
        server = final.eval_count / (final.eval_duration / 1e9) if final.eval_duration else None
        return clock.sample(final.eval_count, server, final.prompt_eval_count)


OLLAMA = Ollama()
