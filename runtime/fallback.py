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

from collections.abc import Callable
from dataclasses import dataclass, field

from gptoss_deploy.backends import get_backend
from gptoss_deploy.backends.base import UpOptions
from gptoss_deploy.planner.catalog import model_for, model_named
from gptoss_deploy.planner.documents import PlanDocument
from gptoss_deploy.planner.errors import BackendError
from gptoss_deploy.planner.gguf_info import GgufInfo
from gptoss_deploy.planner.hardware import HardwareReport
from gptoss_deploy.runtime import deploy
from gptoss_deploy.runtime.deploy import Progress
from gptoss_deploy.runtime.process import ServerFailed, memory_line
from gptoss_deploy.runtime.records import Attempt, Deployment
from gptoss_deploy.runtime.state import StateStore

CONTEXT_RUNGS = (65536, 32768, 16384, 8192)
KILLED_STATUS = -9                        # SIGKILL at start-up: the kernel's out-of-memory killer, as a rule
KILLED = f"exited with status {KILLED_STATUS}"     # as the copies' router logs a copy so killed
OUT_OF_MEMORY = "out of memory"
KILLED_BY_KERNEL = "killed (SIGKILL), as the out-of-memory killer does"
SMALLER_MODEL = "20b"
NO_RUNG = "none: the fallback ladder has no rung left"      # the next step of a last failed attempt


def memory_failure(err: BackendError) -> tuple[str, str] | None:
    """Whether a failed launch ran out of memory, and the line that shows it: (OUT_OF_MEMORY or KILLED_BY_KERNEL,
    line); None when nothing does. A server that never became ready is read from its status and its log's lines;
    another failure (an adapter's: Ollama refusing a model) from its message."""
    if not isinstance(err, ServerFailed):
        return (OUT_OF_MEMORY, err.message) if memory_line([err.message]) else None
    if err.returncode == KILLED_STATUS:
        return KILLED_BY_KERNEL, err.message.split(";")[0]
    if line := memory_line(err.log_lines):
        return OUT_OF_MEMORY, line
    killed = next((line for line in err.log_lines if KILLED in line), None)     # a copy the router watched
    return (KILLED_BY_KERNEL, killed) if killed else None


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
        model = model_named(plan.model)
        if not self.model_fixed and model.size != SMALLER_MODEL:
            self.changes.pop("context", None)
            return *self._again(model=SMALLER_MODEL), f"the smaller model, {model_for(SMALLER_MODEL, model.variant).name}"
        return self._cloud()

    def _cloud(self) -> tuple | None:
        cloud = next((a for a in self.first.alternatives if a.status == "cloud"), None)
        if not (self.cloud_allowed and cloud) or self.model_fixed:
            return None
        self.changes = {"backend": cloud.backend, "model": model_named(cloud.model).size, "cloud": True}
        return *self._again(), f"the cloud plan, {cloud.model} on {get_backend(cloud.backend).title} (billed)"

    def _again(self, **changes) -> tuple:
        self.changes.update(changes)
        return self.replan(dict(self.changes))


def up_stepping_down(doc: PlanDocument, options: UpOptions, store: StateStore, hw: HardwareReport | None,
                     gguf_info: GgufInfo | None, progress: Progress, ladder: Ladder | None) -> tuple[Deployment, bool]:
    """deploy.up, and while the launch runs out of memory, again one rung down LADDER (None: no fallback). The
    plans that failed are recorded on the deployment; when the ladder ends in a failure, they go with the error."""
    attempts = []
    while True:
        try:
            record, reused = deploy.up(doc, options, store, hw, gguf_info, progress)
            break
        except BackendError as err:
            seen = memory_failure(err) if ladder and doc.memory else None
            # the context that ran: a local GGUF's own limit caps the plan's at launch
            ran = min(doc.context_length, (gguf_info and gguf_info.context_length) or doc.context_length)
            below = ladder.below(doc, hw, ran) if seen else None
            if seen and (below or attempts):
                model = gguf_info.served_name if gguf_info and gguf_info.gpt_oss_size is None else doc.model
                argv = deploy.server_launch(doc, options, hw, gguf_info).argv  # as `up` ran it: the file, the port
                attempts.append(Attempt(model=model, backend=doc.backend, context_length=ran, argv=argv,
                                        failure=seen[0], log_line=seen[1], next_step=below[2] if below else NO_RUNG))
            if below is None and attempts:
                stepped = sum(a.next_step != NO_RUNG for a in attempts)
                tried = f"{stepped} smaller plan{'s' if stepped > 1 else ''}"
                ended = "has none left" if seen else "the last failed for another reason"
                raise BackendError(f"{err} (the fallback ladder tried {tried} and {ended}: see the lines above)",
                                   details={"attempts": [a.model_dump(mode="json") for a in attempts]}) from None
            if below is None:
                raise
            progress(f"{seen[0]} at context {ran:,} ({seen[1][:120]}): trying {below[2]}")
            doc, hw = below[:2]
    if attempts and not reused:
        record = deploy.save_fields(store, record.name, attempts=attempts)
    return record, reused
