"""Every dry run matches its checked-in golden file, byte for byte (refresh: .venv/bin/python tests/golden.py)."""
from __future__ import annotations

import pytest

from golden import GOLDEN_DIR, cases, dry_run, golden_environment, golden_path


@pytest.mark.long
def test_every_dry_run_matches_its_golden_file():
    mismatched, planned = [], set()
    with golden_environment():
        for case in cases():
            text, path = dry_run(*case), golden_path(*case)
            if text is not None:
                planned.add(path)
            expected = path.read_text(encoding="utf-8") if path.exists() else None
            if text != expected:
                mismatched.append(str(path.relative_to(GOLDEN_DIR)))
    assert not mismatched, f"{len(mismatched)} dry runs differ from their golden files, e.g. {mismatched[:5]}"
    assert len(planned) > 200
    assert set(GOLDEN_DIR.rglob("*.json")) == planned       # no golden file for a case that no longer plans
