"""What an engine says about its memory at start-up, in the plan's terms: each adapter reads its own engine's log into
an EngineReport (LocalBackend.reported_memory); runtime.engine_memory sets it beside the plan."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Reported:
    """One figure an engine printed about its memory."""

    where: str        # "GPUs", "host" or "each GPU"
    part: str         # "weights", "kv_cache" or "compute"
    bytes: int


@dataclass(frozen=True)
class EngineReport:
    """What an engine's start-up log says about its memory, in the plan's terms (one figure per where and part)."""

    source: str
    figures: list[Reported] = field(default_factory=list)
    max_concurrency: float | None = None
    # vLLM gives its KV cache all the memory its budget leaves: the plan's figure to compare is that room, not
    # the KV cache the planned context needs.
    kv_takes_the_room: bool = False


def plain(lines: list[str]) -> list[str]:
    """LINES without terminal colours (llama.cpp colours its log on a terminal)."""
    return [_ANSI.sub("", line) for line in lines]
