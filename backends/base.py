"""What backends share: the settings a plan's command is built from, and what `up` asks of a local server."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD")
API_KEY_ENV = "OPENAI_API_KEY"
WILDCARD_HOSTS = ("0.0.0.0", "::")   # what OpenAI clients read; `up` tells users to fill it from the key file


@dataclass(frozen=True)
class LaunchSettings:
    host: str = "127.0.0.1"          # loopback unless the user asks otherwise (then an API key is required)
    port: int | None = None          # None: the backend's usual port
    reasoning_effort: str = "medium"
    region: str | None = None        # cloud backends
    cloud_model_id: str | None = None
    azure_workspace: tuple[str | None, str | None, str | None] = (None, None, None)


@dataclass(frozen=True)
class UpOptions:
    """What the user asked of `gptoss-up` beyond the plan itself."""

    name: str | None = None
    host: str | None = None                  # None: what the plan says (127.0.0.1)
    port: int | None = None                  # None: what the plan says
    gguf: Path | None = None                 # a local GGUF instead of the hub download
    ready_timeout_s: float | None = None     # None: scaled to the model's size
    api_key: str | None = None               # from GPTOSS_API_KEY, never a flag (flags show in `ps`)
    hardware_file: Path | None = None        # this machine as recorded (--hardware); None: probe it
    azure_subscription_id: str | None = None
    azure_resource_group: str | None = None
    azure_workspace: str | None = None


def local_hardware(options: UpOptions):
    """The machine `up` runs on: the recorded description when given, else a live probe (same code path)."""
    from gptoss_deploy.planner.hardware import load_hardware
    from gptoss_deploy.planner.probe import probe

    return load_hardware(options.hardware_file) if options.hardware_file else probe()


@dataclass
class ServerLaunch:
    """A local server, decided: what runs (argv None: a server that already runs), where, serving what."""

    argv: list[str] | None
    env: dict[str, str]
    host: str
    port: int
    served_model: str
    protocol: str                            # "openai" (llama-server, vLLM) or "ollama"
    ready_deadline_s: float
    downloads: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    api_key_file: Path | None = None
    unavailable: str | None = None           # why it cannot start here (not installed...): dry runs still show it

    @property
    def base_url(self) -> str:
        # A wildcard bind is reached locally over loopback; other machines use this machine's address.
        return endpoint("127.0.0.1" if self.host in WILDCARD_HOSTS else self.host, self.port)


def endpoint(host: str, port: int) -> str:
    return f"http://{host}:{port}/v1"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def masked_env(env: dict[str, str]) -> dict[str, str]:
    """ENV as it may be shown or stored: values of secret-looking names masked."""
    return {k: "***" if any(word in k.upper() for word in SECRET_WORDS) else v for k, v in env.items()}


def with_flag(argv: list[str], flag: str, value: str) -> list[str]:
    """ARGV with FLAG's value replaced (or FLAG appended): how `up` applies --host/--port to a saved plan."""
    if flag in argv:
        i = argv.index(flag)
        return [*argv[: i + 1], value, *argv[i + 2:]]
    return [*argv, flag, value]


def flag_value(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


LOAD_BYTES_PER_S = 100e6   # a slow disk: the readiness deadline only has to outlast a healthy load


def bound(argv: list[str], options: UpOptions, default_port: int) -> tuple[list[str], str, int]:
    """The plan's server command bound where the user asked (--host, --port), else where the plan says."""
    host = options.host or flag_value(argv, "--host") or "127.0.0.1"
    port = options.port or int(flag_value(argv, "--port") or default_port)
    return with_flag(with_flag(argv, "--host", host), "--port", str(port)), host, port


def ready_deadline_s(options: UpOptions, start_s: float, model_bytes: float) -> float:
    """--ready-timeout, else the server's own start-up time plus reading the model from a slow disk."""
    return options.ready_timeout_s or start_s + model_bytes / LOAD_BYTES_PER_S
