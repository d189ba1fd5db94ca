"""Human output with rich: the plan, its memory breakdown per device, the reasons and the runners-up."""
from __future__ import annotations

import shlex
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from gptoss_deploy.cli.output import say

from gptoss_deploy.planner.documents import Memory, PlanDocument, Price
from gptoss_deploy.planner.hardware import HardwareReport
from gptoss_deploy.planner.plan import Plan
from gptoss_deploy.planner.profiles import LoadedProfile
from gptoss_deploy.planner.units import gib, tokens_per_s

STATUS_STYLE = {"ok": "green", "degraded": "yellow", "cloud": "cyan"}


def launch_command(launch: dict, backend: str) -> str:
    """The launch as one line: a server's environment assignments and argv, quoted; or the cloud API call."""
    if "argv" not in launch:
        from gptoss_deploy.backends import get_backend

        return get_backend(backend).describe_call(launch["api"])
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in launch.get("env", {}).items())
    return (env + " " if env else "") + shlex.join(launch["argv"])


def _launch_here(doc: PlanDocument, hardware: HardwareReport) -> dict:
    """The plan's launch with the command this installation would run in place of the plan's own."""
    launch = doc.launch.model_dump(exclude_unset=True)
    if "argv" in launch:
        from gptoss_deploy.backends import get_backend

        launch["argv"] = get_backend(doc.backend).command_here(plan=doc, hardware=hardware)
    return launch


def render_prerequisites(console: Console, prerequisites: list[dict]) -> None:
    console.print("Needs here:")
    for item in prerequisites:
        mark = "[green]ok[/]     " if item["met"] else "[red]missing[/]"
        console.print(f"  {mark} {escape(item['need'])}" + (f": {escape(item['fix'])}" if item["fix"] else ""),
                      soft_wrap=True)


def _render_capacity(console: Console, capacity: dict) -> None:
    console.print("Capacity:")
    if capacity.get("streams_per_replica") is None:
        say(console, f"  {capacity['why']}")
        return
    say(console, f"  one replica ({capacity['gpus_per_replica']} GPU(s)): {tokens_per_s(capacity['replica_tokens_per_s'])} "
                 f"of output at {capacity['streams_per_replica']} concurrent requests")
    if capacity["replicas"] is not None:
        say(console, f"  {capacity['replicas']} replica(s), {capacity['gpus']} GPU(s), for "
                     f"{capacity['target_tokens_per_s']:,.0f} tok/s with {capacity['headroom']:.0%} headroom")
    if capacity["usd_per_hour"] is None:
        say(console, "  cost: give --usd-per-gpu-hour (no prices ship: they differ by cloud, region and contract)")
    else:
        say(console, f"  cost: ${capacity['usd_per_hour']:,.2f} per hour, ${capacity['usd_per_1m_output_tokens']:,.3f} "
                     f"per 1M output tokens at {capacity['target_tokens_per_s'] or capacity['replica_tokens_per_s']:,.0f} "
                     f"tok/s (${capacity['usd_per_gpu_hour']:g} per GPU-hour)")
    say(console, f"  {capacity['why']}")


def _aggregate(predicted) -> str:
    if predicted.aggregate_tokens_per_s is None:
        return ""
    return f"; {tokens_per_s(predicted.aggregate_tokens_per_s)} over {predicted.aggregate_streams} streams"


def render_plan(console: Console, plan: Plan, doc_json: dict, next_step, verbose: bool = False) -> None:
    """The decision and how to carry it out first, then why, the memory, the command and the runners-up (the best
    few, or with VERBOSE all of them and what does not fit)."""
    doc = plan.document()
    style = STATUS_STYLE[doc.status]
    console.print(f"[bold]{doc.model}[/] on [bold]{escape(doc.backend)}[/]  [{style}]{doc.status}[/]  context "
                  f"{doc.context_length:,}  effort {doc.reasoning_effort}  (profile {escape(doc.profile)})")
    decode = tokens_per_s(doc.predicted.decode_tokens_per_s)
    if doc.memory:
        console.print(f"Predicted: decode [bold]{decode}[/], "
                      f"prefill {tokens_per_s(doc.predicted.prefill_tokens_per_s)} (single stream, short prompt)"
                      + _aggregate(doc.predicted))
    elif doc.predicted.decode_tokens_per_s is not None:   # managed cloud compute: a GPU size we picked
        console.print(f"Predicted: decode [bold]{decode}[/] on {escape(doc.launch.api['gpus'])} "
                      "(single stream, short prompt)")
    if doc.price:
        say(console, f"Price: {_price(doc.price)}")
    console.print(f"Binding constraint: [bold]{escape(doc.binding_constraint)}[/]")
    say(console, next_step.label)
    say(console, f"  {next_step.command}")
    if not next_step.elsewhere:
        render_prerequisites(console, doc_json["prerequisites"])
    if "capacity" in doc_json:
        _render_capacity(console, doc_json["capacity"])
    console.print("Why:")
    for reason in doc.reasons:
        say(console, f"  - {reason}")
    if doc.memory:
        console.print(_memory_table(doc.memory, plan.hardware))
        for line in MEMORY_LEGEND if verbose else ():
            say(console, line)
    if next_step.elsewhere:
        say(console, "Command on each node:")
        say(console, f"  {launch_command(doc.launch.model_dump(exclude_unset=True), doc.backend)}")
    else:
        say(console, "Command that will run here:" if "argv" in doc.launch.model_fields_set else "What it calls:")
        say(console, f"  {launch_command(_launch_here(doc, plan.hardware), doc.backend)}")
    if verbose and (doc.alternatives or doc.rejected):
        console.print(_runners_up_table(doc))
    elif doc.alternatives or doc.rejected:
        _render_runners_up(console, doc)


RUNNERS_UP_SHOWN = 3


def _render_runners_up(console: Console, doc: PlanDocument) -> None:
    """The best few runners-up, a line each; how many more there are, and how to see them."""
    shown = doc.alternatives[:RUNNERS_UP_SHOWN]
    more = len(doc.alternatives) - len(shown) + len(doc.rejected)
    say(console, "Runners-up" + (f" ({more} more, and why each lost or does not fit: --verbose):" if more else ":"))
    for alt in shown:
        decode = alt.predicted.decode_tokens_per_s
        speed = f", {tokens_per_s(decode)}" if decode is not None else ""
        say(console, f"  {alt.model} on {alt.backend}, {alt.status}{speed}: {alt.lost_because}")


def _price(price: Price) -> str:
    if price.usd_per_1m_input_tokens is not None:
        return (f"${price.usd_per_1m_input_tokens:.2f} per 1M input tokens, "
                f"${price.usd_per_1m_output_tokens:.2f} per 1M output tokens; {price.note}")
    if price.usd_per_hour is not None:
        return f"${price.usd_per_hour:.2f} per hour while it runs; {price.note}"
    return price.note


MEMORY_LEGEND = (
    "  weights   the model's tensors kept on that device",
    "  KV cache  attention keys and values for the whole context",
    "  compute   scratch buffers for one batch of tokens",
    "  runtime   the engine's own: CUDA, ROCm or Metal context",
    "  cache     llama-server's prompt cache and context checkpoints in RAM (--cache-ram, --ctx-checkpoints),",
    "            sized from what the plan leaves; none on unified memory or where RAM is tight",
    "  used      the sum of those (the JSON's used_bytes)",
    "  headroom  left free on purpose: a safety margin",
    "  free      what the device has free now; unified: the GPU and CPU share it, counted once",
)


def _memory_table(memory: Memory, hw: HardwareReport) -> Table:
    """One row per device (GiB, no unit to fold away); on unified memory the GPU and the CPU share one pool, which
    is counted once."""
    table = Table(title="Memory, GiB", title_justify="left", pad_edge=False, collapse_padding=True)
    devices = [("RAM" if d.device == "cpu" else d.device, d.breakdown.model_dump(), d.available_bytes)
               for d in memory.devices]
    total = {term: sum(b[term] for _, b, _ in devices) for term in (*_USED, "headroom")}
    used_terms = [term for term in _USED if term != "cache" or total["cache"]]   # a cache column where there is one
    for column in ("device", *(_COLUMNS[t] for t in used_terms), "used", "headroom", "free"):
        table.add_column(column, justify="left" if column == "device" else "right", no_wrap=True)
    if any(g.unified_memory for g in hw.gpus):   # the GPU's share and the CPU's come out of the same RAM
        rows = [("unified", total, hw.memory.available_bytes)]
    else:
        rows = devices + ([("total", total, memory.gpu_available_bytes + memory.cpu_available_bytes)]
                          if len(devices) > 1 else [])
    for label, b, free in rows:
        used = sum(b[term] for term in _USED)                   # the JSON's used_bytes: headroom is not used
        shown = f"[red]{_g(used)}[/]" if used + b["headroom"] > free else _g(used)
        table.add_row(label, *(_g(b[term]) for term in used_terms), shown, _g(b["headroom"]), _g(free),
                      style="bold" if label == "total" else None)
    return table


_USED = ("weights", "kv_cache", "compute", "runtime", "cache")
_COLUMNS = {"weights": "weights", "kv_cache": "KV cache", "compute": "compute", "runtime": "runtime", "cache": "cache"}


def _g(size: int) -> str:
    return f"{size / 2**30:.1f}"


def _runners_up_table(doc: PlanDocument) -> Table:
    table = Table(title="Runners-up", title_justify="left")
    for column in ("model", "backend", "status", "decode", "why it lost"):
        table.add_column(column)
    for alt in doc.alternatives:
        table.add_row(alt.model, Text(alt.backend), alt.status, tokens_per_s(alt.predicted.decode_tokens_per_s),
                      Text(alt.lost_because))
    for rejected in doc.rejected:
        table.add_row(rejected.model, Text(rejected.backend), "[red]does not fit[/]", "-", Text(rejected.reason))
    return table


def render_hardware(console: Console, hw: HardwareReport) -> None:
    console.print(f"[bold]{escape(hw.cpu.model)}[/]: {hw.cpu.physical_cores} cores / {hw.cpu.logical_cores} "
                  f"threads, {hw.os} {escape(hw.arch)}")
    console.print(f"RAM: {gib(hw.memory.available_bytes)} available of {gib(hw.memory.total_bytes)}")
    table = Table(title="GPUs", title_justify="left")
    for column in ("#", "name", "free", "total", "bandwidth", "compute capability", "unified"):
        table.add_column(column)
    for gpu in hw.gpus:
        table.add_row(str(gpu.index), Text(gpu.name), gib(gpu.memory_free_bytes), gib(gpu.memory_total_bytes),
                      f"{gpu.memory_bandwidth_gbps:g} GB/s" if gpu.memory_bandwidth_gbps else "-",
                      Text(gpu.compute_capability or "-"), "yes" if gpu.unified_memory else "no")
    if hw.gpus:
        console.print(table)
    if hw.disk:
        say(console, f"Disk: {gib(hw.disk.free_bytes)} free at {hw.disk.path}")
    for note in hw.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")


def render_profiles(console: Console, profiles: list[LoadedProfile], user_dir: Path) -> None:
    table = Table(title="Profiles", title_justify="left")
    for column in ("name", "source", "description"):
        table.add_column(column)
    for loaded in profiles:
        table.add_row(Text(loaded.name), Text(loaded.source), Text(loaded.profile.description))
    console.print(table)
    say(console, f"Add your own as TOML files in {user_dir}")


def render_backends(console: Console, backends: list[dict]) -> None:
    """A table of what each is and whether it is ready; below it, the fix for each that is not, whole on its line
    (in a table cell an address or a command would fold or be cut)."""
    table = Table(title="Backends", title_justify="left")
    for column in ("name", "kind", "what it is", "here"):
        table.add_column(column, no_wrap=column != "what it is")
    for backend in backends:
        here = "[yellow]not ready: see below[/]" if backend["unavailable"] else "[green]ready[/]"
        table.add_row(backend["name"], backend["kind"], Text(backend["title"]), here)
    console.print(table)
    for backend in backends:
        if backend["unavailable"]:
            say(console, f"{backend['name']}: {backend['unavailable']}")
