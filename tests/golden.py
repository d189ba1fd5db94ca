"""Golden dry runs: the exact `gptoss-up --dry-run --json` of every backend x hardware fixture x profile that plans.

tests/test_golden.py regenerates them and compares. After a deliberate change, refresh them and read the diff:

    .venv/bin/python tests/golden.py

The runs see a fixed environment (below): no user profiles, an empty offline model cache, llama-server and vllm
(and lms) named by their GPTOSS_* variables, no `ollama` on PATH and no Ollama answering, no cloud credentials, so a golden
file does not depend on what the machine that runs it has installed or signed in to.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from helpers import HARDWARE_FIXTURES, fixture_path  # noqa: E402

GOLDEN_DIR = Path(__file__).parent / "fixtures" / "golden" / "dry-run"
PROFILES = ("auto", "laptop", "workstation", "server", "aws", "azure")
BACKEND_FLAGS = {
    "auto": [], "llamacpp": ["--backend", "llamacpp"], "ollama": ["--backend", "ollama"],
    "vllm": ["--backend", "vllm"], "sglang": ["--backend", "sglang"], "lmstudio": ["--backend", "lmstudio"],
    "foundry": ["--backend", "foundry"],
    "bedrock": ["--backend", "bedrock"], "azure": ["--backend", "azure"], "hf-endpoints": ["--backend", "hf-endpoints"],
    "azure-managed": ["--backend", "azure", "--azure-mode", "managed"],
}
NOT_PLANNED = (2, 3)
EXPORT_DIR = Path(__file__).parent / "fixtures" / "golden" / "export"
EXPORT_CASES = {   # file name: `gptoss export` flags
    "h100-120b-5000tps.yaml": ["--format", "kubernetes", "--gpu", "H100", "--model", "120b", "--target-tps", "5000"],
    "mi300x-120b.yaml": ["--format", "kubernetes", "--gpu", "MI300X", "--model", "120b", "--backend", "vllm"],
    "lws-2-nodes-of-2x-l4-120b.yaml": ["--format", "kubernetes", "--gpu", "L4:2", "--nodes", "2", "--model", "120b",
                                       "--backend", "vllm", "--replicas", "2"],
    "h100-120b-autoscale-1-to-5000tps.yaml": ["--format", "kubernetes", "--gpu", "H100", "--model", "120b",
                                              "--target-tps", "5000", "--min-replicas", "1"],
    "2x-rtx3090-20b-copies.yaml": ["--format", "kubernetes", "--hardware", str(fixture_path("2x-rtx3090")),
                                   "--model", "20b"],
    "cpu-only-20b.yaml": ["--format", "kubernetes", "--hardware", str(fixture_path("cpu-only")), "--model", "20b"],
    "compose-h100x2-120b.yaml": ["--format", "compose", "--gpu", "H100:2", "--model", "120b", "--backend", "vllm"],
    "compose-2x-rtx3090-20b-copies.yaml": ["--format", "compose", "--hardware", str(fixture_path("2x-rtx3090")),
                                           "--model", "20b"],
    "compose-mi300x-120b.yaml": ["--format", "compose", "--gpu", "MI300X", "--model", "120b", "--backend", "vllm"],
    "skypilot-h200-120b-5000tps.yaml": ["--format", "skypilot", "--gpu", "H200", "--model", "120b",
                                        "--target-tps", "5000"],
    "skypilot-h100-120b-autoscale-1-to-5000tps.yaml": ["--format", "skypilot", "--gpu", "H100", "--model", "120b",
                                                       "--target-tps", "5000", "--min-replicas", "1"],
    "skypilot-2-nodes-of-2x-l4-120b.yaml": ["--format", "skypilot", "--gpu", "L4:2", "--nodes", "2", "--model",
                                            "120b", "--backend", "vllm", "--replicas", "2"],
    "skypilot-mi300x-120b.yaml": ["--format", "skypilot", "--gpu", "MI300X", "--model", "120b", "--backend", "vllm"],
    "skypilot-2x-rtx3090-20b-copies.yaml": ["--format", "skypilot", "--hardware", str(fixture_path("2x-rtx3090")),
                                            "--model", "20b"],
    "skypilot-cpu-only-20b.yaml": ["--format", "skypilot", "--hardware", str(fixture_path("cpu-only")),
                                   "--model", "20b"],
}   # a contradiction (a cloud backend in a local-only profile), or nothing fits


def cases() -> Iterator[tuple[str, str, str]]:
    for fixture in HARDWARE_FIXTURES:
        for profile in PROFILES:
            for backend in BACKEND_FLAGS:
                yield fixture, profile, backend


def golden_path(fixture: str, profile: str, backend: str) -> Path:
    return GOLDEN_DIR / fixture / f"{profile}--{backend}.json"


@contextlib.contextmanager
def golden_environment() -> Iterator[None]:
    """The fixed environment the golden runs see; the caller's is restored afterwards."""
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory() as scratch:
        empty_bin = Path(scratch, "bin")
        empty_bin.mkdir()
        for name in [k for k in os.environ if k.startswith(("GPTOSS_", "OLLAMA_", "HF_", "AWS_", "AZURE_", "LLAMA_"))]:
            del os.environ[name]
        os.environ.update({
            "PATH": str(empty_bin), "XDG_CONFIG_HOME": str(Path(scratch, "config")),
            "XDG_STATE_HOME": str(Path(scratch, "state")),     # no benchmarks kept: the model's own predictions
            "HF_HUB_CACHE": str(Path(scratch, "hf")), "HF_HUB_OFFLINE": "1",
            "GPTOSS_LLAMA_SERVER": "/opt/llama.cpp/bin/llama-server", "GPTOSS_VLLM": "/opt/vllm/bin/vllm",
            "GPTOSS_SGLANG": "/opt/sglang/bin/sglang",
            "GPTOSS_LMS": "/opt/lmstudio/bin/lms",
            "OLLAMA_HOST": "127.0.0.1:1",   # nothing listens on port 1: no Ollama is found running
            # no cloud sign-in, whatever the machine that runs it has
            "AWS_SHARED_CREDENTIALS_FILE": str(Path(scratch, "aws-credentials")),
            "AWS_CONFIG_FILE": str(Path(scratch, "aws-config")), "AZURE_CONFIG_DIR": str(Path(scratch, "azure")),
            "HF_HOME": str(Path(scratch, "hf-home")),
        })
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)


def dry_run(fixture: str, profile: str, backend: str) -> str | None:
    """The dry run's stdout, or None when the case does not plan; the Python that runs gptoss's own modules (the
    llama.cpp copies' router, Foundry Local's service) shows as <python>, whichever environment runs it. Call inside golden_environment()."""
    from gptoss_deploy.cli import app as cli

    argv = ["up", "--dry-run", "--json", "--hardware", str(fixture_path(fixture)), "--profile", profile,
            *BACKEND_FLAGS[backend]]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()) as err:
        code = cli._run(cli.gptoss_app(), "gptoss", argv)
    if code in NOT_PLANNED:
        return None
    if code != 0:
        raise RuntimeError(f"gptoss {' '.join(argv)} exited {code}: {err.getvalue().strip()}")
    return out.getvalue().replace(json.dumps(sys.executable)[1:-1], "<python>")


def exported(case: str) -> str:
    """The export of EXPORT_CASES[CASE]. Call inside golden_environment()."""
    from gptoss_deploy.cli import app as cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()) as err:
        code = cli._run(cli.gptoss_app(), "gptoss", ["export", *EXPORT_CASES[case]])
    if code != 0:
        raise RuntimeError(f"gptoss export {case} exited {code}: {err.getvalue().strip()}")
    return out.getvalue()


def refresh() -> int:
    """Write every golden file anew and remove those of cases that no longer plan; returns how many were written."""
    written = 0
    with golden_environment():
        for case in cases():
            path, text = golden_path(*case), dry_run(*case)
            if text is None:
                path.unlink(missing_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written += 1
        EXPORT_DIR.mkdir(parents=True, exist_ok=True)
        for case in EXPORT_CASES:
            (EXPORT_DIR / case).write_text(exported(case), encoding="utf-8")
            written += 1
    return written


if __name__ == "__main__":
    print(f"wrote {refresh()} golden dry runs and exports under {GOLDEN_DIR.parent}")
