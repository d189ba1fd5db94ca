"""Deployment records: one JSON file under the user state dir, written atomically under a file lock."""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from gptoss_deploy.planner.errors import BackendError, UsageError, validation_problem

if TYPE_CHECKING:
    from gptoss_deploy.runtime.records import Deployment

LOCK_TIMEOUT_S = 30.0   # commands hold the lock only to read and change records, never while a model loads


def state_dir(env: dict[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("GPTOSS_STATE_DIR"):
        return Path(env["GPTOSS_STATE_DIR"])
    from platformdirs import user_state_dir

    return Path(user_state_dir("gptoss-deploy"))


class _Damaged(Exception):
    """The state file cannot be read as deployments: what is wrong, and the records still in shape."""

    def __init__(self, problem: str, intact: dict[str, Deployment]):
        super().__init__(problem)
        self.problem, self.intact = problem, intact


class StateStore:
    """The deployments this tool started, by name. Every change happens inside `locked()`."""

    def __init__(self, root: Path, notify: Callable[[str], None] = lambda _: None):
        self.root = root
        self.path = root / "deployments.json"
        self.notify = notify            # what the user should be told: a damaged file recovered
        self._held = False

    def log_path(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    def secret_path(self, name: str) -> Path:
        return self.root / "secrets" / f"{name}.key"

    @contextmanager
    def locked(self, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[StateStore]:
        """Hold the state lock: two launchers never start the same deployment twice."""
        from filelock import FileLock, Timeout

        if self.root.exists() and not self.root.is_dir():
            raise UsageError(f"the state dir {self.root} is not a directory: point GPTOSS_STATE_DIR at a directory")
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)   # records name ports, logs and key files
        except OSError as err:
            raise BackendError(f"cannot create the state dir {self.root} ({err.strerror}); make its parent "
                               "writable, or set GPTOSS_STATE_DIR to a directory you own") from None
        lock = FileLock(self.root / "state.lock", timeout=timeout_s, mode=0o600)
        try:
            lock.acquire()
        except Timeout:
            raise BackendError(f"another gptoss command holds {lock.lock_file} for over {timeout_s:.0f} s; "
                               "wait for it to finish, or stop it") from None
        except OSError as err:
            raise BackendError(f"cannot take the state lock {lock.lock_file} ({err.strerror}); make the state dir "
                               "writable, or set GPTOSS_STATE_DIR to a directory you own") from None
        self._held = True
        try:
            yield self
        finally:
            self._held = False
            lock.release()

    def records(self) -> dict[str, Deployment]:
        """Every record, read through the Deployment model. A damaged file is kept aside and, under the lock,
        replaced by the records still in shape and the deployments found again from their processes."""
        try:
            return self._read()
        except _Damaged as damage:
            if not self._held:
                raise BackendError(f"state file {self.path} is damaged ({damage.problem}); run `gptoss status` "
                                   "to recover it") from None
            return self._recover(damage)

    def _read(self) -> dict[str, Deployment]:
        from gptoss_deploy.runtime.records import Deployment

        try:
            document = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except OSError as err:
            raise BackendError(f"cannot read the state file {self.path} ({err.strerror}); make it readable, or "
                               "set GPTOSS_STATE_DIR to a directory you own") from None
        except ValueError as err:                    # not JSON, not UTF-8, empty, cut short
            raise _Damaged(f"not JSON: {err}", {}) from None
        records = document.get("deployments") if isinstance(document, dict) else None
        if not isinstance(records, dict):
            raise _Damaged("it holds no deployments object", {})
        typed, problems = {}, []
        for name, record in records.items():
            try:
                typed[name] = Deployment.model_validate(record)
            except ValidationError as err:
                problems.append(f"deployment {name}: {validation_problem(err)}")
        if problems:
            raise _Damaged("; ".join(problems), typed)
        return typed

    def _recover(self, damage: _Damaged) -> dict[str, Deployment]:
        from gptoss_deploy.runtime.recovery import rediscover

        aside = set_aside(self.path)
        found = {name: r for name, r in rediscover(self.root).items() if name not in damage.intact}
        records = {**damage.intact, **found}
        self._write(records)
        again = (f"found {', '.join(found)} again from {'its' if len(found) == 1 else 'their'} running processes"
                 if found else "no running deployment of it was found")
        self.notify(f"the state file {self.path} was damaged ({damage.problem}); kept as {aside}; {again} "
                    "(cloud endpoints are not found this way: the kept file names them)")
        return records

    def put(self, record: Deployment) -> None:
        records = self.records()
        records[record.name] = record
        self._write(records)

    def remove(self, name: str) -> None:
        records = self.records()
        if records.pop(name, None) is not None:
            self._write(records)

    def _write(self, records: dict[str, Deployment]) -> None:
        text = json.dumps({"schema_version": 1, "deployments": {name: r.to_json() for name, r in records.items()}},
                          indent=2)
        write_atomically(self.root, self.path, text, "the state file")

    def write_secret(self, name: str, secret: str) -> Path:
        """Store SECRET readable by this user only (0600): the server reads it from the file, never argv."""
        path = self.secret_path(name)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(secret)
        os.chmod(path, 0o600)
        return path

    def read_secret(self, name: str) -> str | None:
        try:
            return self.secret_path(name).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None

    def forget(self, name: str) -> None:
        """Drop NAME's record and secret; keep the log, which explains what happened."""
        from gptoss_deploy.backends.base import key_config_path

        self.remove(name)
        self.secret_path(name).unlink(missing_ok=True)
        key_config_path(self.secret_path(name)).unlink(missing_ok=True)


def set_aside(path: Path) -> Path:
    """Move a damaged state file out of the way, kept beside it under a name with the time: never deleted."""
    aside = path.with_name(f"{path.stem}.damaged-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%fZ}{path.suffix}")
    os.replace(path, aside)
    return aside


def write_atomically(root: Path, path: Path, text: str, what: str) -> None:
    """Write TEXT to PATH in ROOT (the state dir), WHAT it is in words, by a sibling file renamed over it: a reader
    never sees half a file, a crash leaves the old one."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=root, prefix=f".{path.stem}-", suffix=path.suffix)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError as err:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise BackendError(f"cannot write {what} {path} ({err.strerror or err}); free some space in {root}, or set "
                           "GPTOSS_STATE_DIR to a writable directory") from None
