"""What a stream client measures: the clock a streamed answer is timed by, and the sample it yields. Each adapter's
client (OpenAI-compatible, Ollama, Bedrock) times its own stream with it; the benchmark (verify.bench) runs them."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class Sample:
    """One streamed request, timed on the client; server figures where the server reports them."""

    ttft_ms: float
    completion_tokens: int
    decode_tokens_per_s: float | None
    server_decode_tokens_per_s: float | None = None
    prompt_tokens: int | None = None
    started_s: float = 0.0       # monotonic clock: for the concurrency step's wall time, not reported
    finished_s: float = 0.0
    # The channels apart (the effort sweep): reasoning + answer = completion tokens.
    reasoning_tokens: int = 0
    answer: str = ""
    answer_ttft_ms: float | None = None      # to the first token of the answer, after any reasoning

    @property
    def answer_tokens(self) -> int:
        return self.completion_tokens - self.reasoning_tokens

    @property
    def e2e_ms(self) -> float:
        return (self.finished_s - self.started_s) * 1000

    def to_json(self) -> dict:
        return {"ttft_ms": one_decimal(self.ttft_ms), "completion_tokens": self.completion_tokens,
                "decode_tokens_per_s": one_decimal(self.decode_tokens_per_s),
                "server_decode_tokens_per_s": one_decimal(self.server_decode_tokens_per_s)}


class StreamClient(Protocol):
    def stream(self, prompt: str, max_tokens: int, deadline_s: float = math.inf, fixed_length: bool = True) -> Sample:
        """One streamed chat request. FIXED_LENGTH: ask the server to go on to MAX_TOKENS past the end of its answer,
        where it can (the benchmark's requests of equal length); otherwise the model stops when it has answered."""


class OutOfTime(Exception):
    """The benchmark's wall-time budget ran out while a request was still streaming."""


@dataclass
class StreamClock:
    """Arrival times of a stream's tokens, on the monotonic clock; a token past DEADLINE_S ends the stream.
    The chunks of each channel are counted, and the answer's text kept."""

    sent_s: float = field(default_factory=time.monotonic)
    first_s: float | None = None
    last_s: float | None = None
    deadline_s: float = math.inf
    first_answer_s: float | None = None
    reasoning_chunks: int = 0
    answer: list[str] = field(default_factory=list)

    def token(self, answer: str = "", reasoning: str = "") -> None:
        """A chunk arrived carrying ANSWER text, REASONING text, or both."""
        now = time.monotonic()
        if now > self.deadline_s:
            raise OutOfTime
        self.first_s = self.first_s or now
        self.last_s = now
        self.reasoning_chunks += bool(reasoning)
        if answer:
            self.first_answer_s = self.first_answer_s or now
            self.answer.append(answer)

    def remaining_s(self) -> float:
        return self.deadline_s - time.monotonic()

    def sample(self, completion_tokens: int, server_decode: float | None, prompt_tokens: int | None = None,
               reasoning_tokens: int | None = None) -> Sample:
        """The request's figures from the server's token counts. REASONING_TOKENS where the server counts them;
        otherwise its total is split in proportion to the chunks streamed on each channel (one token a chunk, as
        the engines stream; harmony's own markers fall to both in the same proportion)."""
        if self.first_s is None:
            raise BenchError("the server streamed no tokens")
        span = self.last_s - self.first_s
        decode = (completion_tokens - 1) / span if completion_tokens > 1 and span > 0 else None
        chunks = self.reasoning_chunks + len(self.answer)
        if reasoning_tokens is None:
            reasoning_tokens = round(completion_tokens * self.reasoning_chunks / chunks) if chunks else 0
        answer_ttft = (self.first_answer_s - self.sent_s) * 1000 if self.first_answer_s else None
        return Sample(ttft_ms=(self.first_s - self.sent_s) * 1000, completion_tokens=completion_tokens,
                      decode_tokens_per_s=decode, server_decode_tokens_per_s=server_decode,
                      prompt_tokens=prompt_tokens, started_s=self.sent_s, finished_s=time.monotonic(),
                      reasoning_tokens=min(reasoning_tokens, completion_tokens), answer="".join(self.answer),
                      answer_ttft_ms=answer_ttft)


class BenchError(Exception):
    """The server answered in a way the benchmark cannot measure (no usage, no tokens, an HTTP error)."""


def one_decimal(value):
    return round(value, 1) if isinstance(value, float) else value
