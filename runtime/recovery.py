"""Find this tool's local servers again from their processes, when the state file that listed them is damaged.

Every server starts with a marker in its environment, inherited by its whole process group: the state dir it
belongs to and the record it was started with (no secrets: records mask them). Reading it back needs only this
user's own processes.
"""
from __future__ import annotations

import json
from pathlib import Path

import psutil
from pydantic import ValidationError

from gptoss_deploy.backends.process_groups import GROUPS
from gptoss_deploy.runtime.records import Deployment

MARKER_ENV = "GPTOSS_DEPLOYMENT"


def marker(root: Path, record: Deployment) -> dict[str, str]:
    """The environment entry that ties a server started from RECORD to the state dir ROOT."""
    return {MARKER_ENV: json.dumps({"state_dir": str(root.resolve()), "record": record.to_json()})}


def rediscover(root: Path) -> dict[str, Deployment]:
    """The deployments of state dir ROOT whose processes still run, rebuilt from their markers, by name."""
    groups: dict[int, list[psutil.Process]] = {}
    started: dict[int, dict] = {}
    for process in psutil.process_iter():
        try:
            found = json.loads(process.environ().get(MARKER_ENV) or "null")
            if not (isinstance(found, dict) and found.get("state_dir") == str(root.resolve())) or \
                    process.status() == psutil.STATUS_ZOMBIE:
                continue
            group = GROUPS.group_of(process, _marked)
        except (psutil.Error, OSError, ValueError):
            continue
        groups.setdefault(group, []).append(process)
        started[group] = found.get("record")
    found = {}
    for group, members in groups.items():
        try:
            record = _rebuilt(Deployment.model_validate(started[group]), group, members)
        except (ValidationError, psutil.Error):
            continue
        found[record.name] = record
    return found


def _marked(process: psutil.Process) -> bool:
    try:
        return MARKER_ENV in process.environ()
    except psutil.Error:
        return False


def _rebuilt(record: Deployment, group: int, members: list[psutil.Process]) -> Deployment:
    """RECORD as its launcher would have written it: the group leader (the log filter), the server under it.
    A server still loading is called running: its launcher, if alive, records what it finds itself."""
    leader = next((p for p in members if p.pid == group), None)
    others = {p.pid: p for p in members if p.pid != group}
    changes = {"pid": group, "pid_started_at": leader.create_time() if leader else None}
    engine = next((p for p in others.values() if p.ppid() not in others), None)
    if engine is not None:
        changes.update(state="running", engine_pid=engine.pid, engine_started_at=engine.create_time())
    return Deployment.model_validate({**record.to_json(), **changes})
