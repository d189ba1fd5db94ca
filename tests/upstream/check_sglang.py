"""Every `sglang serve` command gptoss writes, parsed by SGLang's own parser, and the config file `up` writes for the
API key merged by SGLang's own config reader.

Not part of the default test run: SGLang imports torch (a 5.4 GB install here). Run it through
tests/upstream/run_sglang.sh, which installs the SGLang release below in a venv of its own; this script runs in
that venv and calls gptoss (GPTOSS, our venv's CLI) for the commands: every golden dry run that launches SGLang,
and the Kubernetes export of an H100 node. Exit 0 when everything parses; 1, with each failure on its own line.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "fixtures" / "golden" / "dry-run"


def sglang_parser() -> argparse.ArgumentParser:
    from sglang.srt.server_args import ServerArgs

    parser = argparse.ArgumentParser(prog="sglang serve")    # as sglang.srt.server_args.prepare_server_args builds it
    ServerArgs.add_cli_args(parser)
    return parser


def commands(gptoss: str):
    for path in sorted(GOLDEN.glob("*/*--sglang.json")):
        argv = json.loads(path.read_text())["plan"]["launch"]["argv"]
        yield f"golden {path.parent.name}/{path.stem}", argv[2:]
    done = subprocess.run([gptoss, "export", "--format", "kubernetes", "--gpu", "H100", "--model", "120b",
                           "--backend", "sglang"], capture_output=True, text=True)
    pods = [d for d in yaml.safe_load_all(done.stdout) if d and d.get("kind") == "Deployment"]
    container = pods[0]["spec"]["template"]["spec"]["containers"][0] if pods else {"args": ["<export failed>"]}
    yield "export kubernetes --gpu H100", container["args"][2:]


def main() -> int:
    from sglang.srt.utils.server_args_config_parser import ConfigArgumentMerger

    parser, problems = sglang_parser(), []
    gptoss = os.environ.get("GPTOSS", "gptoss")
    for label, args in commands(gptoss):
        try:
            parsed = parser.parse_args(args)
        except SystemExit:
            problems.append(f"{label}: SGLang's parser refused (above): {' '.join(args)}")
            continue
        if parsed.reasoning_parser != "gpt-oss" or parsed.tool_call_parser != "gpt-oss":
            problems.append(f"{label}: the cookbook's parsers are not set")
    with tempfile.TemporaryDirectory() as scratch:     # the key file as `up` writes it, read by SGLang's merger
        config = Path(scratch, "key.yaml")
        key = 'k3y:with "quotes" # and a hash'
        config.write_text(f"api-key: {json.dumps(key)}\n")
        merged = ConfigArgumentMerger(parser).merge_config_with_args(["--model-path", "m", "--config", str(config)])
        if parser.parse_args(merged).api_key != key:
            problems.append(f"SGLang read another API key from the config file: {merged}")
    print("\n".join(problems) or "every sglang serve command parses")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
