"""The command line: parse flags, call one library function, render. Errors become one line and an exit code."""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from gptoss_deploy.planner.cli_options import (AzureModeOpt, BackendOpt, ContextOpt, EffortOpt, HardwareOpt, JsonOpt, LocalOpt,
                                 ModelOpt, ProfileOpt, YesOpt, console, hardware_report, planning_flags, print_json)
from gptoss_deploy.planner.cli_deploy import bench_command, down_command, status_command, up_command
from gptoss_deploy.planner.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, GptossError, UsageError

app = typer.Typer(name="gptoss", help="Which gpt-oss should I run here, how, and does it really perform?",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
app.command("up")(up_command)
app.command("status")(status_command)
app.command("down")(down_command)
app.command("bench")(bench_command)


def _interactive(json_out: bool, yes: bool) -> bool:
    return not (json_out or yes) and sys.stdin.isatty() and sys.stdout.isatty()


def _up_command(constraints, hardware: Optional[Path]) -> str:
    from gptoss_deploy.planner.constraints import as_flags

    extra = ["--hardware", str(hardware)] if hardware else []
    return shlex.join(["gptoss-up", *as_flags(constraints), *extra])


@app.command("probe")
def probe_command(json_out: JsonOpt = False) -> None:
    """Show what the planner sees on this machine: CPU, RAM, GPUs, disk."""
    from gptoss_deploy.planner.probe import probe
    from gptoss_deploy.planner.render import render_hardware

    report = probe()
    if json_out:
        print_json(report.to_json())
    else:
        render_hardware(console(), report)


@app.command("plan")
def plan_command(profile: ProfileOpt = None, model: ModelOpt = None, backend: BackendOpt = None,
                 context: ContextOpt = None, reasoning_effort: EffortOpt = None, local: LocalOpt = False,
                 azure_mode: AzureModeOpt = None, hardware: HardwareOpt = None, json_out: JsonOpt = False,
                 yes: YesOpt = False) -> None:
    """Plan the gpt-oss deployment for this machine (a wizard on a terminal, unless --yes or --json)."""
    from gptoss_deploy.planner.constraints import load_constraints
    from gptoss_deploy.planner.errors import NoFitError
    from gptoss_deploy.planner.plan import plan

    flags = planning_flags(model, backend, context, reasoning_effort, local, azure_mode)
    constraints = load_constraints(profile, flags, os.environ)
    hw = hardware_report(hardware)
    if _interactive(json_out, yes):
        from gptoss_deploy.planner.wizard import ask

        try:
            suggestion = plan(hw, constraints)
        except NoFitError:
            suggestion = None
        constraints = load_constraints(profile, flags, os.environ, ask(constraints, suggestion))
    result = plan(hw, constraints)
    if json_out:
        print_json(result.to_json())
        return
    from gptoss_deploy.planner.render import render_plan

    render_plan(console(), result, _up_command(constraints, hardware))


@app.command("profiles")
def profiles_command(json_out: JsonOpt = False) -> None:
    """List the profiles: built-in ones and yours (in the user config dir)."""
    from gptoss_deploy.planner.profiles import available_profiles, user_profile_dir
    from gptoss_deploy.planner.render import render_profiles

    profiles = available_profiles()
    if json_out:
        print_json([{"name": p.name, "source": p.source, "description": p.profile.description,
                      **p.profile.model_dump()} for p in profiles])
        return
    render_profiles(console(), profiles)
    console().print(f"Add your own as TOML files in {user_profile_dir()}")


def _single(command) -> typer.Typer:
    single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    single.command()(command)
    return single


def _fail(message: str, code: str, exit_code: int, json_mode: bool, details: dict | None = None) -> int:
    sys.stderr.write(f"gptoss: error: {message}\n")
    if json_mode:
        document = {"schema_version": 1, "error": {"code": code, "message": message}, "exit_code": exit_code}
        print_json({**document, "result": details} if details else document)
    return exit_code


def _run(application: typer.Typer, prog: str, argv: list[str] | None = None) -> int:
    """Run a typer app; map every failure to one stderr line and the documented exit code."""
    argv = sys.argv[1:] if argv is None else argv
    json_mode = "--json" in argv
    try:
        result = application(args=argv, prog_name=prog, standalone_mode=False)
        code = result if isinstance(result, int) else 0   # typer hands Exit codes back, Ctrl-C as 130
        if code == EXIT_INTERRUPTED:
            return _fail("interrupted", "interrupted", EXIT_INTERRUPTED, json_mode)
        return code
    except GptossError as err:
        return _fail(err.message, err.code, err.exit_code, json_mode, err.details)
    except typer.TyperException as err:       # bad flags: typer's own usage errors
        return _fail(f"{err.format_message()} (see `{prog} --help`)", UsageError.code, EXIT_USAGE, json_mode)
    except (KeyboardInterrupt, typer.Abort):
        return _fail("interrupted", "interrupted", EXIT_INTERRUPTED, json_mode)
    except typer.Exit as err:
        return err.exit_code
    except BrokenPipeError:                   # the reader went away (`| head`): not our failure
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:
        if os.environ.get("GPTOSS_DEBUG"):
            raise
        return _fail(f"internal error ({type(err).__name__}: {err}); this is a bug: please report it, "
                     "GPTOSS_DEBUG=1 shows the traceback", "internal", EXIT_INTERNAL, json_mode)


def main() -> None:
    sys.exit(_run(app, "gptoss"))


def plan_main() -> None:
    sys.exit(_run(_single(plan_command), "gptoss-plan"))


def up_main() -> None:
    sys.exit(_run(_single(up_command), "gptoss-up"))
