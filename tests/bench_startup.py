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

FIXTURE = Path(__file__).parent.parent / "planner" / "examples" / "rtx4090-desktop.json"
BASELINE = [sys.executable, "-c", "import typer, rich.console, rich.table, psutil"]
PLAN = [sys.executable, "-c", "from gptoss_deploy.cli.app import plan_main; plan_main()", "--json", "--hardware", str(FIXTURE)]


def seconds(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    seconds(PLAN), seconds(PLAN)   # warm the page cache and .pyc files
    # interleaved, so that a busy moment of the machine weighs on both alike
    pairs = [(seconds(BASELINE), seconds(PLAN)) for _ in range(runs)]
    baseline, planning = (statistics.median(column) for column in zip(*pairs))
    ratio = statistics.median(plan / floor for floor, plan in pairs)
    print(f"import typer+rich+psutil:           {baseline * 1000:6.0f} ms (median of {runs}, interleaved)")
    print(f"gptoss-plan --json --hardware FILE: {planning * 1000:6.0f} ms")
    # typer >= 0.29 coerces options through pydantic when it parses them: part of the difference is typer's.
    print(f"difference: {(planning - baseline) * 1000:.0f} ms; ratio {ratio:.2f}x (median of the pairs' ratios)")


if __name__ == "__main__":
    main()
