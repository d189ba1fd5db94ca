"""Reading the files users hand us (hardware, profiles, plans): their text, or one line saying why not."""
from __future__ import annotations

from pathlib import Path

from gptoss_deploy.planner.errors import UsageError


def read_user_text(path: Path, what: str, not_text_hint: str = "") -> str:
    """PATH's UTF-8 text; a missing, unreadable or binary file is a usage error naming WHAT and PATH."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{what} {path} does not exist") from None
    except UnicodeDecodeError:
        raise UsageError(f"{what} {path} is not text{not_text_hint}") from None
    except OSError as err:
        raise UsageError(f"{what} {path} cannot be read ({err.strerror})") from None
