"""The gptoss apps and their entry points; every failure becomes one stderr line and a documented exit code."""
from __future__ import annotations

import functools
import os
import signal
import sys

import typer

from gptoss_deploy.cli.output import Output
from gptoss_deploy.planner.errors import (EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, GptossError, Interrupted,
                                          UsageError)

@functools.cache
def gptoss_app() -> typer.Typer:
    """`gptoss` and its commands. Each script imports only the commands it runs: gptoss-plan, the one a start-up
    benchmark times (tests/bench_startup.py), imports no launch, benchmark or export code."""
    from gptoss_deploy.cli.deploy_commands import bench_command, down_command, status_command, up_command
    from gptoss_deploy.cli.export_commands import export_command
    from gptoss_deploy.cli.plan_commands import (backends_command, plan_command, probe_command, profiles_command,
                                                 schema_command)

    app = typer.Typer(name="gptoss", help="Which gpt-oss should I run here, how, and does it really perform?",
                      epilog="gptoss --version prints the version. Each command's --help shows examples.",
                      no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                      rich_markup_mode=None)     # click's plain help: real metavars, wrapped words, nothing cut
    for name, command in (("probe", probe_command), ("plan", plan_command), ("profiles", profiles_command),
                          ("backends", backends_command), ("schema", schema_command),
                          ("up", up_command), ("status", status_command), ("down", down_command),
                          ("bench", bench_command), ("export", export_command)):
        app.command(name)(command)
    return app


def _single(command) -> typer.Typer:
    single = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
    single.command()(command)
    return single


@functools.cache
def _command(application: typer.Typer):
    """The click command typer builds from APPLICATION's functions: built once a process, as it reads every
    command's signature (in-process callers, the tests among them, run many commands)."""
    return typer.main.get_command(application)


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted(signum)


def _run(application: typer.Typer, prog: str, argv: list[str] | None = None) -> int:
    """Run a typer app; map every failure to one stderr line and the documented exit code. TERM and HUP stop it
    the way Ctrl-C does: what the command started is stopped on the way out."""
    stops = [signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]     # Windows has no HUP
    previous = {signum: signal.signal(signum, _raise_interrupted) for signum in stops}
    try:
        return _run_command(application, prog, sys.argv[1:] if argv is None else argv)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run_command(application: typer.Typer, prog: str, argv: list[str]) -> int:
    out = Output(json_mode="--json" in argv)
    if argv == ["--version"]:
        from importlib.metadata import version

        sys.stdout.write(f"{prog} {version('gptoss-deploy')}\n")
        return 0
    try:
        result = _command(application).main(args=argv, prog_name=prog, standalone_mode=False)
        code = result if isinstance(result, int) else 0   # typer hands Exit codes back, Ctrl-C as 130
        if code == EXIT_INTERRUPTED:
            return out.error("interrupted", "interrupted", EXIT_INTERRUPTED)
        return code
    except GptossError as err:
        return out.error(err.message, err.code, err.exit_code, err.details)
    except typer.TyperException as err:       # bad flags: typer's own usage errors
        return out.error(f"{err.format_message()} (see `{prog} --help`)", UsageError.code, EXIT_USAGE)
    except (KeyboardInterrupt, typer.Abort):
        return out.error("interrupted", "interrupted", EXIT_INTERRUPTED)
    except Interrupted as err:
        return out.error(err.message, "interrupted", err.exit_code)
    except typer.Exit as err:
        return err.exit_code
    except BrokenPipeError:                   # the reader went away (`| head`): not our failure
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:
        if os.environ.get("GPTOSS_DEBUG"):
            raise
        return out.error(f"internal error ({type(err).__name__}: {err}); this is a bug: please report it, "
                         "GPTOSS_DEBUG=1 shows the traceback", "internal", EXIT_INTERNAL)


def main() -> None:
    sys.exit(_run(gptoss_app(), "gptoss"))


def plan_main() -> None:
    # Pydantic plugins are an application's observability hooks; gptoss-plan only reads its own files and starts no
    # engine that could inherit this. Looking for them reads every installed package's metadata: ~15 ms of its
    # start-up in the test environment, more in a big one (typer turns them off for its option parsing alike).
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from gptoss_deploy.cli.plan_commands import plan_command

    sys.exit(_run(_single(plan_command), "gptoss-plan"))


def up_main() -> None:
    from gptoss_deploy.cli.deploy_commands import up_command

    sys.exit(_run(_single(up_command), "gptoss-up"))
