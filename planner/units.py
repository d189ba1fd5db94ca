"""Units of size, and the one way each figure is shown to people."""
from __future__ import annotations

MIB = 1024**2
GIB = 1024**3
GB = 1000**3


def gib(n_bytes: float) -> str:
    return f"{n_bytes / GIB:.1f} GiB"


def tokens_per_s(value: float | None) -> str:
    """A speed as people read it: whole tokens from 10 tok/s up, one decimal below, '-' when unknown."""
    if value is None:
        return "-"
    return f"{value:,.0f} tok/s" if value >= 10 else f"{value:.1f} tok/s"
