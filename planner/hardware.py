"""HardwareReport: what the planner knows about a machine, read live (planner.probe) or from JSON."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gptoss_deploy.planner.errors import UsageError, validation_problems
from gptoss_deploy.planner.files import read_user_text
from gptoss_deploy.planner.units import gib
from gptoss_deploy.planner.vendors import GPU_VENDORS

SCHEMA_VERSION = 1


class _Strict(BaseModel):
    # Unknown keys are refused: a typo (`bandwith_gbps`) would otherwise change the prediction without a word.
    model_config = ConfigDict(frozen=True, extra="forbid")


class Cpu(_Strict):
    model: str = "unknown CPU"
    physical_cores: int = Field(ge=1)
    logical_cores: int = Field(ge=1)


class Memory(_Strict):
    total_bytes: int = Field(gt=0)
    available_bytes: int = Field(ge=0)
    bandwidth_gbps: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _available_within_total(self) -> Memory:
        if self.available_bytes > self.total_bytes:
            raise ValueError("available_bytes is more than total_bytes")
        return self


class Gpu(_Strict):
    index: int = Field(ge=0)
    vendor: str = Field(json_schema_extra={"enum": list(GPU_VENDORS)})     # one of planner/vendors.py's records
    name: str
    memory_total_bytes: int = Field(gt=0)
    memory_free_bytes: int = Field(ge=0)
    memory_bandwidth_gbps: float | None = Field(default=None, gt=0)
    compute_capability: str | None = None
    unified_memory: bool = False

    @field_validator("vendor")
    @classmethod
    def _known_vendor(cls, vendor: str) -> str:
        if vendor not in GPU_VENDORS:
            raise ValueError(f"vendor {vendor[:40]!r} is none of {', '.join(GPU_VENDORS)}")
        return vendor

    @model_validator(mode="after")
    def _free_within_total(self) -> Gpu:
        if self.memory_free_bytes > self.memory_total_bytes:
            raise ValueError("memory_free_bytes is more than memory_total_bytes")
        return self


class Disk(_Strict):
    path: str
    free_bytes: int = Field(ge=0)


class HardwareReport(_Strict):
    schema_version: Literal[1]
    os: Literal["linux", "darwin", "windows"]
    arch: str
    cpu: Cpu
    memory: Memory
    gpus: list[Gpu] = []
    disk: Disk | None = None
    notes: list[str] = []
    # Identical nodes planned as one vLLM group (`--nodes`): GPUS lists every node's, CPU and memory are one node's.
    nodes: int = Field(default=1, ge=1, le=64)

    @model_validator(mode="after")
    def _gpus_shared_by_nodes(self) -> HardwareReport:
        if self.nodes > 1 and (not self.gpus or len(self.gpus) % self.nodes):
            raise ValueError(f"{len(self.gpus)} GPUs cannot be {self.nodes} identical nodes")
        return self

    def gpus_per_node(self) -> int:
        return len(self.gpus) // self.nodes

    def to_json(self) -> dict:
        return self.model_dump(mode="json")


def hardware_from_dict(data: object, source: str) -> HardwareReport:
    """Validate a hardware description; any problem is one line naming SOURCE and the field."""
    if not isinstance(data, dict):
        raise UsageError(f"{source}: expected a JSON object as printed by `gptoss probe --json`")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise UsageError(
            f"{source}: schema_version must be {SCHEMA_VERSION} (got {data.get('schema_version')!r}); "
            "re-create it with `gptoss probe --json`"
        )
    try:
        return HardwareReport.model_validate(data)
    except ValidationError as err:
        raise UsageError(f"{source}: {validation_problems(err)}") from None


SAME_SIZE = 0.10    # memory totals further apart than this are another machine's (free memory varies, totals not)


def differences(described: HardwareReport, here: HardwareReport) -> list[str]:
    """How the machine DESCRIBED differs from this one HERE, in what a plan depends on: its GPUs and their
    memory, and its RAM. Empty when a plan for one runs on the other."""
    found = []
    if sorted(g.name for g in described.gpus) != sorted(g.name for g in here.gpus):
        found.append(f"GPUs: {_gpus(described)} described, {_gpus(here)} here")
    else:
        for theirs, ours in zip(_by_index(described), _by_index(here)):
            if not _close(theirs.memory_total_bytes, ours.memory_total_bytes):
                found.append(f"{ours.name} memory: {gib(theirs.memory_total_bytes)} described, "
                             f"{gib(ours.memory_total_bytes)} here")
    if not _close(described.memory.total_bytes, here.memory.total_bytes):
        found.append(f"RAM: {gib(described.memory.total_bytes)} described, {gib(here.memory.total_bytes)} here")
    return found


def _by_index(hw: HardwareReport) -> list[Gpu]:
    return sorted(hw.gpus, key=lambda g: g.index)


def _gpus(hw: HardwareReport) -> str:
    kinds = Counter(f"{g.name} ({gib(g.memory_total_bytes)})" for g in _by_index(hw))
    return ", ".join(f"{count} x {kind}" for kind, count in kinds.items()) or "none"


def _close(a: int, b: int) -> bool:
    return abs(a - b) <= SAME_SIZE * max(a, b)


EXAMPLES = Path(__file__).parent / "examples"   # ready-made hardware files for common machines (package data)


def example_names() -> list[str]:
    return sorted(p.stem for p in EXAMPLES.glob("*.json"))


def example_text(name: str) -> str:
    """The example hardware file NAME, as shipped: a starting point for describing a machine one does not have."""
    if name not in example_names():
        raise UsageError(f"no example machine {name[:80]!r}; choose one of: {', '.join(example_names())}")
    return (EXAMPLES / f"{name}.json").read_text()


def load_hardware(path: str | Path) -> HardwareReport:
    """Read a hardware file (same schema as `gptoss probe --json`)."""
    path = Path(path)
    text = read_user_text(path, "hardware file", f"; create it with `gptoss probe --json > {path.name}`")
    if not text.strip():
        raise UsageError(f"hardware file {path} is empty; create it with `gptoss probe --json > {path.name}`")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise UsageError(f"hardware file {path} is not valid JSON (line {err.lineno}: {err.msg})") from None
    return hardware_from_dict(data, str(path))
