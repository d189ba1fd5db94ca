"""The fallback ladder's first rung: a local launch that fails for want of memory is planned again at the next
smaller context, and `gptoss-up` says so at each step; failures a smaller plan cannot fix (a missing program, a
taken port, a bad flag) end the launch as before.
"""
from __future__ import annotations

CONTEXT_RUNGS = (65536, 32768, 16384, 8192)
# What the engines print when memory runs out: llama.cpp's ggml allocators ("failed to allocate buffer"), CUDA's
# and torch's "out of memory", vLLM's KV-cache check ("No available memory for the cache blocks").
OUT_OF_MEMORY_SIGNS = ("failed to allocate", "out of memory", "no available memory for the cache blocks")
KILLED = "exited with status -9"          # SIGKILL at start-up: the kernel's out-of-memory killer, as a rule


def memory_failure(message: str) -> str | None:
    """The line of a failed launch's message (with its log tail, lines joined by ' | ') that shows memory ran out;
    None when nothing in it does."""
    for line in message.split(" | "):
        if any(sign in line.lower() for sign in OUT_OF_MEMORY_SIGNS):
            return line.strip()
    return "the server was killed (SIGKILL), as the out-of-memory killer does" if KILLED in message else None


def smaller_context(context: int) -> int | None:
    """The next rung below CONTEXT, or None at the bottom of the ladder."""
    return next((rung for rung in CONTEXT_RUNGS if rung < context), None)
