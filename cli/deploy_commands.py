"""The deployment commands: up, status, down, bench. Each parses flags, calls the backends library, hands the
result to Output."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from collections.abc import Mapping
from typing import Annotated, Optional

import typer

from gptoss_deploy.cli.options import (SETTINGS, BackendOpt, CloudOpt, ContextOpt, EffortOpt, HardwareOpt, JsonOpt,
                                       LocalOpt, ModelOpt, NoCalibrationOpt, ProfileOpt, VariantOpt, calibrated,
                                       hardware_report, planning_flags, with_cloud_settings)
from gptoss_deploy.cli.output import Output, say
from gptoss_deploy.planner.errors import UsageError

NameArg = Annotated[Optional[str], typer.Argument(metavar="NAME", help="Deployment name (see `gptoss status`).")]
MinDecodeOpt = Annotated[Optional[float], typer.Option(
    "--min-decode-tps", metavar="TOKENS_PER_S", help="Fail (exit 5) when single-stream decode is below this many tokens/s.")]
MinAggregateOpt = Annotated[Optional[float], typer.Option(
    "--min-aggregate-tps", metavar="TOKENS_PER_S", help="Fail (exit 5) when aggregate tokens/s over concurrent streams is below this.")]
MaxTtftOpt = Annotated[Optional[float], typer.Option(
    "--max-ttft-ms", metavar="MS", help="Fail (exit 5) when the median time to first token is above this.")]


def _gates(min_decode, min_aggregate, max_ttft):
    from gptoss_deploy.verify.bench import Gates

    return Gates(min_decode, min_aggregate, max_ttft)


def _budget() -> float:
    from gptoss_deploy.verify.bench import budget_s

    return budget_s()


def _store():
    from gptoss_deploy.runtime.state import StateStore, state_dir

    return StateStore(state_dir(), notify=Output.note)


def _up_plan(profile, flags: dict, hardware: Optional[Path], plan_file, gguf_info, launching: bool,
             no_calibration: bool):
    """The plan `up` applies, and the machine it runs on (read once: --hardware, else probed; none for cloud).
    LAUNCHING: a --hardware file must describe this machine (a dry run, or --force, may plan for another).
    NO_CALIBRATION: predict from the model alone, not this machine's kept benchmarks."""
    from gptoss_deploy.backends import REGISTRY, get_backend, load_saved_plan
    from gptoss_deploy.planner.constraints import for_gguf, load_constraints
    from gptoss_deploy.planner.plan import plan

    if plan_file:
        if profile or hardware or any(v is not None for v in flags.values()):
            raise UsageError("--plan applies a saved plan as it is: drop the planning flags, or drop --plan")
        doc = load_saved_plan(plan_file)
        backend = get_backend(doc.backend)
        hw = None if backend.cloud else hardware_report(None)
    else:
        constraints = load_constraints(profile, flags, os.environ, REGISTRY)
        if gguf_info is not None:
            constraints = for_gguf(constraints, gguf_info, REGISTRY)
        hw = hardware_report(hardware)
        doc = plan(hw, calibrated(constraints, hw, no_calibration), REGISTRY).document()
        backend = get_backend(doc.backend)
        if hardware and launching and not backend.cloud:
            _require_this_machine(hardware, hw)
    if gguf_info is not None and not backend.serves_gguf_files:
        serving = ", ".join(b.title for b in REGISTRY.values() if b.serves_gguf_files)
        raise UsageError(f"--gguf runs on {serving} and the saved plan is for {doc.backend}")
    return doc, hw


def _require_this_machine(path: Path, described) -> None:
    from gptoss_deploy.planner.hardware import differences
    from gptoss_deploy.planner.probe import probe

    found = differences(described, probe())
    if found:
        raise UsageError(f"--hardware {path} describes another machine ({'; '.join(found)}): its plan would not "
                         "run here; drop --hardware to plan for this machine, add --dry-run to see that machine's "
                         "launch, or --force to launch it anyway")


@with_cloud_settings(at_plan_only=False)
def up_command(profile: ProfileOpt = None, model: ModelOpt = None, variant: VariantOpt = None,
               backend: BackendOpt = None,
               context: ContextOpt = None, reasoning_effort: EffortOpt = None, local: LocalOpt = False, cloud: CloudOpt = False,
               hardware: HardwareOpt = None,
               plan_file: Annotated[Optional[Path], typer.Option("--plan", metavar="FILE", help="Apply a plan saved from `gptoss-plan --json`.")] = None,
               gguf: Annotated[Optional[Path], typer.Option("--gguf", metavar="FILE", help="Serve this local GGUF file instead of downloading one.")] = None,
               name: Annotated[Optional[str], typer.Option("--name", metavar="NAME", help="Deployment name (default: model-backend).")] = None,
               host: Annotated[Optional[str], typer.Option("--host", metavar="ADDRESS", help="Address to bind (default 127.0.0.1; any other needs an API key, GPTOSS_API_KEY or generated).")] = None,
               port: Annotated[Optional[int], typer.Option("--port", min=1, max=65535, metavar="INTEGER", help="Port (default: the backend's usual one).")] = None,
               ready_timeout: Annotated[Optional[float], typer.Option("--ready-timeout", min=1, metavar="SECONDS", help="Seconds to wait for the model to load (default: scaled to its size).")] = None,
               no_bench: Annotated[bool, typer.Option("--no-bench", help="Skip the micro-benchmark.")] = False,
               min_decode_tps: MinDecodeOpt = None, min_aggregate_tps: MinAggregateOpt = None,
               max_ttft_ms: MaxTtftOpt = None,
               dry_run: Annotated[bool, typer.Option("--dry-run", help="Print exactly what would run, run nothing.")] = False,
               force: Annotated[bool, typer.Option("--force", help="Launch a --hardware plan even on a machine the file does not describe.")] = False,
               no_fallback: Annotated[bool, typer.Option("--no-fallback", help="When memory runs out while loading, fail instead of planning again at the next smaller context.")] = False,
               yes: Annotated[bool, typer.Option("--yes", "-y", help="Ask nothing: a degraded plan downloads and launches without the question a terminal gets.")] = False,
               no_calibration: NoCalibrationOpt = False, json_out: JsonOpt = False, *,
               cloud_settings: Mapping[str, str]) -> None:
    """Plan (or read a saved plan), launch, wait until ready, benchmark, and print the endpoint.

    \b
    Examples:
      gptoss-up --profile laptop
      gptoss-up --dry-run --json
      gptoss-up --plan plan.json --name prod --port 8081
      gptoss-up --gguf ./gpt-oss-20b-mxfp4.gguf
    """
    from gptoss_deploy.backends.base import UpOptions
    from gptoss_deploy.cli.render_deploy import render_deployment
    from gptoss_deploy.planner.gguf_info import read_gguf
    from gptoss_deploy.runtime import deploy
    from gptoss_deploy.runtime.fallback import up_stepping_down

    out = Output(json_out)
    gates = _gates(min_decode_tps, min_aggregate_tps, max_ttft_ms)
    budget = None if no_bench or dry_run else _budget()
    gguf_info = read_gguf(gguf) if gguf else None
    at_plan = {key: value for key, value in cloud_settings.items() if SETTINGS[key].at_plan}
    flags = planning_flags(model, variant, backend, context, reasoning_effort, local, cloud, at_plan)
    doc, hw = _up_plan(profile, flags, hardware, plan_file, gguf_info, launching=not (dry_run or force),
                       no_calibration=no_calibration)
    options = UpOptions(name=name, host=host, port=port, gguf=gguf, ready_timeout_s=ready_timeout,
                        api_key=os.environ.get("GPTOSS_API_KEY"), calibrate=not no_calibration,
                        cloud={key: value for key, value in cloud_settings.items() if key not in at_plan})
    if dry_run:
        _dry_run(out, doc, options, hw, gguf_info)
        return
    _confirm_degraded(doc, options, hw, gguf_info, yes)
    store = _store()
    with out.progress() as progress:
        ladder = None if no_fallback or plan_file else _ladder(profile, flags, hardware, gguf_info, no_calibration)
        record, reused = up_stepping_down(doc, options, store, hw, gguf_info, progress, ladder)
        if not (no_bench or reused):
            from gptoss_deploy.verify.measure import bench_record

            with deploy.taken_down_if_interrupted(store, record):
                benchmark = bench_record(record, store, gates, budget, progress)
            record = deploy.save_benchmark(store, record.name, benchmark)
    _report(out, record.to_json(), record.benchmark, gates, lambda console: render_deployment(console, record, reused),
            launched=record.name)


LARGE_DOWNLOAD_BYTES = 2**30


def _confirm_degraded(doc, options, hw, gguf_info, yes: bool) -> None:
    """A degraded plan says so again before a large download; on a terminal it asks first (not with --yes; a
    pipeline gets the warning and goes on, as it asked)."""
    from gptoss_deploy.planner.errors import Cancelled
    from gptoss_deploy.planner.units import gib
    from gptoss_deploy.runtime import deploy

    if doc.status != "degraded":
        return
    size = sum(d["bytes"] for d in deploy.server_launch(doc, options, hw, gguf_info).downloads if d["missing"])
    if size < LARGE_DOWNLOAD_BYTES:
        return
    why = "; ".join(r for r in doc.reasons if r.startswith(("speed:", "context:")))
    Output.note(f"warning: this plan is degraded ({why}), and it downloads {gib(size)} first")
    if not yes and sys.stdin.isatty() and sys.stderr.isatty() and \
            not typer.confirm(f"Download {gib(size)} and launch it anyway?", default=False, err=True):
        raise Cancelled("declined: nothing was downloaded or started (see `gptoss-plan` for other choices)")


def _ladder(profile, flags: dict, hardware: Optional[Path], gguf_info, no_calibration: bool):
    """The fallback ladder below the plan these flags give (a saved plan is applied as it is: it has none)."""
    from gptoss_deploy.backends import REGISTRY
    from gptoss_deploy.planner.constraints import load_constraints
    from gptoss_deploy.runtime.fallback import Ladder

    allowed = load_constraints(profile, flags, os.environ, REGISTRY)
    return Ladder(replan=lambda changes: _up_plan(profile, {**flags, **changes}, hardware, None, gguf_info,
                                                  launching=False, no_calibration=no_calibration),
                  cloud_allowed=allowed.cloud and not allowed.local_only, model_fixed=gguf_info is not None)


def _dry_run(out: Output, doc, options, hw, gguf_info) -> None:
    """Print what `up` would do: the server command, or for a cloud plan the API call."""
    from gptoss_deploy.cli.plan_commands import prerequisites_json
    from gptoss_deploy.cli.render import render_prerequisites
    from gptoss_deploy.cli.render_deploy import dry_run_json, render_dry_run, render_dry_run_api
    from gptoss_deploy.planner.documents import ApiCall
    from gptoss_deploy.runtime import deploy
    from gptoss_deploy.runtime.state import state_dir

    needs = prerequisites_json(doc.backend, doc.model, hw)
    if isinstance(doc.launch, ApiCall):
        out.result({"dry_run": True, "api": doc.launch.api, "prerequisites": needs, "plan": doc.to_json()},
                   lambda console: (render_dry_run_api(console, doc), render_prerequisites(console, needs)))
        return
    launch = deploy.server_launch(doc, options, hw, gguf_info)
    yardstick = deploy.own_yardstick(doc, launch, options, state_dir(), hw, gguf_info)
    out.result(dry_run_json(doc, launch, needs, yardstick),
               lambda console: (render_dry_run(console, doc, launch), render_prerequisites(console, needs)))


def _report(out: Output, document: dict, benchmark, gates, render, launched: str | None = None) -> None:
    """Show DOCUMENT; a BENCHMARK that did not pass then exits 5 (in JSON mode the error document carries it). On
    the deployment LAUNCHED (its name) that worked, a run that could not measure is a warning unless gates were set."""
    from gptoss_deploy.verify.measure import untrusted_figures, verification_failure

    failure = verification_failure(benchmark, document, gates, launch=launched is not None)
    if not (failure and out.json_mode):
        out.result(document, render)
    if failure:
        raise failure
    untrusted = untrusted_figures(benchmark) if launched else None
    if untrusted:
        out.note(f"warning: the benchmark could not measure this launch ({untrusted}); the deployment is up and "
                 f"serving; measure it again when the machine is quieter: gptoss bench {launched}")


def status_command(json_out: JsonOpt = False) -> None:
    """List the deployments this tool started that still run (records of dead servers are cleaned up).

    \b
    Example:
      gptoss status --json
    """
    from gptoss_deploy.cli.render_deploy import render_status
    from gptoss_deploy.runtime.deploy import status

    records, notices = status(_store())
    out = Output(json_out)
    for notice in notices:
        out.note(str(notice))
    out.result([r.to_json() for r in records], lambda console: render_status(console, records))


def down_command(name: NameArg = None,
                 all_: Annotated[bool, typer.Option("--all", help="Stop every deployment.")] = False,
                 yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete cloud resources without asking.")] = False,
                 json_out: JsonOpt = False) -> None:
    """Stop a deployment: TERM, then KILL, to its whole process group (its port is free afterwards); for a
    cloud deployment, delete what gptoss created for it (asks first on a terminal).

    \b
    Examples:
      gptoss down gpt-oss-20b-llamacpp
      gptoss down --all --yes
    """
    from gptoss_deploy.runtime.deploy import down

    if bool(name) == all_:
        raise UsageError("name one deployment, or pass --all (see `gptoss status`)")
    out = Output(json_out)
    with out.progress() as progress:
        result = down(_store(), None if all_ else [name], progress, out.confirmer(yes))
    lines = [f"stopped {n}" for n in result.stopped] + [f"kept {n}" for n in result.kept]
    out.result(result.to_json(), lambda console: say(console, "\n".join(lines) or "nothing was running"))


def bench_command(name: NameArg = None,
                  url: Annotated[Optional[str], typer.Option("--url", metavar="URL", help="Benchmark any OpenAI-compatible server at this base URL (ending in /v1).")] = None,
                  model_id: Annotated[Optional[str], typer.Option("--model-id", metavar="ID", help="With --url: the model to ask for (default: the first listed).")] = None,
                  min_decode_tps: MinDecodeOpt = None, min_aggregate_tps: MinAggregateOpt = None,
                  max_ttft_ms: MaxTtftOpt = None,
                  effort_sweep: Annotated[bool, typer.Option("--effort-sweep", help="Instead: ask a small shipped task set at low, medium and high reasoning effort and compare reasoning, latency, cost and right answers.")] = False,
                  max_tokens: Annotated[Optional[int], typer.Option("--max-tokens", min=1, metavar="TOKENS", help="With --effort-sweep: the most tokens one reply may use (default 4096).")] = None,
                  budget: Annotated[Optional[float], typer.Option("--budget", min=1, metavar="SECONDS", help="Wall time for the whole run; it reports what finished by then (default: 30 s, GPTOSS_BENCH_BUDGET_S; with --effort-sweep 600 s, GPTOSS_SWEEP_BUDGET_S).")] = None,
                  json_out: JsonOpt = False) -> None:
    """Run the micro-benchmark on a deployment (or a URL) and compare it with the plan's prediction; or, with
    --effort-sweep, measure what each reasoning effort costs and gets right.

    \b
    Examples:
      gptoss bench gpt-oss-20b-llamacpp --min-decode-tps 20
      gptoss bench --url http://127.0.0.1:8080/v1
      gptoss bench --effort-sweep --json
    """
    from gptoss_deploy.cli.render_deploy import render_benchmark
    from gptoss_deploy.runtime.deploy import save_benchmark, status
    from gptoss_deploy.verify.measure import bench_record, bench_url

    gates = _gates(min_decode_tps, min_aggregate_tps, max_ttft_ms)
    if url and name:
        raise UsageError("give a deployment name or --url, not both")
    if effort_sweep:
        _sweep(name, url, model_id, gates, max_tokens, budget, Output(json_out))
        return
    if max_tokens is not None:
        raise UsageError("--max-tokens sizes the replies of --effort-sweep; the benchmark sizes its own")
    budget = budget or _budget()
    out = Output(json_out)
    with out.progress() as progress:
        if url:
            benchmark = bench_url(url, model_id, _url_key(), gates, budget, progress)
            document = {"benchmark": benchmark.model_dump(mode="json")}
        else:
            store = _store()
            record = _pick(status(store)[0], name)
            record = save_benchmark(store, record.name, bench_record(record, store, gates, budget, progress))
            benchmark, document = record.benchmark, record.to_json()
    _report(out, document, benchmark, gates, lambda console: render_benchmark(console, benchmark))


def _sweep(name, url, model_id, gates, max_tokens, budget, out: Output) -> None:
    """`bench --effort-sweep`: the reasoning-effort profile of a deployment or a URL; no verdict, so no gates. Ctrl-C
    shows the rows finished so far, then exits 130."""
    from gptoss_deploy.cli.render_deploy import render_effort_sweep
    from gptoss_deploy.planner.errors import Cancelled
    from gptoss_deploy.planner.units import seconds_setting
    from gptoss_deploy.runtime.deploy import status
    from gptoss_deploy.verify.effort_sweep import BUDGET_S, MAX_TOKENS
    from gptoss_deploy.verify.measure import sweep_record, sweep_url

    if any(value is not None for value in vars(gates).values()):
        raise UsageError("--effort-sweep gives no verdict: drop --min-decode-tps, --min-aggregate-tps and "
                         "--max-ttft-ms, or drop --effort-sweep")
    max_tokens = max_tokens or MAX_TOKENS
    budget = budget or seconds_setting("GPTOSS_SWEEP_BUDGET_S", BUDGET_S, zero_allowed=False)
    with out.progress() as progress:
        if url:
            sweep = sweep_url(url, model_id, _url_key(), max_tokens, budget, progress)
        else:
            store = _store()
            record = _pick(status(store)[0], name)
            sweep = sweep_record(record, store, max_tokens, budget, progress)
    document = {"effort_sweep": sweep.to_json()}
    if sweep.stopped == "interrupted":
        if not out.json_mode:
            out.result(document, lambda console: render_effort_sweep(console, sweep))
        raise Cancelled(f"interrupted after {sweep.tasks} of {sweep.tasks_shipped} tasks"
                        + (": the rows above are those" if sweep.tasks and not out.json_mode else ""),
                        details=document)
    out.result(document, lambda console: render_effort_sweep(console, sweep))


def _url_key() -> str | None:
    return os.environ.get("GPTOSS_API_KEY") or os.environ.get("OPENAI_API_KEY")


def _pick(records: list, name: str | None):
    by_name = {r.name: r for r in records}
    if name:
        if name not in by_name:
            raise UsageError(f"no deployment named {name} (running: {', '.join(by_name) or 'none'})")
        return by_name[name]
    if len(records) != 1:
        raise UsageError("name the deployment to benchmark: " + (", ".join(by_name) if records else
                         "none is running (start one with `gptoss-up`, or pass --url)"))
    return records[0]
