"""Benchmark (not a test): what `gptoss-plan --json --hardware F` costs against two floors: importing
typer+rich+psutil (issue 24's floor), and a typer app of the plan command's 17 options that runs and does nothing.

Run: .venv/bin/python tests/bench_startup.py [runs]
Prints the median wall time of each command over RUNS fresh processes and the ratio of the plan to each floor.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

FIXTURE = Path(__file__).parent.parent / "planner" / "examples" / "rtx4090-desktop.json"
IMPORTS = [sys.executable, "-c", "import typer, rich.console, rich.table, psutil"]
# typer >= 0.29 builds a pydantic TypeAdapter for each option it parses: a CLI of that many options pays for
# pydantic's schema machinery before it plans anything. Options of the same kinds as gptoss-plan's.
EMPTY_COMMAND = [sys.executable, "-c", """
from pathlib import Path
from typing import Optional
import psutil, typer
def plan(profile: Optional[str] = None, model: str = "auto", backend: str = "auto", context: Optional[int] = None,
         reasoning_effort: str = "medium", local: bool = False, cloud: bool = False, hardware: Optional[Path] = None,
         gpu: Optional[str] = None, target_tps: Optional[float] = None, concurrency: Optional[int] = None,
         usd_per_gpu_hour: Optional[float] = None, nodes: Optional[int] = None,
         json_out: bool = typer.Option(False, "--json"), yes: bool = False, verbose: bool = False,
         azure_mode: Optional[str] = None) -> None:
    print("{}")
typer.run(plan)
""", "--json", "--hardware", str(FIXTURE)]
PLAN = [sys.executable, "-c", "from gptoss_deploy.cli.app import plan_main; plan_main()", "--json", "--hardware", str(FIXTURE)]


def seconds(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    for argv in (IMPORTS, EMPTY_COMMAND, PLAN):     # warm the page cache and .pyc files
        seconds(argv)
    # interleaved, so that a busy moment of the machine weighs on all alike
    rows = [(seconds(IMPORTS), seconds(EMPTY_COMMAND), seconds(PLAN)) for _ in range(runs)]
    imports, empty, planning = (statistics.median(column) for column in zip(*rows))
    print(f"import typer+rich+psutil:             {imports * 1000:6.0f} ms (median of {runs}, interleaved)")
    print(f"typer app of 17 options, run, no work: {empty * 1000:6.0f} ms "
          f"({statistics.median(e / i for i, e, _ in rows):.2f}x the imports)")
    print(f"gptoss-plan --json --hardware FILE:    {planning * 1000:6.0f} ms "
          f"({statistics.median(p / i for i, _, p in rows):.2f}x the imports, "
          f"{statistics.median(p / e for _, e, p in rows):.2f}x the empty app)")


if __name__ == "__main__":
    main()
