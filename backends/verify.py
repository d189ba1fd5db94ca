"""Benchmark a deployment (or any OpenAI-compatible URL) over the protocol it speaks, against its prediction."""
from __future__ import annotations

from gptoss_deploy.backends import get_backend
from gptoss_deploy.backends.bench import BenchError, Gates, run_bench
from gptoss_deploy.backends.state import StateStore
from gptoss_deploy.planner.errors import BackendError, UsageError, VerificationError


def bench_record(record: dict, store: StateStore, gates: Gates, progress=lambda _: None) -> dict:
    """Run the micro-benchmark on a recorded deployment; the plan's prediction is the yardstick."""
    predicted = (record.get("plan") or {}).get("predicted") or {}
    if record.get("warnings"):                 # not a gpt-oss model: gpt-oss figures mean nothing here
        predicted = {}
    price = (record.get("plan") or {}).get("price")
    client = get_backend(record["backend"]).stream_client(record=record, api_key=store.read_secret(record["name"]))
    return _run(client, predicted, gates, progress, price)


def bench_url(base_url: str, model: str | None, api_key: str | None, gates: Gates, progress=lambda _: None) -> dict:
    """Benchmark an OpenAI-compatible server we did not start: no prediction to compare with."""
    from gptoss_deploy.backends.openai_api import OpenAIStream, served_models

    models = served_models(base_url.rstrip("/"), api_key)
    if models is None:
        raise BackendError(f"nothing answers at {base_url} (GET /health and /v1/models); is the server up?")
    if not model:
        if not models:
            raise BackendError(f"{base_url} lists no models; pass --model-id")
        model = models[0]
    elif model not in models:
        raise UsageError(f"{base_url} does not serve {model}; it serves: {', '.join(models)}")
    return _run(OpenAIStream(base_url.rstrip("/"), model, api_key), {}, gates, progress)


def _run(client, predicted: dict, gates: Gates, progress, price: dict | None = None) -> dict:
    try:
        return run_bench(client, predicted_decode=predicted.get("decode_tokens_per_s"),
                         roofline_decode=predicted.get("roofline_decode_tokens_per_s"), gates=gates,
                         price=price, progress=progress)
    except BenchError as err:
        raise BackendError(f"benchmark failed: {err}") from None


def verification_failure(document: dict) -> VerificationError | None:
    """The exit-5 rule: a benchmark that did not pass fails verification; DOCUMENT travels with the error."""
    bench = document.get("benchmark")
    if bench is None or bench["verdict"] == "pass":
        return None
    return VerificationError(f"benchmark verdict {bench['verdict']}: {'; '.join(bench['reasons'])}", details=document)
