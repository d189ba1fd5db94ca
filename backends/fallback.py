"""The fallback ladder: a local launch that fails for want of memory is tried again with a smaller plan, one rung at a
time, and `gptoss-up` says so at each step:
  1. the next smaller context (CONTEXT_RUNGS);
  2. at the smallest, a leaner launch of the same plan (the backend's own: more MoE experts in RAM for llama.cpp,
     a lower --gpu-memory-utilization for vLLM), as long as there is one;
  3. the smaller model, gpt-oss-20b, from the context it is planned at (unless the model is a given GGUF file);
  4. only where the user allowed cloud (--cloud, GPTOSS_CLOUD, a profile's `cloud = true`), the first plan's best
     cloud alternative (the model first asked for, hosted).
Failures a smaller plan cannot fix (a missing program, a taken port, a bad flag) end the launch as before.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from gptoss_deploy.backends import get_backend

CONTEXT_RUNGS = (65536, 32768, 16384, 8192)
# What the engines print when memory runs out: llama.cpp's ggml allocators ("insufficient memory (attempted to
# allocate ...)", "failed to allocate buffer"), CUDA's and torch's "out of memory", vLLM's KV-cache check ("No
# available memory for the cache blocks") and its start-up check of free memory against --gpu-memory-utilization;
# Ollama's refusal of a model larger than memory.
OUT_OF_MEMORY_SIGNS = ("insufficient memory", "failed to allocate", "out of memory",
                       "no available memory for the cache blocks", "less than desired gpu memory utilization",
                       "requires more system memory")
KILLED = "exited with status -9"          # SIGKILL at start-up: the kernel's out-of-memory killer, as a rule
OUT_OF_MEMORY = "out of memory"
KILLED_BY_KERNEL = "killed (SIGKILL), as the out-of-memory killer does"
SMALLER_MODEL = "20b"
NO_RUNG = "none: the fallback ladder has no rung left"      # the next step of a last failed attempt


def memory_line(lines: Iterable[str]) -> str | None:
    """The first of LINES (an engine's output) that shows memory ran out, or None."""
    return next((line.strip() for line in lines if any(sign in line.lower() for sign in OUT_OF_MEMORY_SIGNS)), None)


def memory_failure(message: str) -> tuple[str, str] | None:
    """What went wrong in a failed launch whose MESSAGE (with its log tail, lines joined by ' | ') shows memory ran
    out, and the line that shows it: (OUT_OF_MEMORY or KILLED_BY_KERNEL, line); None when nothing in it does."""
    lines = message.split(" | ")
    if line := memory_line(lines):
        return OUT_OF_MEMORY, line
    killed = next((line.strip() for line in lines if KILLED in line), None)
    return (KILLED_BY_KERNEL, killed.split(";")[0]) if killed else None


def smaller_context(context: int) -> int | None:
    """The next rung below CONTEXT, or None at the bottom of the ladder."""
    return next((rung for rung in CONTEXT_RUNGS if rung < context), None)


@dataclass
class Ladder:
    """The rungs below a plan. REPLAN(changes) plans again with CHANGES over the user's planning flags and returns
    (plan, hardware); MODEL_FIXED: the model is a given file (no smaller model, no cloud)."""

    replan: Callable[[dict], tuple]
    cloud_allowed: bool
    model_fixed: bool
    changes: dict = field(default_factory=dict)
    first: object = None                  # the plan the ladder began below: its cloud alternatives are the last rung

    def below(self, plan, hardware, context_ran: int) -> tuple | None:
        """(plan, hardware, the change in words) one rung below PLAN, which ran at CONTEXT_RAN; None at the bottom."""
        self.first = self.first or plan
        if get_backend(plan.backend).cloud:
            return None
        smaller = smaller_context(context_ran)
        if smaller:
            return *self._again(context=smaller), f"context {smaller:,}"
        leaner = get_backend(plan.backend).leaner(plan)
        if leaner:
            return leaner[0], hardware, leaner[1]
        if not self.model_fixed and plan.model != f"gpt-oss-{SMALLER_MODEL}":
            self.changes.pop("context", None)
            return *self._again(model=SMALLER_MODEL), f"the smaller model, gpt-oss-{SMALLER_MODEL}"
        return self._cloud()

    def _cloud(self) -> tuple | None:
        cloud = next((a for a in self.first.alternatives if a.status == "cloud"), None)
        if not (self.cloud_allowed and cloud) or self.model_fixed:
            return None
        self.changes = {"backend": cloud.backend, "model": cloud.model.removeprefix("gpt-oss-"), "cloud": True}
        return *self._again(), f"the cloud plan, {cloud.model} on {get_backend(cloud.backend).title} (billed)"

    def _again(self, **changes) -> tuple:
        self.changes.update(changes)
        return self.replan(dict(self.changes))
