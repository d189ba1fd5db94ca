"""What the planner asks of a backend: a small protocol that backends implement. The planner never imports them;
the CLI hands plan() the registered ones."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from gptoss_deploy.planner.catalog import Artifact, CloudOffer, ModelSpec
from gptoss_deploy.planner.hardware import HardwareReport
from gptoss_deploy.planner.placement import Placement, Rejection
from gptoss_deploy.planner.throughput import Prediction


class MachineClass(str, Enum):
    """Which local backends `--backend auto` tries, and in which order, depends on the machine's class."""

    DATACENTER = "datacenter"   # every GPU a datacenter part the vLLM recipe runs (A100, H100, B200, MI300X...)
    # Datacenter parts the recipe lists as work in progress (L4, L40S, A10G) or does not run (T4), and machines of
    # several nodes: llama.cpp first, vLLM after it (the one engine that serves over nodes).
    SERVER = "server"
    DESKTOP = "desktop"         # desktops, laptops, Macs, CPU-only machines


@dataclass(frozen=True)
class CloudSetting:
    """A setting one cloud service owns (Azure's workspace, its mode): a key in profiles, a flag, a variable. The
    profile reader, the constraints and the CLI take them from the services that declare them (`settings`)."""

    key: str                             # the profile key, and its key in Constraints.cloud and LaunchSettings.cloud
    help: str
    flag: str | None = None              # the command-line flag; None: profiles only
    env: str | None = None               # the variable that sets it
    choices: tuple[str, ...] = ()        # the values it takes; none: text matching PATTERN
    pattern: str = r"\S{1,200}"
    at_plan: bool = True                 # the plan depends on it: `gptoss-plan` takes the flag, the variable is read
                                         # when planning; False: `up` reads them, where it creates the service


@dataclass(frozen=True)
class LaunchSettings:
    """What a launch is built from beyond the placement: where it listens, how it reasons, where in the cloud."""

    host: str = "127.0.0.1"          # loopback unless the user asks otherwise (then an API key is required)
    port: int | None = None          # None: the backend's usual port
    reasoning_effort: str = "medium"
    context: int = 32768             # the target; a cloud service's GPU size is fitted to it
    region: str | None = None        # cloud backends
    cloud: Mapping[str, str] = field(default_factory=dict)   # the cloud services' own settings, by CloudSetting.key


@dataclass(frozen=True)
class LocalLaunch:
    """A local engine's launch, as build_launch plans it: the command and its variables, what it loads, where it
    answers, and (Ollama, LM Studio) the load request sent once it runs. The plan's `launch` section."""

    argv: list[str]
    env: dict[str, str]
    model_ref: str
    base_url: str
    model_files: tuple[str, ...] = ()
    served_model: str | None = None
    request: dict | None = None

    def to_json(self) -> dict:
        optional = {"model_files": list(self.model_files) or None, "served_model": self.served_model,
                    "request": self.request}
        return {"argv": list(self.argv), "env": dict(self.env), "model_ref": self.model_ref,
                **{name: value for name, value in optional.items() if value is not None}, "base_url": self.base_url}


@dataclass(frozen=True)
class ApiLaunch:
    """A cloud service's launch: the API call `up` makes."""

    api: dict

    def to_json(self) -> dict:
        return {"api": self.api}


@dataclass(frozen=True)
class CloudQuote:
    """A cloud backend's answer for one model: the API call, the offer, the reasons and price it states."""

    launch: ApiLaunch
    offer: CloudOffer
    reasons: tuple[str, ...]
    price: dict
    prediction: Prediction | None = None   # where the service runs a GPU size we picked (Azure managed compute)


class LocalEngine(Protocol):
    """A server on this machine. The planner places the model by the engine's offload kind."""

    name: str
    title: str
    cloud: bool                                  # False
    offload: str                                 # placement.OFFLOAD_KINDS: experts | layers | whole_model
    auto_rank: Mapping[MachineClass, int]        # its place when --backend auto; absent: not tried by itself
    why_chosen: str                              # the plan's reason when auto picked it
    serves_gguf_files: bool                      # can run a local GGUF (--gguf)
    host_caches: bool                            # keeps prompts in RAM on the plan's budget (llama-server)
    settings: tuple[CloudSetting, ...]           # none so far: a local engine's choices are the plan's
    models: tuple[str, ...]                      # the models it has weights of (catalog names)

    def artifact(self, model: ModelSpec, hw: HardwareReport) -> Artifact:
        """What it loads for MODEL on HW (Foundry Local: the variant it plans for the device)."""

    def computes_on(self, hw: HardwareReport) -> HardwareReport:
        """The part of HW it runs the model on: all of it, or the CPU alone (Foundry Local's CPU variant)."""

    def unsupported(self, model: ModelSpec, hw: HardwareReport) -> str | None:
        """Why it cannot serve MODEL on HW whatever the memory (its catalog, its devices); None: placement decides."""

    def build_launch(self, placement: Placement, settings: LaunchSettings) -> LocalLaunch: ...

    def placement_reasons(self, placement: Placement, hw: HardwareReport) -> list[str]:
        """How PLACEMENT offloads, splits and caches, in the engine's own flags: the plan's explanation quotes it."""


class CloudService(Protocol):
    """A hosted endpoint. Nothing is called on the network while planning."""

    name: str
    title: str
    cloud: bool                                  # True
    settings: tuple[CloudSetting, ...]           # what it takes beyond the region (Azure's workspace and mode)
    models: tuple[str, ...]                      # the models it sells (catalog names)

    def quote(self, model: ModelSpec, settings: LaunchSettings) -> CloudQuote | Rejection: ...


PlannedBackend = LocalEngine | CloudService


def declared_settings(backends: Mapping[str, PlannedBackend]) -> dict[str, CloudSetting]:
    """Every setting the registered BACKENDS declare, by key (profiles, flags and variables are read by these)."""
    return {setting.key: setting for backend in backends.values() for setting in backend.settings}
