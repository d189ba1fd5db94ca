"""Profiles: TOML files of planning choices, validated strictly; found built-in, in the user's dir, or by path."""
from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import (BaseModel, ConfigDict, Field, StringConstraints, ValidationError, ValidationInfo, create_model,
                      field_validator)
from pydantic_core import PydanticCustomError

from gptoss_deploy.planner.backend import CloudSetting, declared_settings
from gptoss_deploy.planner.catalog import MAX_CONTEXT, Effort
from gptoss_deploy.planner.errors import UsageError
from gptoss_deploy.planner.files import read_user_text
from gptoss_deploy.planner.placement import MIN_CONTEXT

if TYPE_CHECKING:
    from gptoss_deploy.planner.plan import Backends

ModelChoice = Literal["auto", "20b", "120b"]


class Profile(BaseModel):
    """The planner's own keys; a profile is read through profile_model(), which adds the keys of the settings the
    registered cloud services declare (Azure's azure_mode, its workspace)."""
    # strict: TOML already gives native types, so "8192" for a number is a mistake worth naming
    # python-re: a cloud setting's pattern means what it means where flags are checked (constraints.checked_setting)
    # defer_build: only profile_model()'s subclasses validate; building this one too cost every command ~3 ms
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, regex_engine="python-re", defer_build=True)

    description: str
    model: ModelChoice = "auto"
    backend: str = "auto"                  # "auto" or a registered backend (validation context "backends")
    backend_preference: list[str] = []
    context: int = Field(default=32768, ge=MIN_CONTEXT, le=MAX_CONTEXT)   # as --context: 4k to 128k
    min_decode_tokens_per_s: float = Field(default=15.0, ge=0)
    reasoning_effort: Effort = "medium"
    local_only: bool = False
    cloud: bool = False                    # a cloud service may win over a local plan below the speed floor
    region: str | None = None
    # Your prices (negotiated, or read off the provider's page) where our data has none, or to override it.
    usd_per_1m_input_tokens: float | None = Field(default=None, ge=0)
    usd_per_1m_output_tokens: float | None = Field(default=None, ge=0)
    usd_per_hour: float | None = Field(default=None, ge=0)

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str, info: ValidationInfo) -> str:
        return _one_of(value, ["auto", *info.context["backends"]])

    @field_validator("backend_preference")
    @classmethod
    def _known_backends(cls, value: list[str], info: ValidationInfo) -> list[str]:
        return [_one_of(name, info.context["backends"]) for name in value]


@functools.cache
def profile_model(settings: tuple[CloudSetting, ...]) -> type[Profile]:
    """Profile with a key for each of SETTINGS, checked as its service says (its choices, or its pattern)."""
    def kind(setting: CloudSetting):
        if setting.choices:
            return Literal[setting.choices]                 # type: ignore[valid-type]
        return Annotated[str, StringConstraints(pattern=f"^(?:{setting.pattern})$")]
    return create_model("Profile", __base__=Profile, **{s.key: (kind(s) | None, None) for s in settings})


def _one_of(value: str, allowed: list[str]) -> str:
    """VALUE if it is one of ALLOWED, else pydantic's own wording for a choice (as a Literal would say it)."""
    if value not in allowed:
        expected = ", ".join(repr(a) for a in allowed[:-1]) + f" or {allowed[-1]!r}"
        raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
    return value


@dataclass(frozen=True)
class LoadedProfile:
    name: str
    source: str        # "built-in", "user" or the path it came from
    profile: Profile


def user_profile_dir() -> Path:
    from platformdirs import user_config_dir

    return Path(user_config_dir("gptoss-deploy")) / "profiles"


def _builtin_dir() -> Path:
    return Path(str(resources.files("gptoss_deploy.profiles")))


def available_profiles(backends: Backends) -> list[LoadedProfile]:
    """Built-in profiles, with user profiles of the same name taking their place; BACKENDS: the registered ones."""
    found: dict[str, tuple[Path, str]] = {}
    for directory, source in ((_builtin_dir(), "built-in"), (user_profile_dir(), "user")):
        if directory.is_dir():
            for path in sorted(directory.glob("*.toml")):
                found[path.stem] = (path, source)
    return [_load(path, name, source, backends) for name, (path, source) in sorted(found.items())]


def load_profile(name_or_path: str, backends: Backends) -> LoadedProfile:
    """A profile by name (user dir first, then built-in) or by path (anything with a / or ending .toml)."""
    if "/" in name_or_path or name_or_path.endswith(".toml"):
        path = Path(name_or_path)
        if not path.is_file():
            raise UsageError(f"profile file {path} does not exist")
        return _load(path, path.stem, str(path), backends)
    for directory, source in ((user_profile_dir(), "user"), (_builtin_dir(), "built-in")):
        path = directory / f"{name_or_path}.toml"
        if path.is_file():
            return _load(path, name_or_path, source, backends)
    names = ", ".join(p.name for p in available_profiles(backends))
    raise UsageError(f"unknown profile {name_or_path!r}; choose one of: {names} (or pass a path to a .toml file)")


def _load(path: Path, name: str, source: str, backends: Backends) -> LoadedProfile:
    text = read_user_text(path, "profile", " (TOML is UTF-8)")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"profile {path}: not valid TOML ({err})") from None
    try:
        model = profile_model(tuple(declared_settings(backends).values()))
        return LoadedProfile(name, source, model.model_validate(data, context={"backends": list(backends)}))
    except ValidationError as err:
        first = err.errors()[0]
        key = str(first["loc"][0]) if first["loc"] else ""
        line = _line_of(text, key)
        where = f"{path}:{line}" if line else str(path)
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise UsageError(f"profile {where}: {key or 'profile'}: {message}") from None


def _line_of(text: str, key: str) -> int | None:
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
    for number, line in enumerate(text.splitlines(), start=1):
        if key and pattern.match(line):
            return number
    return None
