"""The micro-benchmark: warm-up, single streams with unique prompts, a concurrency step, and a verdict.

Token counts come from the server's usage, never from counting chunks. TTFT ends at the first token of any
channel (gpt-oss reasons before it answers, and reasoning tokens are output tokens: gptoss-facts.md).
Decode tok/s = (n - 1) / (t_last - t_first): the first token's time belongs to TTFT.
"""
from __future__ import annotations

import os
import secrets
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from gptoss_deploy.backends.streaming import OutOfTime, Sample, StreamClient, one_decimal
from gptoss_deploy.planner.throughput import AGGREGATE_STREAMS
from gptoss_deploy.planner.units import seconds_setting
from gptoss_deploy.runtime.records import Benchmark

SINGLE_STREAM_REQUESTS = 3
CONCURRENCY = AGGREGATE_STREAMS         # the plan predicts aggregate throughput for this many streams
BUDGET_S = 30.0                      # the whole run, warm-up to verdict, on any machine (GPTOSS_BENCH_BUDGET_S)
SECONDS_PER_REQUEST = 2.0            # sizes the output from the prediction so the run stays well within budget
MIN_OUTPUT_TOKENS, MAX_OUTPUT_TOKENS, DEFAULT_OUTPUT_TOKENS = 32, 256, 64
WARM_UP_TOKENS = 8
# Sizing from the warm-up's speed: the concurrency step takes about two single requests' time (a server that
# batches keeps each stream near single-stream speed; one that does not shares it).
CONCURRENT_STEP_REQUESTS = 2
MIN_FITTED_TOKENS = 8
TIMINGS_TOLERANCE = 0.25             # client and server decode figures further apart than this: invalid run
# The fastest single stream over the slowest: past this, something else used the machine during the run, and its
# median says more about that than about the deployment.
UNSTABLE_SPREAD = 1.5
PROMPT = "Write a detailed story about a lighthouse keeper who finds a message in a bottle."


@dataclass(frozen=True)
class Gates:
    min_decode_tokens_per_s: float | None = None
    min_aggregate_tokens_per_s: float | None = None
    max_ttft_ms: float | None = None


def output_tokens_for(predicted_decode: float | None) -> int:
    if not predicted_decode:
        return DEFAULT_OUTPUT_TOKENS
    return int(min(MAX_OUTPUT_TOKENS, max(MIN_OUTPUT_TOKENS, predicted_decode * SECONDS_PER_REQUEST)))


def unique_prompt() -> str:
    # A random prefix defeats prompt caching, so every request pays for its own prefill.
    return f"[run {secrets.token_hex(8)}] {PROMPT}"


def budget_s() -> float:
    """GPTOSS_BENCH_BUDGET_S, checked: the benchmark's wall time, warm-up to verdict."""
    return seconds_setting("GPTOSS_BENCH_BUDGET_S", BUDGET_S, zero_allowed=False)


def run_bench(client: StreamClient, *, predicted_decode: float | None = None, roofline_decode: float | None = None,
              gates: Gates = Gates(), price: dict | None = None, budget_s: float = BUDGET_S,
              progress: Callable[[str], None] = lambda _: None) -> Benchmark:
    """Measure CLIENT and judge it: the `benchmark` document of the Deployment JSON.

    The run stops at BUDGET_S seconds, mid-request if need be, and reports what finished by then. PRICE (USD per
    1M input and output tokens, for cloud endpoints) turns the tokens spent into a cost."""
    started = time.monotonic()
    deadline = started + budget_s
    output_tokens = output_tokens_for(predicted_decode)
    finished, samples, parallel, step = [], [], None, "warm-up"
    try:
        progress(step)
        finished.append(client.stream(unique_prompt(), WARM_UP_TOKENS, deadline))
        output_tokens = _fitting(output_tokens, finished[0], deadline)
        for i in range(SINGLE_STREAM_REQUESTS):
            step = f"single stream {i + 1}/{SINGLE_STREAM_REQUESTS}"
            progress(step)
            samples.append(client.stream(unique_prompt(), output_tokens, deadline))
        step = f"{CONCURRENCY} concurrent streams"
        progress(step)
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            parallel = list(pool.map(lambda _: client.stream(unique_prompt(), output_tokens, deadline),
                                     range(CONCURRENCY)))
        step = None
    except OutOfTime:
        pass
    aggregate = sum(s.completion_tokens for s in parallel) / (
        max(s.finished_s for s in parallel) - min(s.started_s for s in parallel)) if parallel else None
    cut = f"the benchmark stopped at its {budget_s:g} s budget during {step} (GPTOSS_BENCH_BUDGET_S): the " \
          "figures are from the requests that finished" if step else None
    result = verdict(samples, aggregate, output_tokens, predicted_decode, roofline_decode, gates, cut)
    wall_s = time.monotonic() - started
    result["spent"] = spent([*finished, *samples, *(parallel or [])], price, wall_s)
    result["wall_s"] = round(wall_s, 1)
    return Benchmark.model_validate(result)


def _fitting(tokens: int, warm_up: Sample, deadline: float) -> int:
    """TOKENS per request, or fewer where the warm-up's speed says the rest of the run would not fit the budget."""
    if not warm_up.decode_tokens_per_s:
        return tokens
    per_request_s = (deadline - time.monotonic()) / (SINGLE_STREAM_REQUESTS + CONCURRENT_STEP_REQUESTS)
    fits = int((per_request_s - warm_up.ttft_ms / 1000) * warm_up.decode_tokens_per_s)
    return min(tokens, max(MIN_FITTED_TOKENS, fits))


def spent(samples: list[Sample], price: dict | None, seconds: float) -> dict:
    """The tokens SAMPLES used and, where the endpoint has a list price, what they cost: per token, or for an
    endpoint billed by the hour the SECONDS they took."""
    prompt = sum(s.prompt_tokens or 0 for s in samples)
    completion = sum(s.completion_tokens for s in samples)
    cost = None
    if price and price.get("usd_per_1m_input_tokens") is not None:
        cost = (prompt * price["usd_per_1m_input_tokens"] + completion * price["usd_per_1m_output_tokens"]) / 1e6
    elif price and price.get("usd_per_hour") is not None:
        cost = price["usd_per_hour"] * seconds / 3600
    return {"input_tokens": prompt, "output_tokens": completion, "cost_usd": cost}


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def verdict(samples: list[Sample], aggregate: float | None, output_tokens: int, predicted_decode: float | None,
            roofline_decode: float | None, gates: Gates, cut: str | None = None) -> dict:
    decode = _median([s.decode_tokens_per_s for s in samples])
    server_decode = _median([s.server_decode_tokens_per_s for s in samples])
    ttft = _median([s.ttft_ms for s in samples])
    problems = ([cut] if cut else []) + _invalid_reasons(samples, decode, server_decode, output_tokens)
    failures = [] if problems else _missed_gates(decode, aggregate, ttft, gates)
    unsteady = [] if problems or failures else _unstable_reasons(samples)
    return {
        "decode_tokens_per_s": one_decimal(decode), "server_decode_tokens_per_s": one_decimal(server_decode),
        "ttft_ms": one_decimal(ttft), "aggregate_tokens_per_s": one_decimal(aggregate), "concurrency": CONCURRENCY,
        "output_tokens": output_tokens, "predicted_decode_tokens_per_s": predicted_decode,
        "measured_vs_predicted": _ratio(decode, predicted_decode),
        "roofline_efficiency": _ratio(decode, roofline_decode),
        "verdict": "invalid" if problems else "fail" if failures else "unstable" if unsteady else "pass",
        "reasons": problems or failures or unsteady,
        "samples": [s.to_json() for s in samples],
        "prompt_tokens": None if (prompt := _median([s.prompt_tokens for s in samples])) is None else round(prompt),
        "load_average_1m": _load_average(),
    }


def _unstable_reasons(samples: list[Sample]) -> list[str]:
    speeds = [s.decode_tokens_per_s for s in samples if s.decode_tokens_per_s]
    if len(speeds) < 2 or max(speeds) / min(speeds) <= UNSTABLE_SPREAD:
        return []
    return [f"single-stream decode varied {max(speeds) / min(speeds):.1f}x between requests ({min(speeds):.0f} to "
            f"{max(speeds):.0f} tok/s) with load average {_load_average()}: run again when the machine is quieter"]


def _load_average() -> float | None:
    """The machine's 1-minute load average, recorded beside every verdict (None where the OS has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _invalid_reasons(samples, decode, server_decode, output_tokens) -> list[str]:
    reasons = []
    short = [s.completion_tokens for s in samples if s.completion_tokens < output_tokens]
    if short:
        reasons.append(f"the server stopped early ({min(short)} of {output_tokens} tokens): decode figures "
                       "from so few tokens are not comparable")
    if decode is None:
        reasons.append("no request produced two tokens or more: decode speed cannot be measured")
    elif server_decode and abs(decode - server_decode) / server_decode > TIMINGS_TOLERANCE:
        reasons.append(f"client decode {decode:.1f} tok/s and the server's own {server_decode:.1f} tok/s differ "
                       f"by more than {TIMINGS_TOLERANCE:.0%}: the client or the network distorts the timing")
    return reasons


def _missed_gates(decode, aggregate, ttft, gates: Gates) -> list[str]:
    missed = []
    if gates.min_decode_tokens_per_s is not None and decode < gates.min_decode_tokens_per_s:
        missed.append(f"decode {decode:.1f} tok/s is below --min-decode-tps {gates.min_decode_tokens_per_s:g}")
    if gates.min_aggregate_tokens_per_s is not None and aggregate < gates.min_aggregate_tokens_per_s:
        missed.append(f"aggregate {aggregate:.1f} tok/s is below --min-aggregate-tps "
                      f"{gates.min_aggregate_tokens_per_s:g}")
    if gates.max_ttft_ms is not None and ttft > gates.max_ttft_ms:
        missed.append(f"TTFT {ttft:.0f} ms is above --max-ttft-ms {gates.max_ttft_ms:g}")
    return missed


def _ratio(measured: float | None, reference: float | None) -> float | None:
    return round(measured / reference, 3) if measured and reference else None
