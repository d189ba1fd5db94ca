"""What counts as a secret in an environment, and how it is shown: masked by name (API keys, tokens, passwords,
GITHUB_PAT) and inside URLs (postgres://user:***@host), in records, dry runs and logs."""
from __future__ import annotations

SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE")
SECRET_PARTS = ("PAT", "PWD", "PASS", "AUTH")      # whole parts of a name only: GITHUB_PAT, not PATH


def masked_env(env: dict[str, str]) -> dict[str, str]:
    """ENV as it may be shown or stored: values of secret-looking names masked, and a password inside a URL."""
    return {k: "***" if secret_name(k) else url_masked(v) for k, v in env.items()}


def secret_name(name: str) -> bool:
    upper = name.upper()
    return any(word in upper for word in SECRET_WORDS) or any(part in SECRET_PARTS for part in upper.split("_"))


def url_password(value: str) -> str | None:
    """The password of a URL with credentials (postgres://user:PASSWORD@host/db), or None."""
    from urllib.parse import urlsplit

    try:
        return urlsplit(value).password if "@" in value and "://" in value else None
    except ValueError:
        return None


def url_masked(value: str) -> str:
    """VALUE with the password of a URL in it shown as ***."""
    password = url_password(value)
    return value.replace(f":{password}@", ":***@") if password else value
