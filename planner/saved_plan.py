"""Read a plan saved from `gptoss-plan --json`, so a pipeline can plan once and apply later."""
from __future__ import annotations

import json
from pathlib import Path

from gptoss_deploy.planner.errors import UsageError
from gptoss_deploy.planner.plan import SCHEMA_VERSION

REQUIRED_KEYS = ("model", "backend", "context_length", "launch")


def load_plan(path: Path) -> dict:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"plan file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"plan file {path} is not a readable JSON plan ({err})") from None
    if not isinstance(document, dict) or document.get("schema_version") != SCHEMA_VERSION:
        raise UsageError(f"plan file {path}: not a schema_version {SCHEMA_VERSION} plan from `gptoss-plan --json`")
    if "error" in document:
        raise UsageError(f"plan file {path} holds an error, not a plan: {document['error'].get('message')}")
    missing = [key for key in REQUIRED_KEYS if key not in document]
    if missing:
        raise UsageError(f"plan file {path}: missing {', '.join(missing)}")
    return document
