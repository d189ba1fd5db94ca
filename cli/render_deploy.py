"""Human output for deployments: how to call the endpoint, the benchmark against the prediction, the list."""
from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from gptoss_deploy.backends.masking import masked_env
from gptoss_deploy.cli.output import say
from gptoss_deploy.cli.render import launch_command
from gptoss_deploy.planner.documents import PlanDocument, Predicted
from gptoss_deploy.planner.units import gib, size, tokens_per_s
from gptoss_deploy.runtime.engine_memory import PART_WORDS, WHERE_WORDS
from gptoss_deploy.runtime.records import Benchmark, Deployment, EngineMemory
from gptoss_deploy.verify.measure import UNTRUSTED

if TYPE_CHECKING:
    from gptoss_deploy.verify.effort_sweep import EffortSweep

BAR_WIDTH = 8             # the sweep's table fits an 80-column terminal
VERDICT_STYLE = {"pass": "green", "fail": "red", "invalid": "yellow", "unstable": "yellow"}


def render_dry_run(console: Console, doc: PlanDocument, launch) -> None:
    console.print(f"[bold]Dry run[/]: {doc.model} on {doc.backend} (nothing was started)")
    for download in launch.downloads:
        what = f"{download['repo']} {', '.join(download['files'])}"
        size = f"{gib(download['bytes'])} to download" if download["missing"] else "already downloaded"
        say(console, f"  download: {what} ({size})")
    for warning in launch.warnings + ([launch.unavailable] if launch.unavailable else []):
        console.print(f"  [yellow]warning[/]: {escape(warning)}", soft_wrap=True)
    if launch.argv:
        say(console, f"  {launch_command({'argv': launch.argv, 'env': masked_env(launch.env)}, doc.backend)}")
    for command in launch.commands:
        say(console, f"  runs: {shlex.join(command)}")
    say(console, f"  endpoint: {launch.base_url} (model {launch.served_model})")


def render_dry_run_api(console: Console, doc: PlanDocument) -> None:
    console.print(f"[bold]Dry run[/]: {doc.model} on {doc.backend} (nothing was called)")
    say(console, f"  {launch_command({'api': doc.launch.api}, doc.backend)}")


def dry_run_json(doc: PlanDocument, launch, prerequisites: list[dict], yardstick: Predicted | None = None) -> dict:
    """YARDSTICK: a GGUF of another model's own prediction (the plan's figures are gpt-oss's)."""
    return {"dry_run": True, "argv": launch.argv, "env": masked_env(launch.env), "downloads": launch.downloads,
            "warnings": launch.warnings, "unavailable": launch.unavailable, "prerequisites": prerequisites,
            "endpoint": {"base_url": launch.base_url, "model": launch.served_model},
            **({"commands": launch.commands} if launch.commands else {}),
            **({"yardstick": yardstick.model_dump(mode="json", exclude_unset=True)} if yardstick else {}),
            "plan": doc.to_json()}


def render_deployment(console: Console, record: Deployment, reused: bool) -> None:
    """The deployment as its backend describes it, then its benchmark."""
    from gptoss_deploy.backends import get_backend

    description = get_backend(record.backend).describe(record=record, reused=reused)
    console.print(f"[bold green]{escape(record.name)}[/] {escape(description.status)}")
    for warning in record.warnings:
        console.print(f"[yellow]warning[/]: {escape(warning)}", soft_wrap=True)
    if record.attempts:     # the plan that runs is smaller than the one asked for
        steps = " -> ".join(a.next_step for a in record.attempts)
        console.print(f"[yellow]stepped down[/]: {len(record.attempts)} plan(s) ran out of memory first; the fallback "
                      f"ladder tried {escape(steps)} (each attempt: gptoss status --json)", soft_wrap=True)
    for line in description.lines:
        say(console, line)
    if record.memory:
        render_engine_memory(console, record.memory)
    if record.benchmark:
        render_benchmark(console, record.benchmark)


def render_engine_memory(console: Console, memory: EngineMemory) -> None:
    """The plan's memory beside the engine's own report of it, a row per figure."""
    table = Table(title="Memory", caption=f"the engine's figures: {memory.source}", show_header=True,
                  header_style="bold")
    for column in ("", "planned", "engine"):
        table.add_column(column, justify="right" if column else "left")
    for figure in memory.figures:
        table.add_row(f"{PART_WORDS[figure.part]} {WHERE_WORDS[figure.where]}", size(figure.planned_bytes),
                      Text(size(figure.reported_bytes), style="yellow" if figure.off_plan else ""))
    console.print(table)


def render_benchmark(console: Console, bench: Benchmark) -> None:
    table = Table(title="Benchmark", show_header=True, header_style="bold")
    for column in ("", "measured", "predicted"):
        table.add_column(column, justify="right" if column else "left")
    table.add_row("decode (single stream)", tokens_per_s(bench.decode_tokens_per_s),
                  tokens_per_s(bench.predicted_decode_tokens_per_s))
    if bench.server_decode_tokens_per_s is not None:
        table.add_row("decode (server's own timing)", tokens_per_s(bench.server_decode_tokens_per_s), "")
    table.add_row("time to first token", f"{bench.ttft_ms:,.0f} ms" if bench.ttft_ms is not None else "-", "")
    table.add_row(f"aggregate ({bench.concurrency} streams)", tokens_per_s(bench.aggregate_tokens_per_s), "")
    speeds = [s.decode_tokens_per_s for s in bench.samples if s.decode_tokens_per_s is not None]
    if speeds:   # the spread and the load say whether the run was noisy
        table.add_row("each single-stream run", " / ".join(f"{v:.1f}" for v in speeds), "")
        if len(speeds) > 1 and min(speeds):
            table.add_row("fastest run / slowest run", f"{max(speeds) / min(speeds):.1f}x", "")
    if bench.load_average_1m is not None:
        table.add_row("machine load while measuring", f"{bench.load_average_1m:.1f} (1-minute average)", "")
    if bench.wall_s is not None:
        table.add_row("time the run took", f"{bench.wall_s:.0f} s", "")
    if bench.roofline_efficiency is not None:
        table.add_row("share of the bandwidth roofline", f"{bench.roofline_efficiency:.0%}", "")
    if bench.spent and bench.spent.cost_usd is not None:
        table.add_row("cost of this benchmark", f"${bench.spent.cost_usd:.4f}", "")
    console.print(table)
    style = VERDICT_STYLE[bench.verdict]
    console.print(f"verdict: [{style}]{bench.verdict}[/]")
    for reason in bench.reasons:
        say(console, f"  - {reason}")


def render_status(console: Console, records: list[Deployment]) -> None:
    """Two lines a deployment, its name and its address each whole on one (a table would fold them at 80
    columns); a benchmark figure that could not be measured is marked as such."""
    if not records:
        console.print("No deployments are running. Start one with `gptoss-up`.")
        return
    for r in records:
        pid = f"  pid {r.pid}" if r.pid else ""
        say(console, f"{r.name}  {r.state}{pid}  decode {_decode(r.benchmark)}")
        where = r.endpoint.base_url or f"{r.backend} {r.endpoint.region or ''}".strip()
        say(console, f"  {where}")


def _decode(bench: Benchmark | None) -> str:
    if bench is None:
        return "not measured"
    figure = tokens_per_s(bench.decode_tokens_per_s)
    return f"{figure} ({bench.verdict}: not this deployment's speed)" if bench.verdict in UNTRUSTED else figure


def render_effort_sweep(console: Console, sweep: EffortSweep) -> None:
    """One row per effort, with bars for the reasoning it spent and the time it took, then the notes."""
    from rich.bar import Bar

    efforts = sweep.efforts
    if not efforts:                              # stopped before one task was answered at every effort
        for note in sweep.notes:
            say(console, f"  - {note}")
        return
    most_reasoning = max(e.reasoning_tokens for e in efforts) or 1
    longest = max(e.e2e_ms or 0 for e in efforts) or 1
    table = Table(title=f"Reasoning effort: {sweep.tasks} tasks each (tokens: totals; times: medians, to the first "
                        "answer token and to the end)",
                  show_header=True, header_style="bold", box=box.SIMPLE_HEAD, padding=0)
    for column in ("effort", "right", "reasoning", "", "answer", "to answer", "to end", "", "cost"):
        table.add_column(column, justify="left" if column in ("effort", "") else "right", no_wrap=True,
                         width=None if column else BAR_WIDTH, min_width=len(column) or None)
    first_answers, ends = _times([e.first_answer_ms for e in efforts]), _times([e.e2e_ms for e in efforts])
    for e, first_answer, end in zip(efforts, first_answers, ends):
        table.add_row(e.effort, f"{e.correct}/{sweep.tasks}", f"{e.reasoning_tokens:,}",
                      Bar(most_reasoning, 0, e.reasoning_tokens, width=BAR_WIDTH, color="magenta"),
                      f"{e.answer_tokens:,}", first_answer, end,
                      Bar(longest, 0, e.e2e_ms or 0, width=BAR_WIDTH, color="cyan"),
                      "-" if e.cost_usd is None else f"${e.cost_usd:.4f}")
    console.print(table)
    for note in sweep.notes:
        say(console, f"  - {note}")


def _times(column: list[float | None]) -> list[str]:
    """A column of milliseconds in one unit, so that its rows compare at a glance: ms while all are under a second."""
    in_ms = all(ms < 1000 for ms in column if ms is not None)
    return ["-" if ms is None else f"{ms:.0f} ms" if in_ms else f"{ms / 1000:,.1f} s" for ms in column]
