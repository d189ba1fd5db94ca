"""A saved plan's values read strictly: an engine's flags each with its converter (bounded numbers, text on one
line, closed sets), the variables it may set, and the programs the GPTOSS_* settings name. A saved plan is
untrusted input: what does not parse is a usage error naming where it is, and never reaches an engine."""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gptoss_deploy.planner.errors import UsageError


@dataclass(frozen=True)
class Several:
    """A flag that takes one or more values (vLLM's --served-model-name A B): each checked by CONVERT."""

    convert: Callable[[str], object]


def parse_flags(argv: list[str], flags: Mapping[str, Callable[[str], object] | Several | None],
                where: str = "launch.argv") -> dict[str, object]:
    """ARGV's flags, strictly: each one known (FLAGS maps it to a converter, Several(converter), or None for a
    switch) and given once. A saved plan is untrusted input: anything else is a usage error naming the flag and
    WHERE in the plan it is, never passed through."""
    found: dict[str, object] = {}
    rest = list(argv)
    while rest:
        flag = rest.pop(0)
        if flag not in flags:
            raise UsageError(f"the plan's {where} has a flag gptoss does not plan: {flag!r}")
        if flag in found:
            raise UsageError(f"the plan's {where} gives {flag} twice")
        convert = flags[flag]
        if convert is None:
            found[flag] = True
            continue
        count = 1
        if isinstance(convert, Several):
            while count < len(rest) and not rest[count].startswith("-"):
                count += 1
            convert = convert.convert
        if not rest:
            raise UsageError(f"the plan's {where} ends without a value for {flag}")
        values, rest = rest[:count], rest[count:]
        try:
            converted = [convert(value) for value in values]
        except (ValueError, TypeError, KeyError):     # KeyError: a value outside a converter's closed set
            raise UsageError(f"the plan's {where} has {flag} {' '.join(values)!r}, which is not a valid value") \
                from None
        found[flag] = tuple(converted) if isinstance(flags[flag], Several) else converted[0]
    return found


def word(text: str) -> str:
    """A converter of a saved plan's text value (a model, an alias, a host): something, on one line."""
    if not text.strip() or not text.isprintable():
        raise ValueError(text)
    return text


def configured_program(variable: str) -> str | None:
    """The program the GPTOSS_* VARIABLE names, if set. One that exists but cannot be run (a directory, a file
    without the execute bit) is a usage error naming the variable; one that does not exist here is left to the
    launch, which says so (a dry run may show another machine's path)."""
    value = os.environ.get(variable)
    if value and os.path.exists(value) and (os.path.isdir(value) or not os.access(value, os.X_OK)):
        raise UsageError(f"{variable}={value} is not a program this user can run: point it at the executable, or "
                         "unset it")
    return value or None


def bounded(low: int, high: int) -> Callable[[str], int]:
    """A converter of a whole number from LOW to HIGH, for a saved plan's flag: anything else never reaches the
    engine (a negative --ctx-size aborts llama-server)."""
    def convert(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise ValueError(text)
        return value
    return convert


def port_number(text: str) -> int:
    port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError(text)
    return port


def checked_env(env: Mapping[str, str], allowed: Mapping[str, tuple[str, ...]],
                where: str = "launch.env") -> dict[str, str]:
    """A plan's server environment, limited to the variables (and values) the backend plans: a saved plan that
    sets anything else (PYTHONPATH, LD_PRELOAD...) is refused."""
    for name, value in env.items():
        if name not in allowed or (allowed[name] and value not in allowed[name]):
            raise UsageError(f"the plan's {where} sets {name}={value!r}, which gptoss does not plan")
    return dict(env)


def checked_fields(values: object, fields: Mapping[str, Callable[[object], bool]], where: str) -> dict:
    """A saved plan's object (a cloud call) strictly: every field FIELDS names present and accepted by its check,
    and no other. A mismatch is a usage error naming the field, so nothing unplanned reaches a cloud API."""
    if not isinstance(values, dict):
        raise UsageError(f"the plan's {where} is not an object")
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise UsageError(f"the plan's {where} has a field gptoss does not plan: {unknown[0][:40]!r}")
    for name, accepts in fields.items():
        if name not in values:
            raise UsageError(f"the plan's {where} lacks {name}")
        if not accepts(values[name]):
            raise UsageError(f"the plan's {where}.{name} is {str(values[name])[:80]!r}, which gptoss does not plan")
    return values


def one_of(*allowed: object) -> Callable[[object], bool]:
    return lambda value: isinstance(value, str) and value in allowed


def text_matching(pattern: str) -> Callable[[object], bool]:
    return lambda value: isinstance(value, str) and re.fullmatch(pattern, value) is not None


def whole_number(low: int, high: int) -> Callable[[object], bool]:
    return lambda value: type(value) is int and low <= value <= high


def object_of(fields: Mapping[str, Callable[[object], bool]]) -> Callable[[object], bool]:
    """An object with exactly FIELDS, each accepted."""
    return lambda value: (isinstance(value, dict) and set(value) == set(fields)
                          and all(accepts(value[name]) for name, accepts in fields.items()))


def optional(accepts: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda value: value is None or accepts(value)
