"""One small error family: each user-facing failure carries its exit code and a stable code name."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

# Exit codes (DESIGN.md section 3), named so callers never write bare numbers.
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_NO_FIT = 3
EXIT_BACKEND = 4
EXIT_VERIFY = 5
EXIT_INTERRUPTED = 130


class Interrupted(BaseException):
    """A signal asked the command to stop (TERM, HUP): it cleans up as for Ctrl-C, then exits 128 + the signal."""

    NAMES = {1: "hung up (SIGHUP)", 15: "terminated (SIGTERM)"}

    def __init__(self, signum: int):
        super().__init__(signum)
        self.exit_code = 128 + signum
        self.message = self.NAMES.get(signum, f"stopped by signal {signum}")


class GptossError(Exception):
    """A failure the user can act on: one line saying what went wrong and what to do."""

    exit_code = EXIT_INTERNAL
    code = "internal"

    def __init__(self, message: str, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.details = details   # what was measured before it failed: the JSON error document carries it


class UsageError(GptossError):
    exit_code = EXIT_USAGE
    code = "bad_input"


class NoFitError(GptossError):
    exit_code = EXIT_NO_FIT
    code = "no_fit"


class BackendError(GptossError):
    exit_code = EXIT_BACKEND
    code = "backend"


class Cancelled(GptossError):
    """The user stopped it (answered no at a question, or Ctrl-C where a command reports what it finished)."""

    exit_code = EXIT_INTERRUPTED
    code = "interrupted"


class VerificationError(GptossError):
    exit_code = EXIT_VERIFY
    code = "verification_failed"


def validation_problem(err: ValidationError) -> str:
    """The first thing a document gets wrong, as `field path.to.it: message`, or the message alone when it is
    about the whole document (one line for one error)."""
    return _problem(err.errors()[0])


def validation_problems(err: ValidationError) -> str:
    """Everything a document gets wrong, on one line: a hand-written file is fixed in one go."""
    return "; ".join(_problem(error) for error in err.errors())


def _problem(error) -> str:
    message = error["msg"].removeprefix("Value error, ")
    # A key from the file may hold any character: one that does not print (a newline) is shown quoted and escaped.
    where = ".".join(str(part) if str(part).isprintable() else repr(part) for part in error["loc"])
    return f"field {where}: {message}" if where else message
