"""The Deployment document (schema_version 1) as a typed model: what `gptoss-up --json` prints, `gptoss status
--json` lists, and the state file holds. The state file is read back through it; `gptoss schema deployment`
prints its JSON Schema."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from gptoss_deploy.planner.calibration import Calibration
from gptoss_deploy.planner.documents import PlanDocument, Predicted


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Endpoint(_Document):
    """Where clients call it. Local servers and Azure: an OpenAI-compatible base URL; Bedrock: region and model id."""

    base_url: str | None = None
    model: str | None = Field(default=None, description="the model id clients ask for")
    api_key_env: str | None = Field(default=None, description="the variable clients read the key from")
    api_key_file: str | None = Field(default=None, description="a local server's key, 0600 in the state dir")
    region: str | None = None
    model_id: str | None = None
    name: str | None = Field(default=None, description="Azure: the endpoint's name")
    kind: Literal["serverless_endpoint", "online_endpoint"] | None = None


class Sample(_Document):
    ttft_ms: float | None
    completion_tokens: int = Field(ge=0)
    decode_tokens_per_s: float | None
    server_decode_tokens_per_s: float | None


class Spent(_Document):
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    cost_usd: float | None


class Benchmark(_Document):
    """The micro-benchmark against the plan's prediction (verify.bench)."""

    decode_tokens_per_s: float | None
    server_decode_tokens_per_s: float | None
    ttft_ms: float | None
    aggregate_tokens_per_s: float | None = Field(description="null when the run stopped at its budget before it")
    concurrency: int
    output_tokens: int
    predicted_decode_tokens_per_s: float | None
    measured_vs_predicted: float | None
    roofline_efficiency: float | None
    verdict: Literal["pass", "fail", "invalid", "unstable"]
    reasons: list[str]
    samples: list[Sample]
    prompt_tokens: int | None = Field(default=None, description="the single streams' prompt, as the server counted "
                                      "it (median)")
    load_average_1m: float | None = Field(default=None, description="the machine's load when it was measured")
    wall_s: float | None = Field(default=None, description="how long the run took, within GPTOSS_BENCH_BUDGET_S")
    spent: Spent | None = None


class MemoryFigure(_Document):
    """One part of the memory as the plan sized it and as the engine reported it once loaded."""

    where: Literal["GPUs", "host", "each GPU"] = Field(description="GPUs: all of them together; each GPU: the "
                                                       "figure every GPU of a tensor-parallel group holds")
    part: Literal["weights", "kv_cache", "compute"]
    planned_bytes: int = Field(ge=0)
    reported_bytes: int = Field(ge=0)
    off_plan: bool = Field(default=False, description="beyond the tolerance (runtime.engine_memory), where the "
                           "plan applies to the model that runs")


class EngineMemory(_Document):
    """What the engine itself said about its memory at start-up (runtime.engine_memory), beside the plan."""

    source: str = Field(description="where the figures were read, in words")
    figures: list[MemoryFigure]
    max_concurrency: float | None = Field(default=None, description="vLLM: requests of the full context length "
                                          "its KV cache holds at once, as it reported")
    warnings: list[str] = Field(description="a line per figure off the plan, with its likely cause (also among "
                                "the deployment's warnings)")
    compute_ratio: float | None = Field(default=None, gt=0, le=100, description=(
        "the engine's compute buffers (vLLM: its activations and kernels' buffers, which the room it leaves its KV "
        "cache shows) over the plan's, where the plan applies: the next plan on this machine sizes them so"))


class Attempt(_Document):
    """A plan `gptoss-up` tried before the one that runs, and the line that showed its memory ran out."""

    model: str
    backend: str
    context_length: int = Field(ge=1)
    argv: list[str] | None = Field(description="the server command that ran (no secrets: keys travel in the "
                                   "environment or a file); null where gptoss started none (a running Ollama)")
    failure: str = Field(description="out of memory, or killed (SIGKILL) as the out-of-memory killer does")
    log_line: str = Field(description="the server's output line (or, for a kill, gptoss's) that showed it")
    next_step: str = Field(description="what the fallback ladder tried next, in words (the last attempt of a "
                           "ladder that failed: none)")


class Measurement(_Document):
    """One benchmark of a deployment against the model's own prediction (never a calibrated one): a row of
    calibration.json (runtime.calibrations). It names no deployment, path, address or key, to share as it is."""

    machine: str = Field(pattern=r"^[0-9a-f]{16}$", description="planner.calibration.machine_fingerprint of the machine")
    hardware: str = Field(max_length=300, description="the machine in words: its GPUs, or its CPU")
    engine: str = Field(max_length=40, description="the backend that served it")
    model: str = Field(max_length=200, description="gpt-oss-20b, gpt-oss-120b, or the GGUF file's name")
    measured_at: str = Field(max_length=40, description="ISO 8601, UTC")
    decode_tokens_per_s: float = Field(gt=0, description="measured, one stream")
    model_decode_tokens_per_s: float = Field(gt=0, description="the model's prediction for it")
    ttft_ms: float | None = Field(default=None, gt=0, description="measured time to first token, one stream")
    model_ttft_ms: float | None = Field(default=None, gt=0, description="the model's prediction for the same prompt")
    prompt_tokens: int | None = Field(default=None, ge=1)
    memory: dict[str, JsonValue] | None = Field(default=None, description="the engine's own report of its memory "
                                                "(the deployment's `memory`), where it gave one")
    compute_ratio: float | None = Field(default=None, gt=0, le=100, description="its compute buffers over the "
                                        "plan's (the `memory`'s compute_ratio)")

    def calibration(self) -> Calibration:
        prefill = self.model_ttft_ms / self.ttft_ms if self.model_ttft_ms and self.ttft_ms else None
        return Calibration(self.measured_at, self.decode_tokens_per_s / self.model_decode_tokens_per_s, prefill,
                           self.compute_ratio)

    def to_json(self) -> dict:
        return self.model_dump(mode="json", exclude_none=True)


class CalibrationFile(_Document):
    """calibration.json in the state dir (runtime.calibrations): the kept measurements."""

    schema_version: Literal[1]
    measurements: list[Measurement]


class Deployment(_Document):
    """One deployment this tool started (or, for Ollama, found running), local or in the cloud."""

    schema_version: Literal[1] = 1
    name: str
    backend: str
    model: str | None = None
    # ge=2: never 0, -1 (every process the user owns, to os.kill) or init
    pid: int | None = Field(default=None, ge=2, description="the process group leader; null for cloud and a found "
                            "Ollama")
    pid_started_at: float | None = None
    engine_pid: int | None = Field(default=None, ge=2, description="the server itself, which the group leader logs for")
    engine_started_at: float | None = None
    state: Literal["starting", "running", "ready"]
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    protocol: Literal["openai", "ollama", "bedrock", "azure"] | None = None
    endpoint: Endpoint | None = None
    argv: list[str] | None = None
    env: dict[str, str] | None = Field(default=None, description="secrets masked")
    log: str | None = None
    warnings: list[str] = []
    plan: PlanDocument | None = None
    plan_applies: bool = Field(default=True, description="false where the model that runs is not the planned one "
                               "(a --gguf of another model): the plan's figures are no yardstick for it")
    yardstick: Predicted | None = Field(default=None, description="a --gguf of another model: its own prediction "
                                        "(planner.throughput.predict_dense_file), which the benchmark is held to")
    machine: str | None = Field(default=None, pattern=r"^[0-9a-f]{16}$", description="the machine it runs on "
                                "(planner.calibration.machine_fingerprint): its benchmarks calibrate that machine's "
                                "next plans")
    hardware: str | None = Field(default=None, max_length=300, description="that machine in words")
    benchmark: Benchmark | None = None
    measurement: Measurement | None = Field(default=None, description="the benchmark as a calibration row "
                                            "(runtime.calibrations): what the next plan on this machine learns "
                                            "from; it names nothing private, to share")
    memory: EngineMemory | None = Field(default=None, description="the engine's own report of its memory at "
                                        "start-up beside the plan's figures; absent where the engine reports none")
    created_at: str | None = None
    launcher_pid: int | None = Field(default=None, ge=2)
    launcher_started_at: float | None = None
    region: str | None = None
    account: str | None = Field(default=None, description="AWS: the account the preflight signed in to")
    identity: str | None = None
    subscription_id: str | None = None
    resource_group: str | None = None
    workspace: str | None = None
    attempts: list[Attempt] | None = Field(default=None, description="the fallback ladder: each smaller plan's "
                                           "predecessor that ran out of memory, in order")
    cloud_resources: list[tuple[str, str]] | None = Field(default=None, description="what `down` deletes (a cloud) "
                                                          "or releases (LM Studio's loaded model): kind, name")

    @model_validator(mode="after")
    def _usable(self) -> Deployment:
        """A record gptoss can act on: a backend it knows and, for a local server, where it listens."""
        from gptoss_deploy.backends import REGISTRY

        if self.backend not in REGISTRY:
            raise ValueError(f"backend {self.backend!r} is none of {', '.join(REGISTRY)}")
        if not REGISTRY[self.backend].cloud and not (self.host and self.port and self.endpoint and
                                                     self.endpoint.base_url):
            raise ValueError("a local deployment needs host, port and endpoint.base_url")
        return self

    def prediction(self) -> Predicted | None:
        """What its benchmark is held to: the plan's figures, or for a GGUF of another model its own."""
        if not self.plan_applies:
            return self.yardstick
        return self.plan.predicted if self.plan else None

    def to_json(self) -> dict:
        """The record as `gptoss-up --json` prints it and the state file holds it (fields it never had stay out)."""
        return self.model_dump(mode="json", exclude_unset=True)
