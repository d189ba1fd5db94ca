"""What tests share besides fixtures: recorded hardware, free ports, a plan for a recorded machine."""
from __future__ import annotations

import socket
from pathlib import Path

from gptoss_deploy.backends import REGISTRY
from gptoss_deploy.planner.constraints import load_constraints
from gptoss_deploy.planner.hardware import EXAMPLES, example_names, load_hardware
from gptoss_deploy.planner.plan import plan

FIXTURES = Path(__file__).parent / "fixtures" / "hardware"
# Recorded machines: the test-only ones, and the examples `gptoss probe --example` ships (planner/examples).
HARDWARE_FIXTURES = sorted([p.stem for p in FIXTURES.glob("*.json")] + example_names())


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def fixture_path(name: str) -> Path:
    return FIXTURES / f"{name}.json" if (FIXTURES / f"{name}.json").exists() else EXAMPLES / f"{name}.json"


def plan_for(name: str, profile: str = "auto", **flags):
    hardware = load_hardware(fixture_path(name))
    return plan(hardware, constraints(profile, flags), REGISTRY)


def constraints(profile: str = "auto", flags: dict | None = None, env: dict | None = None):
    """Planning choices as the CLI resolves them, with the registered backends."""
    return load_constraints(profile, flags or {}, env or {}, REGISTRY)


def measured(bench: dict) -> bool:
    """The benchmark ran to its end: three single streams of the asked length, a decode figure and an aggregate.
    Its verdict is the machine's business (a busy machine is rightly `unstable` or `invalid`), so tests that do not
    stage the verdict assert this instead."""
    return (len(bench["samples"]) == 3 and all(s["completion_tokens"] == bench["output_tokens"]
                                               for s in bench["samples"])
            and bench["decode_tokens_per_s"] > 0 and bench["aggregate_tokens_per_s"] is not None)


def bench_exit_code(bench: dict) -> int:
    """What `gptoss bench` without gates exits with for BENCH: 5 where the run was invalid, else 0."""
    return 5 if bench["verdict"] == "invalid" else 0
