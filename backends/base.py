"""The backend interface (one object per adapter owns everything backend-specific) and what adapters share."""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from gptoss_deploy.backends.addresses import check_host, check_name, endpoint
from gptoss_deploy.backends.usage import WILDCARD_HOSTS, EndpointDescription, server_usage
from gptoss_deploy.planner.backend import (ApiLaunch, CloudQuote, CloudSetting, LaunchSettings, LocalLaunch,
                                          MachineClass)
from gptoss_deploy.planner.catalog import Artifact, CloudOffer, ModelSpec
from gptoss_deploy.planner.errors import BackendError, UsageError
from gptoss_deploy.planner.hardware import HardwareReport
from gptoss_deploy.planner.placement import Placement, Rejection
from gptoss_deploy.planner.units import gib

if TYPE_CHECKING:
    from gptoss_deploy.backends.engine_report import EngineReport
    from gptoss_deploy.planner.documents import PlanDocument

API_KEY_ENV = "OPENAI_API_KEY"
CONTAINER_PORT = 8000     # where an exported server listens inside its container


# llama-server reads --api-key-file line by line, skipping lines that begin with # (LCS): such a key, or one with
# white space, would leave the server open while we report it protected.
MIN_API_KEY_CHARS = 16


def _check_api_key(key: str) -> None:
    problem = ("begins with #, which llama-server reads as a comment" if key.startswith("#") else
               "holds white space" if any(c.isspace() or not c.isprintable() for c in key) else
               f"is shorter than {MIN_API_KEY_CHARS} characters: use at least 16 characters"
               if len(key) < MIN_API_KEY_CHARS else None)
    if problem:
        raise UsageError(f"GPTOSS_API_KEY {problem}; set another key, or unset it to have one generated")


@dataclass(frozen=True)
class UpOptions:
    """What the user asked of `gptoss-up` beyond the plan itself; checked when made, before anything starts."""

    name: str | None = None
    host: str | None = None                  # None: what the plan says (127.0.0.1)
    port: int | None = None                  # None: what the plan says
    gguf: Path | None = None                 # a local GGUF instead of the hub download
    ready_timeout_s: float | None = None     # None: scaled to the model's size
    api_key: str | None = None               # from GPTOSS_API_KEY, never a flag (flags show in `ps`)
    cloud: Mapping[str, str] = field(default_factory=dict)   # a cloud service's settings given at `up`, by key
    calibrate: bool = True                   # predictions use this machine's benchmarks (--no-calibration: False)

    def __post_init__(self) -> None:
        if self.name is not None:
            check_name(self.name)
        if self.host is not None:
            check_host(self.host)
        if self.api_key is not None:
            _check_api_key(self.api_key)
        if self.ready_timeout_s is not None and not (math.isfinite(self.ready_timeout_s) and self.ready_timeout_s > 0):
            raise UsageError(f"--ready-timeout {self.ready_timeout_s}: give a number of seconds above 0")


@dataclass(frozen=True)
class ContainerCommand:
    """A plan's server in its engine's published image (exports): what the container runs, in what environment."""

    entrypoint: list[str]
    args: list[str]
    env: dict[str, str]
    health: list[str] = field(default_factory=list)   # a command inside the container: does the server answer
    key_file: str | None = None      # where the server reads its API key from a file; None: from the key variable


# A UID no image names, above the range of a node's own users (checkov CKV_K8S_40): for an image that needs none.
NONROOT_UID = 10001
INTEL_DEVICES_NEED_ROOT = ("Intel GPUs' device files (/dev/dri) belong to the node's render group, whose number "
                           "differs from node to node: root reaches them on every node")
ROCM_DEVICES_NEED_ROOT = ("AMD GPUs' device files (/dev/kfd, /dev/dri) belong to the node's video and render groups, "
                          "whose numbers differ from node to node: root reaches them on every node")


@dataclass(frozen=True)
class ContainerImage:
    """An engine's published image for one kind of machine, and the user it runs as in a cluster."""

    ref: str
    user: int | None     # a non-root UID it runs as; None: root
    why: str             # why that user: the image's own below 10000, or what keeps it root


@dataclass(frozen=True)
class CloudEndpoint:
    """How clients call a cloud deployment: an OpenAI-compatible base URL, or Bedrock's region and model id."""

    model: str
    base_url: str | None = None
    api_key_env: str | None = None       # where clients read the key from, in words
    model_id: str | None = None
    region: str | None = None
    name: str | None = None              # the endpoint's name at the service
    kind: str | None = None              # Azure: "serverless_endpoint" or "online_endpoint"


@dataclass(frozen=True)
class Provisioned:
    """What a cloud adapter's provision did: how and where it serves, as whom, and what `down` deletes."""

    protocol: str                        # how clients speak to it: "bedrock", "azure", "openai"
    region: str
    endpoint: CloudEndpoint
    cloud_resources: list[tuple[str, str]] = field(default_factory=list)    # kind, name: what `down` deletes
    account: str | None = None           # whose account it runs in, as the service's sign-in said
    identity: str | None = None
    coordinates: Mapping[str, str] = field(default_factory=dict)   # the adapter's own record fields (Azure's workspace)
    warnings: list[str] = field(default_factory=list)


def health_probe(port: int) -> list[str]:
    """A container's health command where its image has Python but no curl: GET /health on PORT answers."""
    return ["python3", "-c", f"import urllib.request; urllib.request.urlopen('http://localhost:{port}/health')"]


def key_config_path(key_file: Path) -> Path:
    """Where an engine that reads its API key only from a config file (SGLang) gets one: beside the key file, this
    user's only, and removed with it (runtime.state.StateStore.forget)."""
    return key_file.with_suffix(".yaml")          # SGLang reads --config files named .yaml or .yml only


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
    plan_applies: bool = True                # False: the model that runs is not the planned one (a --gguf of another)
    api_key_file: Path | None = None
    unavailable: str | None = None           # why it cannot start here (not installed...): dry runs still show it
    command: Any = None                      # the adapter's typed command; argv is rendered from it
    # What the adapter set up in a server that is not our process (LM Studio's: a model it loaded, the server it
    # started): kind, name. `down`, or a failed `up`, hands them back to release().
    created: list[tuple[str, str]] = field(default_factory=list)
    commands: list[list[str]] = field(default_factory=list)   # what the adapter itself runs, in order (LM Studio's lms)

    def set_command(self, command) -> None:
        """Change the typed command (the model file, the key file): argv follows, never patched by hand."""
        self.command = command
        self.argv = command.argv()

    @property
    def base_url(self) -> str:
        # A wildcard bind is reached locally over loopback; other machines use this machine's address.
        return endpoint(WILDCARD_HOSTS.get(self.host, self.host), self.port)


LOAD_BYTES_PER_S = 100e6   # a slow disk: the readiness deadline only has to outlast a healthy load


def ready_deadline_s(options: UpOptions, start_s: float, model_bytes: float) -> float:
    """--ready-timeout, else the server's own start-up time plus reading the model from a slow disk."""
    return options.ready_timeout_s or start_s + model_bytes / LOAD_BYTES_PER_S


Progress = Callable[[str], None]


@dataclass(frozen=True)
class Prerequisite:
    """One thing a plan needs on the machine that runs `gptoss-up`, whether it is there, and the fix when not."""

    need: str
    met: bool
    fix: str | None = None

    def to_json(self) -> dict:
        return {"need": self.need, "met": self.met, "fix": None if self.met else self.fix}


def relaunched(plan: PlanDocument, argv: list[str], **offload) -> PlanDocument:
    """PLAN with launch.argv ARGV and the OFFLOAD fields given: a leaner rung of the fallback ladder."""
    return plan.model_copy(update={"launch": plan.launch.model_copy(update={"argv": argv}),
                                   "offload": plan.offload.model_copy(update=offload)})


class Backend(ABC):
    """One way to serve gpt-oss. Keyword-only methods: adapters are called by name, never by position."""

    name: ClassVar[str]
    title: ClassVar[str]
    cloud: ClassVar[bool]
    serves_gguf_files: ClassVar[bool] = False            # can serve a local GGUF (--gguf)
    settings: ClassVar[tuple[CloudSetting, ...]] = ()    # its own settings: a key in profiles, a flag, a variable

    sdk_module: ClassVar[str | None] = None              # the Python package it drives, from extra EXTRA
    extra: ClassVar[str | None] = None

    @abstractmethod
    def unavailable(self) -> str | None:
        """Why it cannot run from this installation (no binary, no SDK), with the fix; None when it can.
        Nothing is called on the network."""

    @property
    @abstractmethod
    def models(self) -> tuple[str, ...]:
        """The models it has weights of, or sells (catalog names)."""

    def has_no(self, model: str) -> str:
        """Why it cannot serve MODEL: a variant it has no weights of."""
        return f"{self.title} has no {model} (only {', '.join(self.models)})"

    def sdk_missing(self) -> str | None:
        """The install line when the SDK this adapter drives is not installed; None when it is, or needs none."""
        import importlib.util

        if self.sdk_module is None:
            return None
        try:
            found = importlib.util.find_spec(self.sdk_module) is not None
        except (ImportError, ValueError):              # a parent package missing, or not a package
            found = False
        return None if found else f"{self.title} needs its SDK: pip install 'gptoss-deploy[{self.extra}]'"

    def prerequisites(self, *, model: str, hardware: HardwareReport) -> list[Prerequisite]:
        """What serving MODEL needs from this installation and HARDWARE, each checked here without touching the
        network."""
        if self.sdk_module is None:
            return []
        return [Prerequisite(f"the {self.sdk_module} Python package (extra {self.extra})", self.sdk_missing() is None,
                             f"pip install 'gptoss-deploy[{self.extra}]'")]

    def require_sdk(self) -> None:
        """Stop with the install line (exit 4) when the SDK this adapter drives is not installed."""
        missing = self.sdk_missing()
        if missing:
            raise BackendError(missing)

    takes_effort: ClassVar[bool] = True                   # reasoning effort can be asked per request

    def leaner(self, plan: PlanDocument) -> tuple[PlanDocument, str] | None:
        """PLAN launched asking less of the GPUs' memory (same model and context), and the change in words: the
        fallback ladder's rung below the smallest context (runtime.fallback); None where none is left."""
        return None

    @abstractmethod
    def stream_client(self, *, record: dict, api_key: str | None, effort: str):
        """The benchmark's client for a recorded deployment (backends.streaming.StreamClient), asking EFFORT."""

    @abstractmethod
    def describe(self, *, record: dict, reused: bool) -> EndpointDescription:
        """What to tell a person about RECORD: how to call it, where its key is, how to stop it."""


class LocalBackend(Backend):
    """A server process on this machine, supervised by `up` (runtime.deploy)."""

    cloud: ClassVar[bool] = False
    offload: ClassVar[str]                               # planner.placement.OFFLOAD_KINDS
    auto_rank: ClassVar[Mapping[MachineClass, int]] = {}  # its place when --backend auto; absent: not tried
    why_chosen: ClassVar[str] = ""                       # the plan's reason when auto picked it
    artifacts: ClassVar[Mapping[str, Artifact]]          # by model name: what it loads (none: it has no such model)
    checks_identity_when_ready: ClassVar[bool] = True    # /v1/models lists the model as soon as it serves
    has_health: ClassVar[bool] = True                    # GET /health says whether it still loads (llama-server)
    host_caches: ClassVar[bool] = False                  # its prompt cache and checkpoints sized by the plan
    # Exports: the engine's published image by GPU vendor (None: no GPU), the variable its server reads its API key
    # from, and what it writes beyond its model cache and /tmp ("": its root filesystem can be read-only); an
    # engine without images is not exported.
    container_images: ClassVar[Mapping[str | None, ContainerImage]] = {}
    key_env: ClassVar[str | None] = None
    container_writes: ClassVar[str] = ""

    def key_from_environment(self) -> str:
        """Why its container takes the API key from a variable rather than a mounted file (an export's waiver)."""
        return f"{self.title} reads its API key from {self.key_env} only (or argv, which ps shows)"
    # The Placement fields its launch renders, each by the words it is written with in the command, environment or
    # load request (any one of them); and those it leaves to the engine, with why. A field in neither is dropped,
    # which tests/test_backend_interface.py fails on.
    renders: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    leaves_to_engine: ClassVar[Mapping[str, str]] = {}

    def artifact(self, model: ModelSpec, hw: HardwareReport | None = None) -> Artifact:
        return self.artifacts[model.name]

    def computes_on(self, hw: HardwareReport) -> HardwareReport:
        return hw

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self.artifacts)

    def unsupported(self, model: ModelSpec, hw: HardwareReport) -> str | None:
        return None if model.name in self.artifacts else self.has_no(model.name)

    def placement_reasons(self, placement: Placement, hw: HardwareReport) -> list[str]:
        """The plan's reasons for how PLACEMENT offloads, splits and caches, in its engine's flags."""
        return []

    program: ClassVar[str]                               # what runs the server, in words

    @abstractmethod
    def program_missing(self) -> str | None:
        """How to install the server program when it is not found here; None when it is."""

    def unavailable(self) -> str | None:
        return self.sdk_missing() or self.program_missing()

    def download_bytes(self, model: str) -> int | None:
        """Bytes `up` downloads into the Hugging Face cache for MODEL, all of it (looking into the cache would import
        huggingface_hub while planning; `up --dry-run` says what is cached); None where the engine keeps its own
        store, or it downloads nothing of MODEL (a variant it has no weights of, served from a --gguf file)."""
        artifact = self.artifacts.get(model)
        return artifact.disk_bytes if artifact else None

    def prerequisites(self, *, model, hardware) -> list[Prerequisite]:
        missing = self.program_missing()
        found = [*super().prerequisites(model=model, hardware=hardware),
                 Prerequisite(self.program, missing is None, missing)]
        download = self.download_bytes(model)
        if download is not None and hardware.disk is not None:
            from gptoss_deploy.backends.hub import DISK_MARGIN_BYTES

            found.append(Prerequisite(
                f"{gib(download + DISK_MARGIN_BYTES)} free for the download in {hardware.disk.path} "
                f"({gib(hardware.disk.free_bytes)} free)", hardware.disk.free_bytes >= download + DISK_MARGIN_BYTES,
                "free some space, set HF_HUB_CACHE to a bigger disk, or pass --gguf PATH"))
        return found

    @abstractmethod
    def build_launch(self, placement: Placement, settings: LaunchSettings) -> LocalLaunch:
        """The plan's command for PLACEMENT: a pure function (golden files hold its output)."""

    def command_here(self, *, plan: PlanDocument, hardware: HardwareReport | None) -> list[str]:
        """The command `up` would run for PLAN on this installation, as far as it is known without downloading or
        asking a server (the model file shows as <repo/file> until it is in the cache)."""
        return list(plan.launch.argv)

    @abstractmethod
    def server_launch(self, *, plan: PlanDocument, options: UpOptions, hardware: HardwareReport | None,
                      gguf) -> ServerLaunch:
        """What `up` runs for PLAN here, decided but not started; `unavailable` says why it cannot run and the fix."""

    def prepare(self, *, launch: ServerLaunch, plan: PlanDocument, progress: Progress) -> None:
        """Before the server starts: fetch what it loads."""

    @abstractmethod
    def use_api_key(self, *, launch: ServerLaunch, key: str) -> None:
        """Hand KEY to the server without putting it in argv (a file or the environment)."""

    def after_ready(self, *, launch: ServerLaunch, plan: PlanDocument, progress: Progress) -> None:
        """Once the server answers: whatever must happen before it serves the model."""

    def container_command(self, *, plan: PlanDocument, key_file: str | None = None) -> ContainerCommand:
        """PLAN's server as a container in a cluster runs it: read as strictly as `up` reads it (a saved plan's
        extra flag or variable is exit 2), listening on every address at CONTAINER_PORT (its key guards it), its
        key read from KEY_FILE where the server can read one."""
        raise UsageError(f"{self.title} plans cannot be exported")

    def loaded_off_plan(self, *, plan: PlanDocument, log_lines: list[str]) -> str | None:
        """Where the engine's start-up log (this run's LOG_LINES) shows it loaded something else than PLAN expects
        (Foundry Local's variant), what and why it matters; None: as planned. The plan's figures then do not apply."""
        return None

    def reported_memory(self, log_lines: list[str]) -> EngineReport | None:
        """What the engine's start-up log (this run's LOG_LINES) says it holds, in the plan's terms; None where
        the engine reports nothing there (runtime.engine_memory sets it beside the plan)."""
        return None

    def release(self, *, created: list[tuple[str, str]], progress: Progress) -> list[str]:
        """Undo what ServerLaunch.created lists (models loaded into, or a server started outside, our process group);
        returns what could not be undone, in words."""
        return []

    def served_models(self, *, base_url: str, api_key: str | None) -> list[str] | None:
        """The models the server lists, or None while it does not answer (readiness and the identity check)."""
        from gptoss_deploy.backends.openai_api import served_models

        return served_models(base_url, api_key, health=self.has_health)

    def effort_fields(self, effort: str) -> dict:
        """How the server takes gpt-oss's reasoning effort per request (gptoss-facts.md: launch commands)."""
        return {}

    def stream_client(self, *, record: dict, api_key: str | None, effort: str):
        from gptoss_deploy.backends.openai_api import OpenAIStream

        return OpenAIStream(record.endpoint.base_url, record.endpoint.model, api_key, self.effort_fields(effort))

    def describe(self, *, record: dict, reused: bool) -> EndpointDescription:
        return server_usage(record, reused)


class CloudBackend(Backend):
    """A hosted endpoint: checked (credentials, region, access) and, where the service needs it, created."""

    cloud: ClassVar[bool] = True
    offers: ClassVar[Mapping[str, CloudOffer]]           # by model name (none: it sells no such model)

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self.offers)

    def offer_for(self, model: ModelSpec) -> CloudOffer | Rejection:
        """What it sells of MODEL, or why it sells none."""
        offer = self.offers.get(model.name)
        return offer or Rejection(self.name, model, self.has_no(model.name), "support")

    @abstractmethod
    def quote(self, model: ModelSpec, settings: LaunchSettings) -> CloudQuote | Rejection:
        """The API call for MODEL, its price and the reasons it states: pure, nothing is called."""

    @abstractmethod
    def describe_call(self, api: dict) -> str:
        """The plan's API call as one line for people: service, operation, model, where."""

    @abstractmethod
    def check_planned(self, plan: PlanDocument) -> None:
        """A saved plan's API call, strictly (backends.flags.checked_fields): only what quote() plans for the plan's
        model, or a usage error naming the field."""

    def unavailable(self) -> str | None:
        """Why it cannot be used from this installation, with the fix; None when it can."""
        return self.sdk_missing()

    credentials: ClassVar[str]                           # what signs in, in words

    @abstractmethod
    def credentials_missing(self) -> str | None:
        """How to sign in when no credentials are configured here (looked for, never tried); None when some are."""

    def prerequisites(self, *, model, hardware) -> list[Prerequisite]:
        missing = self.credentials_missing()
        return [*super().prerequisites(model=model, hardware=hardware), Prerequisite(self.credentials, missing is None,
                                                                                   missing)]

    @abstractmethod
    def provision(self, *, plan: PlanDocument, options: UpOptions, progress: Progress) -> Provisioned:
        """Check access, create what the service needs, and say where it serves. A failure deletes what it
        created."""

    @abstractmethod
    def teardown(self, *, record: dict, progress: Progress) -> None:
        """Delete what this tool created for RECORD, and nothing else."""

    @abstractmethod
    def resources_summary(self, record: dict) -> str:
        """What `down` would delete, in words, for the confirmation question."""


def per_token_quote(launch: ApiLaunch, offer: CloudOffer, where: str) -> CloudQuote:
    """A pay-per-token endpoint: the offer's list price, and a warning outside the regions that offer it."""
    api = launch.api
    reasons = [f"cloud: {api['model_id']} in {where}; {offer.price_note}"]
    if offer.regions and api["region"] and api["region"] not in offer.regions:
        reasons.append(f"warning: {offer.service} offers gpt-oss in {', '.join(offer.regions)}; check that "
                       f"{api['region']} serves it")
    price = {"usd_per_1m_input_tokens": offer.usd_per_1m_input, "usd_per_1m_output_tokens": offer.usd_per_1m_output,
             "note": offer.price_note}
    return CloudQuote(launch, offer, tuple(reasons), price)
