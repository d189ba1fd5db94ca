"""Sweep (not a test: minutes): every field of three saved plans (CPU llama.cpp, H100 vLLM, a failed plan) set to
each hostile value, then `gptoss-up --plan --dry-run` and `gptoss export --plan` in every format, in-process.
Prints each run that did not end in exit 0 or one line and exit 2; the property tests in test_untrusted_input.py
draw from the same values on every CI run.

Run: .venv/bin/python tests/sweep_saved_plans.py
"""
from __future__ import annotations

import contextlib
import io
import json
import resource
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from gptoss_deploy.cli import app as cli                         # noqa: E402
from helpers import fixture_path                                 # noqa: E402
from test_untrusted_input import HOSTILE_VALUES, paths, replaced   # noqa: E402

PLANS = (("--hardware", str(fixture_path("cpu-only"))), ("--gpu", "H100", "--model", "120b"),
         ("--gpu", "RTX 3090:2"))
COMMANDS = (("up", "--dry-run"), ("export", "--format", "kubernetes"), ("export", "--format", "skypilot"),
            ("export", "--format", "compose"))


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli._run(cli.gptoss_app(), "gptoss", [str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def main() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))    # a plan that asks for the moon fails, not the host
    saved = Path(tempfile.mkdtemp()) / "plan.json"
    runs = found = 0
    for flags in PLANS:
        plan = json.loads(run("plan", "--json", *flags)[1])
        for path in paths(plan):
            for value in HOSTILE_VALUES:
                saved.write_text(json.dumps(replaced(plan, path, value)))
                for command in COMMANDS:
                    code, _, err = run(command[0], "--plan", str(saved), *command[1:])
                    runs += 1
                    if code not in (0, 2) or "internal error" in err or err.count("\n") > 1:
                        found += 1
                        print(f"{'.'.join(map(str, path))} = {value!r}: {' '.join(command)}: exit {code}: "
                              f"{err.strip()[:160]}")
    print(f"{runs} runs, {found} not answered in one line with exit 0 or 2")


if __name__ == "__main__":
    main()
