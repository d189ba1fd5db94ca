"""Every `vllm serve` command gptoss writes, parsed by vLLM's own argument parser, and every VLLM_* variable it sets
checked against vLLM's own table of variables (vllm.envs).

Not part of the default test run: vLLM is a 9.5 GB install. Run it through tests/upstream/run.sh, which installs the
vLLM release below in a venv of its own; this script runs in that venv and calls gptoss (GPTOSS, our venv's CLI) to
produce the commands: every golden dry run that launches vLLM, and the Kubernetes, SkyPilot and compose exports of
the GPU nodes below.

Exit 0 when everything parses; 1, with each failure on a line of its own, when anything does not.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "fixtures" / "golden" / "dry-run"
# Nodes whose plans run vLLM (--backend vllm): one of each GPU family, tensor parallel, data parallel, pipeline
# over nodes (compose runs one node: it refuses those, exit 3, as documented).
# (Two single-H100 nodes are not among them: one holds 120b at the default context, and export says to run replicas.)
EXPORTED_NODES = [("H100", 1), ("H100:2", 1), ("A100-80GB", 1), ("MI300X", 1), ("H200:8", 1), ("L40S:4", 1),
                  ("B200", 1), ("L4:2", 2)]
FORMATS = ("kubernetes", "skypilot", "compose")


def golden_commands() -> Iterator[tuple[str, list[str], dict]]:
    for path in sorted(GOLDEN.glob("*/*.json")):
        launch = json.loads(path.read_text())["plan"]["launch"]
        if launch.get("argv", [])[:2] == ["vllm", "serve"]:
            yield f"golden {path.parent.name}/{path.stem}", launch["argv"], launch.get("env", {})


def exported_commands(gptoss: str) -> Iterator[tuple[str, list[str], dict]]:
    for gpu, nodes in EXPORTED_NODES:
        for fmt in FORMATS if nodes == 1 else FORMATS[:2]:
            label = f"export {fmt} --gpu {gpu} --nodes {nodes}"
            done = subprocess.run([gptoss, "export", "--format", fmt, "--gpu", gpu, "--nodes", str(nodes),
                                   "--model", "120b", "--backend", "vllm"], capture_output=True, text=True)
            if done.returncode != 0:
                yield label, [], {"<export failed>": done.stderr.strip()}
                continue
            documents = [d for d in yaml.safe_load_all(done.stdout) if d]
            commands = list(_vllm_commands(documents))
            variables = {name: "" for name in _names(documents) if name.startswith("VLLM_")}
            if not commands:
                yield label, [], {"<no vllm serve in the export>": ""}
            for argv in commands:
                yield label, argv, variables


def _vllm_commands(node) -> Iterator[list[str]]:
    """`vllm serve ...` wherever an export holds it: a container's command + args, or a line of a shell script."""
    if isinstance(node, dict):
        command = node.get("command")
        if isinstance(command, list) and command[:1] == ["vllm"]:
            yield [*command, *node.get("args", [])]
            return
        for value in node.values():
            yield from _vllm_commands(value)
    elif isinstance(node, list):
        if node[:2] == ["vllm", "serve"]:                        # compose: command as a list
            yield list(node)
            return
        for value in node:
            yield from _vllm_commands(value)
    elif isinstance(node, str) and "vllm serve" in node:
        for line in node.splitlines():
            if "vllm serve" in line:
                words = shlex.split(line[line.index("vllm serve"):])
                yield next((words[:i] for i, w in enumerate(words) if w in ("&&", "||", ";")), words)


def _names(node) -> Iterator[str]:
    """Environment variable names an export sets: `env: [{name: ...}]`, `environment:`/`envs:`/`secrets:` maps."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("environment", "envs", "secrets") and isinstance(value, dict):
                yield from value
            elif key == "env" and isinstance(value, list):
                yield from (item["name"] for item in value if isinstance(item, dict) and "name" in item)
            else:
                yield from _names(value)
    elif isinstance(node, list):
        for value in node:
            yield from _names(value)


def vllm_parser():
    """`vllm serve`'s own parser, built as the CLI builds it; the platform set to CPU, so no GPU is needed."""
    import vllm.platforms
    from vllm.platforms.cpu import CpuPlatform

    vllm.platforms._current_platform = CpuPlatform()
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(prog="vllm")
    ServeSubcommand().subparser_init(parser.add_subparsers(dest="subcommand"))
    return parser


def check(parser, known_variables: set[str], argv: list[str], env: dict) -> list[str]:
    problems = [f"{name}: {why}" for name, why in env.items() if name.startswith("<")]
    problems += [f"{name} is not a vLLM variable (vllm.envs)" for name in env
                 if name.startswith("VLLM_") and name not in known_variables]
    if argv:
        try:
            parser.parse_args(argv[1:])
        except SystemExit:
            problems.append(f"vLLM's parser refused (above): {shlex.join(argv)}")
    return problems


def main() -> int:
    import vllm
    import vllm.envs

    gptoss = os.environ.get("GPTOSS", str(ROOT / ".venv" / "bin" / "gptoss"))
    parser, known = vllm_parser(), set(vllm.envs.environment_variables)
    # the check itself: a made-up flag and variable are refused, or nothing below means anything
    with contextlib.redirect_stderr(io.StringIO()):
        assert len(check(parser, known, ["vllm", "serve", "m", "--no-such-flag"], {"VLLM_NO_SUCH_VARIABLE": "1"})) == 2
    checked, failures = 0, []
    for label, argv, env in [*golden_commands(), *exported_commands(gptoss)]:
        checked += 1
        failures += [f"{label}: {problem}" for problem in check(parser, known, argv, env)]
    print(f"vLLM {vllm.__version__}: {checked} commands from gptoss, {len(failures)} refused")
    for failure in failures:
        print(f"  {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
