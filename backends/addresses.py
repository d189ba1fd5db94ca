"""Where a deployment answers and what it is called: host names and loopback, endpoint URLs, deployment names
(which become file names in the state dir)."""
from __future__ import annotations

import ipaddress
import re

from gptoss_deploy.planner.errors import UsageError

# A deployment's name becomes file names in the state dir: nothing that could leave it, or hide in it.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
NAME_RULE = "1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit"
HOST_NAME = re.compile(r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+")


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise UsageError(f"--name {name[:80]!r}: use {NAME_RULE}")
    return name


def safe_name(name: str) -> str:
    """NAME with what a deployment name may not hold replaced (Ollama's tags carry a colon)."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", name).lstrip("._-")[:63] or "deployment"


def check_host(host: str) -> None:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not HOST_NAME.fullmatch(host):
            raise UsageError(f"--host {host[:80]!r} is neither an IP address nor a host name") from None


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"     # an IPv6 address goes in brackets


def endpoint(host: str, port: int) -> str:
    return f"http://{host_port(host, port)}/v1"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_loopback(host: str, server: str) -> None:
    """SERVER takes no API key gptoss can set: it is served on loopback only, and any other --host is refused."""
    if not is_loopback(host):
        raise UsageError(f"{server} takes no API key that gptoss can set, so gptoss serves it on 127.0.0.1 only; put "
                         "an authenticating proxy in front of it to reach it from elsewhere")
