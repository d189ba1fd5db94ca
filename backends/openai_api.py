"""The OpenAI-compatible HTTP API that llama-server and vLLM speak: readiness, identity and a timed stream."""
from __future__ import annotations

import json
import math

from gptoss_deploy.backends.streaming import BenchError, OutOfTime, Sample, StreamClock

HTTP_TIMEOUT_S = 120.0
MIN_WAIT_S = 0.1


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def verify_tls(url: str) -> bool:
    """Whether a client of URL loads the system's certificates: only for https. Loading them takes a fifth of a
    second each time, which plain http to a local server (its readiness polled many times) does not need."""
    return url.startswith("https://")


def served_models(base_url: str, api_key: str | None = None, timeout_s: float = 2.0,
                  health: bool = True) -> list[str] | None:
    """The model ids /v1/models lists, or None while the server is not answering (or, where it has a /health that
    says so, still loading)."""
    import httpx

    root = base_url.removesuffix("/v1")
    try:
        with httpx.Client(headers=_headers(api_key), timeout=timeout_s, verify=verify_tls(base_url)) as client:
            if health and client.get(f"{root}/health").status_code != 200:
                return None                    # llama-server answers 503 while it loads the model
            models = client.get(f"{base_url}/models")
        models.raise_for_status()
        return [entry["id"] for entry in models.json().get("data", [])]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


class OpenAIStream:
    """Streams chat completions with usage (stream_options) and reads llama-server's own `timings`."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, extra_body: dict | None = None):
        self.base_url, self.model, self.api_key = base_url, model, api_key
        self.extra_body = extra_body or {}

    def stream(self, prompt: str, max_tokens: int, deadline_s: float = math.inf, fixed_length: bool = True) -> Sample:
        import httpx

        body = {"model": self.model, "messages": [{"role": "user", "content": prompt}], "stream": True,
                "max_tokens": max_tokens, "stream_options": {"include_usage": True}, **self.extra_body}
        if fixed_length:
            body["ignore_eos"] = True
        clock, usage, timings = StreamClock(deadline_s=deadline_s), None, None
        # A server that stalls is waited for until the deadline, no longer (a token past it ends the stream too).
        wait_s = max(MIN_WAIT_S, min(HTTP_TIMEOUT_S, clock.remaining_s() + MIN_WAIT_S))
        try:
            with httpx.stream("POST", f"{self.base_url}/chat/completions", json=body, headers=_headers(self.api_key),
                              timeout=wait_s, verify=verify_tls(self.base_url)) as response:
                if response.status_code != 200:
                    raise BenchError(f"HTTP {response.status_code} from {self.base_url}/chat/completions: "
                                     f"{response.read().decode(errors='replace')[:200]}")
                for chunk in _sse_events(response.iter_lines()):
                    for choice in chunk.get("choices") or []:
                        answer, reasoning = _channels(choice.get("delta") or {})
                        if answer or reasoning:
                            clock.token(answer, reasoning)
                    usage = chunk.get("usage") or usage
                    timings = chunk.get("timings") or timings
        except httpx.TimeoutException as err:
            if clock.remaining_s() <= 0:
                raise OutOfTime from None
            raise BenchError(f"request to {self.base_url} timed out: {err}") from None
        except httpx.HTTPError as err:
            raise BenchError(f"request to {self.base_url} failed: {err}") from None
        if not usage or "completion_tokens" not in usage:
            raise BenchError("the server reported no usage (stream_options.include_usage): token counts unknown")
        server_decode = timings.get("predicted_per_second") if timings else None
        reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
        return clock.sample(usage["completion_tokens"], server_decode, usage.get("prompt_tokens"), reasoning)


def _channels(delta: dict) -> tuple[str, str]:
    """A chunk's answer text and reasoning text. Reasoning arrives as reasoning_content (llama.cpp) or reasoning
    (vLLM) before any content."""
    return delta.get("content") or "", delta.get("reasoning_content") or delta.get("reasoning") or ""


def _sse_events(lines):
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[len("data:"):].strip()
        if data == "[DONE]":
            return
        try:
            yield json.loads(data)
        except json.JSONDecodeError:
            raise BenchError(f"the server sent a malformed event: {data[:120]}") from None
