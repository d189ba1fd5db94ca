"""Units of size, and the one way each figure is shown to people."""
from __future__ import annotations

import math
import os

from gptoss_deploy.planner.errors import UsageError

MIB = 1024**2
GIB = 1024**3
GB = 1000**3


def gib(n_bytes: float) -> str:
    return f"{n_bytes / GIB:.1f} GiB"


def size(n_bytes: float) -> str:
    """A size that may be small: MiB under a GiB (a tiny model's buffers), GiB from there."""
    return f"{n_bytes / MIB:,.0f} MiB" if n_bytes < GIB else gib(n_bytes)


def tokens_per_s(value: float | None) -> str:
    """A speed as people read it: whole tokens from 10 tok/s up, one decimal below, '-' when unknown. One rule for
    every screen: rounded to 0.1 first, as the JSON holds it, so 27.46 shows as 28 wherever it shows."""
    if value is None:
        return "-"
    value = round(value, 1)
    return f"{value:,.0f} tok/s" if value >= 10 else f"{value:.1f} tok/s"


def seconds_setting(name: str, default: float, *, zero_allowed: bool) -> float:
    """The environment variable NAME as a finite number of seconds (DEFAULT when unset); anything else exits 2."""
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and (value >= 0 if zero_allowed else value > 0)):
        bound = "0 or more" if zero_allowed else "above 0"
        raise UsageError(f"{name}={text[:40]!r}: give a number of seconds, {bound}")
    return value
