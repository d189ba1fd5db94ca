"""Benchmark (not a test): what `gptoss-plan --json --hardware F` costs against importing typer+rich+psutil.

Run: .venv/bin/python tests/bench_startup.py [runs]
Prints the median wall time of each command over RUNS fresh processes and the extra cost of planning.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

FIXTURE = Path(__file__).parent / "fixtures" / "hardware" / "rtx4090-desktop.json"
BASELINE = [sys.executable, "-c", "import typer, rich.console, rich.table, psutil"]
# typer >= 0.29 coerces options through pydantic at parse time: an empty command with the same options
# shows what any typer CLI of this shape pays before our code runs.
TYPER_SHELL = [sys.executable, "-c", "import sys, typer, rich.console, psutil\n"
               "from planner.cli import _single\n"
               "def plan(profile: str = None, model: str = None, backend: str = None, context: str = None,\n"
               "         local: bool = False, hardware: str = None, json_out: bool = typer.Option(False, '--json')):\n"
               "    pass\n"
               "_single(plan)(['--json', '--hardware', 'x'], standalone_mode=False)"]
PLAN = [sys.executable, "-c", "from planner.cli import plan_main; plan_main()", "--json", "--hardware", str(FIXTURE)]


def median_seconds(argv: list[str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    median_seconds(PLAN, 2)   # warm the page cache and .pyc files
    baseline, shell, planning = (median_seconds(argv, runs) for argv in (BASELINE, TYPER_SHELL, PLAN))
    print(f"import typer+rich+psutil:           {baseline * 1000:6.0f} ms (median of {runs})")
    print(f"empty typer command, same options:  {shell * 1000:6.0f} ms")
    print(f"gptoss-plan --json --hardware FILE: {planning * 1000:6.0f} ms")
    print(f"planning itself costs {(planning - shell) * 1000:.0f} ms over the empty command, "
          f"{(planning - baseline) * 1000:.0f} ms over the bare imports")


if __name__ == "__main__":
    main()
