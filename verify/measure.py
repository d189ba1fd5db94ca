"""Benchmark a deployment (or any OpenAI-compatible URL) over the protocol it speaks, against its prediction."""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from gptoss_deploy.backends import get_backend
from gptoss_deploy.backends.streaming import BenchError
from gptoss_deploy.planner.documents import Predicted
from gptoss_deploy.planner.errors import BackendError, UsageError, VerificationError
from gptoss_deploy.runtime.records import Benchmark, Deployment
from gptoss_deploy.runtime.state import StateStore
from gptoss_deploy.verify.bench import Gates, run_bench

if TYPE_CHECKING:
    from gptoss_deploy.verify.effort_sweep import EffortSweep


def bench_record(record: Deployment, store: StateStore, gates: Gates, budget_s: float,
                 progress=lambda _: None) -> Benchmark:
    """Run the micro-benchmark on a recorded deployment; the plan's prediction is the yardstick."""
    backend = get_backend(record.backend)
    backend.require_sdk()
    predicted = record.prediction()
    price = record.plan.price.model_dump() if record.plan.price else None
    client = backend.stream_client(record=record, api_key=store.read_secret(record.name),
                                   effort=record.plan.reasoning_effort)
    return _run(client, predicted, gates, budget_s, progress, price)


def bench_url(base_url: str, model: str | None, api_key: str | None, gates: Gates, budget_s: float,
              progress=lambda _: None) -> Benchmark:
    """Benchmark an OpenAI-compatible server we did not start: no prediction to compare with."""
    from gptoss_deploy.backends.openai_api import OpenAIStream

    base_url, model = _served(base_url, model, api_key)
    return _run(OpenAIStream(base_url, model, api_key), None, gates, budget_s, progress)


def sweep_record(record: Deployment, store: StateStore, max_tokens: int, budget_s: float,
                 progress=lambda _: None) -> EffortSweep:
    """The reasoning-effort sweep on a recorded deployment, priced at its plan's price."""
    backend = get_backend(record.backend)
    if not backend.takes_effort:
        raise UsageError(f"{backend.title} takes no reasoning effort per request: a sweep would ask the same "
                         "thing three times")
    backend.require_sdk()
    api_key = store.read_secret(record.name)
    price = record.plan.price.model_dump() if record.plan.price else None
    swept = _sweep(lambda effort: backend.stream_client(record=record, api_key=api_key, effort=effort), price,
                   max_tokens, budget_s, progress)
    return replace(swept, name=record.name)


def sweep_url(base_url: str, model: str | None, api_key: str | None, max_tokens: int, budget_s: float,
              progress=lambda _: None) -> EffortSweep:
    """The sweep on a server we did not start. Effort goes both as OpenAI's `reasoning_effort` (vLLM, LM Studio)
    and as llama-server's chat_template_kwargs (gptoss-facts.md: launch commands)."""
    from gptoss_deploy.backends.openai_api import OpenAIStream

    base_url, model = _served(base_url, model, api_key)
    return _sweep(lambda effort: OpenAIStream(base_url, model, api_key, {
        "reasoning_effort": effort, "chat_template_kwargs": {"reasoning_effort": effort}}), None, max_tokens, budget_s,
        progress)


def _served(base_url: str, model: str | None, api_key: str | None) -> tuple[str, str]:
    """BASE_URL without a trailing slash and the model to ask for there (MODEL, checked, else the first listed)."""
    from urllib.parse import urlsplit

    from gptoss_deploy.backends.masking import url_masked
    from gptoss_deploy.backends.openai_api import served_models

    try:
        parts = urlsplit(base_url)
        parts.port                                     # a port out of range or not a number raises here
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not base_url.isprintable():
        raise UsageError(f"--url {url_masked(base_url)[:80]!r} is not a server's address: give its http(s) base URL, "
                         "e.g. http://127.0.0.1:8080/v1")
    base_url = base_url.rstrip("/")
    models = served_models(base_url, api_key)
    if models is None:
        raise BackendError(f"nothing answers at {url_masked(base_url)} (GET /health and /v1/models); is the server "
                           "up?")
    if not model:
        if not models:
            raise BackendError(f"{base_url} lists no models; pass --model-id")
        return base_url, models[0]
    if model not in models:
        raise UsageError(f"{base_url} does not serve {model}; it serves: {', '.join(models)}")
    return base_url, model


def _sweep(client_for, price: dict | None, max_tokens: int, budget_s: float, progress) -> EffortSweep:
    from gptoss_deploy.verify.effort_sweep import sweep

    try:
        result = sweep(client_for, price, max_tokens, budget_s, progress)
    except BenchError as err:
        raise BackendError(f"effort sweep failed: {err}") from None
    if result.stopped == "budget" and not result.tasks:
        raise BackendError(f"the effort sweep's {budget_s:g} s budget ran out before one task was answered at every "
                           "effort: raise --budget, or lower --max-tokens")
    return result


def _run(client, predicted: Predicted | None, gates: Gates, budget_s: float, progress,
         price: dict | None = None) -> Benchmark:
    try:
        result = run_bench(client, predicted_decode=predicted.decode_tokens_per_s if predicted else None,
                           roofline_decode=predicted.roofline_decode_tokens_per_s if predicted else None,
                           gates=gates, price=price, budget_s=budget_s, progress=progress)
    except BenchError as err:
        raise BackendError(f"benchmark failed: {err}") from None
    return result


def verification_failure(benchmark: Benchmark | None, document: dict, gates: Gates, *,
                         launch: bool = False) -> VerificationError | None:
    """The exit-5 rule: a missed gate fails. A run that could not measure (invalid, or unstable where gates were
    set) fails `gptoss bench`, whose job the measurement is; on a LAUNCH that worked it fails only where the user
    set gates, and is otherwise a warning (untrusted_figures). DOCUMENT travels with the error."""
    gated = any(value is not None for value in vars(gates).values())
    if benchmark is None or benchmark.verdict == "pass" or not gated and (launch or benchmark.verdict == "unstable"):
        return None
    return VerificationError(f"benchmark verdict {benchmark.verdict}: {'; '.join(benchmark.reasons)}",
                             details=document)


def untrusted_figures(benchmark: Benchmark | None) -> str | None:
    """Why BENCHMARK's figures are not this deployment's speed (the run could not measure it), or None."""
    if benchmark is None or benchmark.verdict not in UNTRUSTED:
        return None
    return f"{benchmark.verdict}: {'; '.join(benchmark.reasons)}"


UNTRUSTED = ("invalid", "unstable")      # verdicts of runs that could not measure: noise, budget, load
