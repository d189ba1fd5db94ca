"""LLAMA_ARG_THREADS: llama-server's own variable for its thread count (common/arg.cpp, set_env), which the server
inherits from whoever starts it. The embedded engine reads it as llama-server does; the plan predicts for it."""
from __future__ import annotations

import os

from gptoss_deploy.planner.errors import UsageError

THREADS_VARIABLE = "LLAMA_ARG_THREADS"


def engine_threads() -> int | None:
    """The threads the user gave llama-server; None: unset, and the engine runs one a physical core."""
    value = os.environ.get(THREADS_VARIABLE, "")
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise UsageError(f"{THREADS_VARIABLE}={value[:20]!r}: a number of threads, 1 or more, or unset")
    return int(value)
