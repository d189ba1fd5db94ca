"""Constraints: every planning choice resolved by precedence (flag > env > profile > default), with its source."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING

from gptoss_deploy.planner.backend import CloudSetting, declared_settings
from gptoss_deploy.planner.calibration import Calibration
from gptoss_deploy.planner.catalog import (MAX_CONTEXT, MODELS, MXFP4_BYTES_PER_PARAM, REASONING_EFFORTS, VARIANT_MODELS,
                                          VARIANTS)
from gptoss_deploy.planner.errors import UsageError
from gptoss_deploy.planner.placement import MIN_CONTEXT
from gptoss_deploy.planner.profiles import LoadedProfile, load_profile
from gptoss_deploy.planner.units import gib

if TYPE_CHECKING:
    from gptoss_deploy.planner.plan import Backends

MODEL_ALIASES = {"auto": "auto", "20b": "20b", "120b": "120b", "gpt-oss-20b": "20b", "gpt-oss-120b": "120b"}
PRICE_FIELDS = ("usd_per_1m_input_tokens", "usd_per_1m_output_tokens", "usd_per_hour")
# A context whose full prompt would take longer than this to read is not a useful default: one the user did not
# choose (profile, default) is capped to what the predicted prefill reads in this time, never below the floor,
# where gpt-oss's harmony format and its reasoning still fit.
MAX_FULL_PROMPT_S = 60.0
MIN_CAPPED_CONTEXT = 4096
CONTEXT_STEP = 1024
ENV_VARS = {"model": "GPTOSS_MODEL", "backend": "GPTOSS_BACKEND", "context": "GPTOSS_CONTEXT",
            "reasoning_effort": "GPTOSS_REASONING_EFFORT", "local_only": "GPTOSS_LOCAL", "cloud": "GPTOSS_CLOUD",
            "variant": "GPTOSS_VARIANT"}
FLAG_NAMES = {"model": "--model", "backend": "--backend", "context": "--context",
              "reasoning_effort": "--reasoning-effort", "local_only": "--local", "cloud": "--cloud",
              "variant": "--variant"}


@dataclass(frozen=True)
class Constraints:
    profile: str = "auto"
    profile_path: str | None = None   # a profile read from a file (--profile ./mine.toml): how to name it again
    model: str = "auto"
    variant: str = "gpt-oss"          # whose weights (catalog.VARIANTS): a flag, variable or wizard answer only
    backend: str = "auto"
    context: int = 32768
    min_decode_tokens_per_s: float = 15.0
    reasoning_effort: str = "medium"
    local_only: bool = False
    cloud: bool = False               # asked for: a cloud service may win over a local plan below the speed floor
    backend_preference: tuple[str, ...] = ()
    region: str | None = None
    # the cloud services' own settings (CloudSetting), by key: profile < variable < flag for those the plan needs;
    # the profile's alone for those `up` reads (where to create the service)
    cloud_settings: Mapping[str, str] = field(default_factory=dict)
    prices: Mapping[str, float] = field(default_factory=dict)   # the profile's own prices, by price field
    gguf_bytes: int | None = None     # a local gpt-oss GGUF (--gguf): its own size replaces the catalog's
    foreign_model: bool = False       # a GGUF of another architecture: gpt-oss figures must not steer its launch
    # this machine's own benchmarks, by (engine, model): not a choice, a measurement (planner/calibration.py)
    calibrations: Mapping[tuple[str, str], Calibration] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)

    def source(self, name: str) -> str:
        return self.sources.get(name, "default")

    @property
    def local_file(self) -> bool:
        """Whether a local GGUF (--gguf) is the weights, whatever the variant or the backend's own downloads."""
        return self.gguf_bytes is not None or self.foreign_model

    def context_chosen(self) -> bool:
        """Whether the context is the user's (flag, env, wizard) or not the planner's to shorten (another model's
        file), rather than a default the planner may cap."""
        return self.foreign_model or self.source("context").startswith(("flag", "env", "wizard"))

    def chose(self, name: str) -> bool:
        """Whether the user made the choice NAME (a flag, the environment, the wizard, a profile), rather than a
        default or a rule of the command itself."""
        return self.source(name).startswith(("flag", "env", "wizard", "profile"))

    def undo(self, name: str) -> str:
        """How the user takes back their choice NAME (a model or backend: to auto; local only: to cloud allowed), in
        the words of where it came from."""
        source = self.source(name)
        if source.startswith("flag"):
            return f"drop {FLAG_NAMES[name]}"
        if source.startswith("env"):
            return f"unset {ENV_VARS[name]}"
        if source.startswith("wizard"):
            return f"answer {'cloud is fine' if name == 'local_only' else 'auto'} in the wizard"
        overriding = "--cloud" if name == "local_only" else f"{FLAG_NAMES[name]} auto"
        return f"{overriding}, over profile {self.profile}'s {name}"

    def relaxed(self, **changes) -> Constraints:
        return replace(self, **changes, sources={**self.sources, **{k: "relaxed" for k in changes}})


def _model(value: str, origin: str) -> str:
    try:
        return MODEL_ALIASES[value.lower()]
    except KeyError:
        variant = VARIANT_MODELS.get(str(value).lower())    # a variant's model by name: say its two flags
        hint = f" ({variant.name} is --model {variant.size} --variant {variant.variant})" if variant else ""
        raise UsageError(f"{origin}: unknown model {value!r}; choose auto, 20b or 120b{hint}") from None


def _backend_parser(backends: Backends):
    def parse(value: str, origin: str) -> str:
        if value != "auto" and value not in backends:
            raise UsageError(f"{origin}: unknown backend {value!r}; choose auto, {', '.join(backends)}")
        return value
    return parse


# The shortest context a user may ask for: gpt-oss's Harmony system prompt and its reasoning take a few thousand
# tokens before the answer starts, and the planner never plans below it (placement.MIN_CONTEXT).
MIN_USER_CONTEXT = MIN_CONTEXT
TOKENS = re.compile(r"\s*(\d+)\s*([kK]?)\s*")


def _context(value, origin: str) -> int:
    """A number of tokens, as 32768 or 32k (k = 1024)."""
    found = TOKENS.fullmatch(str(value)) if isinstance(value, (int, str)) and not isinstance(value, bool) else None
    number = int(found[1]) * (1024 if found[2] else 1) if found else 0
    if not MIN_USER_CONTEXT <= number <= MAX_CONTEXT:
        raise UsageError(f"{origin}: context must be a number of tokens from {MIN_USER_CONTEXT} (4k) to {MAX_CONTEXT} "
                         f"(128k), like 32768 or 32k (got {value!r}); below that, gpt-oss's system prompt and reasoning "
                         "leave no room for an answer")
    return number


def _variant(value: str, origin: str) -> str:
    if value not in VARIANTS:
        raise UsageError(f"{origin}: unknown variant {str(value)[:40]!r}; choose {' or '.join(VARIANTS)}")
    return value


def _effort(value: str, origin: str) -> str:
    if value not in REASONING_EFFORTS:
        raise UsageError(f"{origin}: reasoning effort must be {', '.join(REASONING_EFFORTS[:-1])} or "
                         f"{REASONING_EFFORTS[-1]} (got {value!r})")
    return value


def _flag_bool(value, origin: str) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("1", "true", "yes", "on"):
        return True
    if str(value).lower() in ("0", "false", "no", "off", ""):
        return False
    raise UsageError(f"{origin}: expected true or false (got {value!r})")


def checked_setting(setting: CloudSetting, value, origin: str) -> str:
    """VALUE, if SETTING takes it; else a usage error naming ORIGIN (a flag, a variable, a wizard answer)."""
    if setting.choices and value not in setting.choices:
        raise UsageError(f"{origin}: {setting.key} must be {' or '.join(setting.choices)} (got {str(value)[:80]!r})")
    if not setting.choices and not (isinstance(value, str) and re.fullmatch(setting.pattern, value)):
        raise UsageError(f"{origin}: {str(value)[:80]!r} is not a valid {setting.help}")
    return value


PARSERS = {"model": _model, "backend": None, "context": _context,   # backend: checked against the registered ones
           "reasoning_effort": _effort, "local_only": _flag_bool, "cloud": _flag_bool, "variant": _variant}


def resolve(profile: LoadedProfile, flags: Mapping[str, object], env: Mapping[str, str], backends: Backends,
            answers: Mapping[str, object] | None = None) -> Constraints:
    """Layer profile < GPTOSS_* environment < flags < wizard answers; record where each choice came from."""
    settings = declared_settings(backends)
    planned = {key: s for key, s in settings.items() if s.at_plan}
    parsers = {**PARSERS, "backend": _backend_parser(backends),
               **{key: partial(checked_setting, s) for key, s in planned.items()}}
    env_vars = {**ENV_VARS, **{k: s.env for k, s in planned.items() if s.env}}
    flag_names = flag_names_of(backends)
    p = profile.profile
    values = {"model": p.model, "backend": p.backend, "context": p.context,
              "reasoning_effort": p.reasoning_effort, "local_only": p.local_only, "cloud": p.cloud,
              **{key: getattr(p, key) for key in settings}}
    sources = {name: f"profile {profile.name}" for name in values}
    for name, parse in parsers.items():
        if env_vars.get(name) and env.get(env_vars[name]) is not None:
            values[name] = parse(env[env_vars[name]], f"{env_vars[name]}={env[env_vars[name]]}")
            sources[name] = f"env {env_vars[name]}"
        if flags.get(name) is not None:
            values[name] = parse(flags[name], f"{flag_names[name]} {flags[name]}")
            sources[name] = f"flag {flag_names[name]}"
        if answers and answers.get(name) is not None:
            values[name] = parse(answers[name], f"wizard answer {answers[name]}")
            sources[name] = "wizard answer"
    if values["local_only"] and values["cloud"]:
        if not sources["local_only"].startswith("profile"):
            raise UsageError(f"{sources['cloud']} asks for cloud and {sources['local_only']} forbids it: drop one")
        values["local_only"], sources["local_only"] = False, f"off: {sources['cloud']} beats the profile"
    if values["local_only"] and values["backend"] != "auto" and backends[values["backend"]].cloud:
        if sources["backend"].startswith("flag"):
            raise UsageError(f"--backend {values['backend']} is a cloud backend, and --local forbids cloud backends")
        values["backend"], sources["backend"] = "auto", f"auto: {sources['local_only']} excludes {values['backend']}"
    cloud_settings = {key: value for key in settings if (value := values.pop(key)) is not None}
    sources = {name: source for name, source in sources.items() if name not in settings or name in cloud_settings}
    return Constraints(
        profile=profile.name, profile_path=None if profile.source in ("user", "built-in") else profile.source,
        min_decode_tokens_per_s=p.min_decode_tokens_per_s,
        backend_preference=tuple(p.backend_preference), region=p.region, cloud_settings=cloud_settings,
        prices={k: v for k in PRICE_FIELDS if (v := getattr(p, k)) is not None},
        sources=sources, **values,
    )


def flag_names_of(backends: Backends) -> dict[str, str]:
    """The flag of each choice: the planner's own, and those of the settings BACKENDS declare."""
    return {**FLAG_NAMES, **{key: s.flag for key, s in declared_settings(backends).items() if s.flag}}


def load_constraints(profile: str | None, flags: Mapping[str, object], env: Mapping[str, str], backends: Backends,
                     answers: Mapping[str, object] | None = None) -> Constraints:
    """The profile named by --profile, else GPTOSS_PROFILE, else auto; then the layers above it."""
    loaded = load_profile(profile or env.get("GPTOSS_PROFILE") or "auto", backends)
    return resolve(loaded, flags, env, backends, answers)


def as_flags(constraints: Constraints, leave_out: tuple[str, ...] = ()) -> list[str]:
    """Flags that reproduce these constraints: the profile (by its path where it came from a file) plus every choice
    a flag or the wizard made, but those named in LEAVE_OUT (a command that has no such flag)."""
    flags = ["--profile", constraints.profile_path or constraints.profile]
    for name, flag in FLAG_NAMES.items():
        if constraints.source(name).startswith(("flag", "wizard")) and name not in leave_out:
            value = getattr(constraints, name)
            if name in ("local_only", "cloud"):
                flags += [flag] if value else []
            else:
                flags += [flag, str(value)]
    for key, value in constraints.cloud_settings.items():     # a cloud service's own: its flag is in the source
        if constraints.source(key).startswith("flag ") and key not in leave_out:
            flags += [constraints.source(key).removeprefix("flag "), value]
    return flags


def for_gguf(constraints: Constraints, gguf, backends: Backends) -> Constraints:
    """A local GGUF file runs on a backend that serves GGUF files (llama.cpp); a gpt-oss one is planned as the
    model it is, with its own size."""
    serving = next(b for b in backends.values() if not b.cloud and b.serves_gguf_files)
    if constraints.source("backend").startswith("flag") and constraints.backend not in ("auto", serving.name):
        raise UsageError(f"--gguf runs on {serving.title}: drop --backend {constraints.backend}")
    constraints = replace(constraints, backend=serving.name, local_only=True)
    if gguf.gpt_oss_size is None:
        return replace(constraints, foreign_model=True)
    if constraints.source("model").startswith("flag") and constraints.model not in ("auto", gguf.gpt_oss_size):
        raise UsageError(f"--gguf {gguf.path.name} is gpt-oss-{gguf.gpt_oss_size}: drop --model")
    experts = MODELS[gguf.gpt_oss_size].expert_params * MXFP4_BYTES_PER_PARAM
    if gguf.size_bytes < experts:             # the placement subtracts the experts from the file's size
        raise UsageError(f"--gguf {gguf.path.name} is gpt-oss-{gguf.gpt_oss_size} but holds only "
                         f"{gib(gguf.size_bytes)}, less than its MXFP4 experts alone ({gib(experts)}): is the "
                         "file complete?")
    return replace(constraints, model=gguf.gpt_oss_size, gguf_bytes=gguf.size_bytes)
