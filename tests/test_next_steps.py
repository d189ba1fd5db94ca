"""Every next step a plan prints reproduces that plan when it is run as printed: for each kind of plan in the goldens
(each backend, a named node, nodes, capacity, a cloud plan allowed by --cloud), the printed line goes back through
the CLI and gives the same plan (a `gptoss-up` line as its dry run; an export line as the export of that plan)."""
from __future__ import annotations

import contextlib
import io
import json
import shlex

import pytest

from golden import BACKEND_FLAGS, EXPORT_CASES, GOLDEN_DIR, golden_environment
from gptoss_deploy.cli import app as cli
from helpers import fixture_path

SAME_PLAN = ("status", "model", "backend", "context_length", "reasoning_effort", "offload", "launch")


def gptoss(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli._run(cli.gptoss_app(), "gptoss", [str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def printed_next_step(out: str) -> list[str]:
    """The command under the plan's next-step heading ("Launch it:", "Deploy it ..."), as argv."""
    lines = out.splitlines()
    heading = next(i for i, line in enumerate(lines) if line.startswith(("Launch it", "Deploy it")))
    return shlex.split(lines[heading + 1])


def one_case_per_backend() -> list[list[str]]:
    """For each backend kind the goldens hold, the first recorded machine and profile it plans for."""
    cases = []
    for backend, flags in BACKEND_FLAGS.items():
        found = sorted(GOLDEN_DIR.glob(f"*/*--{backend}.json"))
        assert found, f"no golden plan for {backend}"
        fixture, profile = found[0].parent.name, found[0].name.split("--")[0]
        cases.append(["--hardware", str(fixture_path(fixture)), "--profile", profile, *flags])
    return cases


NODE_CASES = [[flag for flag in case if flag not in ("--format", case[1])] for case in EXPORT_CASES.values()
              if "--gpu" in case and "--replicas" not in case and "--min-replicas" not in case]
CLOUD_ASKED = [["--hardware", str(fixture_path("cpu-only-2core")), "--cloud"],
               ["--hardware", str(fixture_path("cpu-only")), "--model", "120b", "--cloud"]]


@pytest.mark.parametrize("flags", one_case_per_backend() + NODE_CASES + CLOUD_ASKED, ids=shlex.join)
def test_the_printed_next_step_reproduces_the_plan(flags):
    with golden_environment():
        code, out, err = gptoss("plan", "--yes", *flags)
        assert code == 0, err
        planned = json.loads(gptoss("plan", "--json", *flags)[1])
        step = printed_next_step(out)
        if step[0] == "gptoss-up":
            code, out, err = gptoss("up", *step[1:], "--dry-run", "--json")
            assert code == 0, err
            again = json.loads(out)["plan"]
            assert {k: again[k] for k in SAME_PLAN} == {k: planned[k] for k in SAME_PLAN}
        else:
            assert step[:4] == ["gptoss", "export", "--format", "kubernetes"]
            code, exported, err = gptoss(*step[1:])
            assert code == 0, err
            server = planned["launch"]["argv"]
            assert all(arg in exported for arg in server[server.index("serve") + 1:] if arg != "127.0.0.1")
            if "capacity" in planned:
                assert f"replicas: {planned['capacity']['replicas']}" in exported


def test_a_gpu_plan_never_says_to_launch_on_this_machine():
    with golden_environment():
        code, out, _ = gptoss("plan", "--yes", "--gpu", "H100", "--model", "120b", "--target-tps", "5000")
    assert code == 0
    assert printed_next_step(out) == ["gptoss", "export", "--format", "kubernetes", "--profile", "auto", "--model",
                                      "120b", "--gpu", "H100", "--target-tps", "5000"]
    assert "gptoss-up --profile auto --model 120b" not in out
