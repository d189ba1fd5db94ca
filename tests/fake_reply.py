"""What the stand-in servers stream. By default the benchmark's fixed-length reply: half reasoning, half answer, to
max_tokens. With FAKE_ANSWER set they answer as gpt-oss does at the effort asked: reasoning first (longer at
higher effort), then FAKE_ANSWER word by word, then they stop."""
from __future__ import annotations

import os
import re

REASONING_CHUNKS = {"low": 4, "medium": 16, "high": 48}


def reply(max_tokens: int, effort: str | None) -> tuple[list[tuple[str, str]], bool]:
    """The (channel, text) chunks to stream, channel "reasoning" or "answer", and whether max_tokens cut them."""
    answer = os.environ.get("FAKE_ANSWER")
    if answer is None:
        return [("reasoning", "hm") if i < max_tokens // 2 else ("answer", "word ") for i in range(max_tokens)], True
    chunks = [("reasoning", "hm ")] * REASONING_CHUNKS[effort or "medium"]
    chunks += [("answer", word) for word in re.findall(r"\S+\s*", answer)]
    return chunks[:max_tokens], len(chunks) > max_tokens


def first_answer(chunks: list[tuple[str, str]]) -> int:
    """The index of the first answer chunk (where a server pauses between reasoning and answer), or -1."""
    return next((i for i, (channel, _) in enumerate(chunks) if channel == "answer"), -1)
