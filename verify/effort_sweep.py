"""The reasoning-effort profile (`gptoss bench --effort-sweep`): the shipped task set (effort_tasks.toml) asked at
low, medium and high effort, one request at a time, each answered to its natural end. Per effort: reasoning and
answer tokens (the stream's channels apart), time to the first answer token (not the first reasoning token),
end-to-end latency, the cost at the plan's price, and how many answers were right.
"""
from __future__ import annotations

import re
import statistics
import time
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import resources

from gptoss_deploy.backends.streaming import OutOfTime, Sample, StreamClient, one_decimal
from gptoss_deploy.planner.catalog import REASONING_EFFORTS
from gptoss_deploy.verify.bench import spent

MAX_TOKENS = 4096        # room for high effort's reasoning on these short tasks; a reply cut off before it answers
                         # counts as wrong and is reported
BUDGET_S = 600.0         # the whole sweep's wall time (--budget, GPTOSS_SWEEP_BUDGET_S): 24 replies of up to 4,096
                         # tokens take over an hour on a slow machine


@dataclass(frozen=True)
class Task:
    prompt: str
    answer: str                  # a regular expression: what an answer looks like; the reply's last match is judged
    accept: tuple[str, ...]

    def is_right(self, reply: str) -> bool:
        """The last text in REPLY that looks like an answer is one of the accepted, compared as _plain."""
        answers = [m.group() for m in re.finditer(self.answer, reply, re.IGNORECASE)]
        return bool(answers) and _plain(answers[-1]) in {_plain(a) for a in self.accept}


def _plain(answer: str) -> str:
    """ANSWER without case or spaces, "and" in a list read as a comma: "3, 7, 19 and 42" is "3,7,19,42"."""
    return re.sub(r"\s+", "", re.sub(r",?\s*\band\b", ",", answer.lower()))


def load_tasks() -> list[Task]:
    with resources.files(__package__).joinpath("effort_tasks.toml").open("rb") as shipped:
        return [Task(t["prompt"], t["answer"], tuple(t["accept"])) for t in tomllib.load(shipped)["task"]]


@dataclass(frozen=True)
class TaskReply:
    """One task's reply at one effort: right or not, and what it spent."""
    prompt: str
    right: bool
    answer: str                      # its first 200 characters
    reasoning_tokens: int
    answer_tokens: int
    first_answer_ms: float | None    # None: it reached the token limit before it answered
    e2e_ms: float | None


@dataclass(frozen=True)
class EffortRow:
    """One effort over the tasks every effort answered: totals of tokens, medians of times."""
    effort: str
    correct: int
    unanswered: int
    reasoning_tokens: int
    answer_tokens: int
    first_answer_ms: float | None
    e2e_ms: float | None
    cost_usd: float | None
    tasks: list[TaskReply]


@dataclass(frozen=True)
class EffortSweep:
    """The `effort_sweep` document: the efforts side by side on the same TASKS, and why there are fewer than
    shipped where the run STOPPED early ("budget" or "interrupted")."""
    tasks: int
    tasks_shipped: int
    max_tokens: int
    budget_s: float
    wall_s: float
    stopped: str | None
    efforts: list[EffortRow]
    notes: list[str]
    name: str | None = None          # the deployment swept; None: a URL

    def to_json(self) -> dict:
        document = asdict(self)
        name = document.pop("name")
        return {"name": name, **document} if name else document


def sweep(client_for: Callable[[str], StreamClient], price: dict | None, max_tokens: int = MAX_TOKENS,
          budget_s: float = BUDGET_S, progress: Callable[[str], None] = lambda _: None) -> EffortSweep:
    """Ask every task at every effort through CLIENT_FOR(effort).

    Each task is asked at the three efforts in turn, so that when the BUDGET_S wall time runs out or Ctrl-C stops it,
    every effort has answered the same tasks: the document compares those (`stopped` says why there are fewer)."""
    tasks = load_tasks()
    clients = {effort: client_for(effort) for effort in REASONING_EFFORTS}
    replies: dict[str, list[Sample]] = {effort: [] for effort in REASONING_EFFORTS}
    started = time.monotonic()
    stopped = None
    try:
        for number, task in enumerate(tasks, 1):
            for effort in REASONING_EFFORTS:
                progress(f"effort {effort}: task {number}/{len(tasks)}")
                replies[effort].append(clients[effort].stream(task.prompt, max_tokens, started + budget_s,
                                                              fixed_length=False))
    except OutOfTime:
        stopped = "budget"
    except KeyboardInterrupt:
        stopped = "interrupted"
    done = min(len(r) for r in replies.values())        # the tasks every effort answered
    efforts = ([_summary(effort, tasks[:done], replies[effort][:done], price) for effort in REASONING_EFFORTS]
               if done else [])
    return EffortSweep(done, len(tasks), max_tokens, budget_s, round(time.monotonic() - started, 1), stopped, efforts,
                       _notes(efforts, price, max_tokens, _stop_note(stopped, done, len(tasks), budget_s)))


def _stop_note(stopped: str | None, done: int, shipped: int, budget_s: float) -> str | None:
    if stopped is None:
        return None
    why = f"reached its {budget_s:g} s budget (--budget)" if stopped == "budget" else "was interrupted"
    return f"the sweep {why} after {done} of {shipped} tasks: each effort is compared on those {done}"


def _summary(effort: str, tasks: list[Task], replies: list[Sample], price: dict | None) -> EffortRow:
    rows = [TaskReply(task.prompt, task.is_right(reply.answer), reply.answer.strip()[:200], reply.reasoning_tokens,
                      reply.answer_tokens, one_decimal(reply.answer_ttft_ms), one_decimal(reply.e2e_ms))
            for task, reply in zip(tasks, replies)]
    answered = [r.answer_ttft_ms for r in replies if r.answer_ttft_ms is not None]
    return EffortRow(effort, sum(row.right for row in rows), len(replies) - len(answered),
                     sum(r.reasoning_tokens for r in replies), sum(r.answer_tokens for r in replies),
                     one_decimal(statistics.median(answered)) if answered else None,
                     one_decimal(statistics.median(r.e2e_ms for r in replies)),
                     spent(replies, price, sum(r.e2e_ms for r in replies) / 1000)["cost_usd"], rows)


def _notes(efforts: list[EffortRow], price: dict | None, max_tokens: int, stop: str | None) -> list[str]:
    notes = [stop] if stop else []
    if not any(e.reasoning_tokens for e in efforts):
        notes.append("no reply had a reasoning channel: this model or server ignores reasoning effort (gpt-oss "
                     "reasons at every effort), so the rows differ by chance only")
    cut = sum(e.unanswered for e in efforts)
    if cut:
        notes.append(f"{cut} replies reached --max-tokens {max_tokens} before they answered (counted wrong): "
                     "raise it to see what those efforts get right")
    if not price:
        notes.append("no cost: no price is known for this endpoint (a local plan's cost is the machine's time)")
    return notes
