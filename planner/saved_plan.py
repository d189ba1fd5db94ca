"""Read a plan saved from `gptoss-plan --json`, so a pipeline can plan once and apply later. It is validated
once, here, against the Plan document (planner.documents): a field out of place is named, exit 2."""
from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from gptoss_deploy.planner.documents import PlanDocument
from gptoss_deploy.planner.errors import UsageError, validation_problem
from gptoss_deploy.planner.files import read_user_text
from gptoss_deploy.planner.plan import SCHEMA_VERSION


def load_plan(path: Path) -> PlanDocument:
    text = read_user_text(path, "plan file")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise UsageError(f"plan file {path} is not a readable JSON plan ({err})") from None
    if not isinstance(document, dict) or document.get("schema_version") != SCHEMA_VERSION:
        raise UsageError(f"plan file {path}: not a schema_version {SCHEMA_VERSION} plan from `gptoss-plan --json`")
    if "error" in document:
        error = document["error"]
        said = error.get("message") if isinstance(error, dict) else error
        raise UsageError(f"plan file {path} holds an error, not a plan: {' '.join(str(said).split())[:200]}")
    try:
        return PlanDocument.model_validate(document)
    except ValidationError as err:
        raise UsageError(f"plan file {path}: {validation_problem(err)} (see `gptoss schema plan`)") from None
