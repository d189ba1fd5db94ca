"""The Plan document (schema_version 1) as a typed model: `gptoss-plan --json` prints it, `gptoss-up --plan FILE`
reads it back through it, and `gptoss schema plan` prints its JSON Schema for pipelines.

Field order is the order `gptoss-plan --json` writes, so a validated plan dumps (exclude_unset) to the same JSON.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, model_validator

from gptoss_deploy.planner.catalog import MAX_CONTEXT, Effort, ModelName

# A hub repository, an Ollama tag, a file name: letters, digits, '_' and '-', dots only between them (never '..'),
# at most one '/' or ':' between two such parts. A saved plan's reference can name nothing outside the model cache.
_PART = r"[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*"
MODEL_REF = rf"{_PART}(?:[/:]{_PART})?"
FILE_NAME = _PART


def _matching(pattern: str, what: str):
    def check(value: str) -> str:
        if not re.fullmatch(pattern, value):
            raise ValueError(f"{value[:80]!r} is not {what}")
        return value
    return AfterValidator(check)


ModelRef = Annotated[str, _matching(MODEL_REF, "a hub repository or tag (letters, digits, '.', '_', '-', one '/' or "
                                               "':')"), Field(json_schema_extra={"pattern": f"^{MODEL_REF}$"})]
FileName = Annotated[str, _matching(FILE_NAME, "a file name in the model's repository"),
                     Field(json_schema_extra={"pattern": f"^{FILE_NAME}$"})]


class _Document(BaseModel):
    # A plan file is untrusted input: unknown keys are mistakes (or tampering), never silently carried.
    model_config = ConfigDict(extra="forbid")


class Offload(_Document):
    # Bounded like the engines' flags: a saved plan's count becomes containers, pods and GPUs to ask for.
    n_cpu_moe: int = Field(ge=0, le=999, description="llama.cpp --n-cpu-moe: layers whose MoE experts stay in RAM")
    tensor_parallel_size: int = Field(ge=1, le=64)
    data_parallel_size: int = Field(default=1, ge=1, le=64, description="vLLM --data-parallel-size: copies of the "
                                    "tensor-parallel group, on the other GPUs")
    pipeline_parallel_size: int = Field(default=1, ge=1, le=64, description="vLLM --pipeline-parallel-size: one "
                                        "stage per node where the plan spans nodes")
    gpu_layers: int | None = Field(default=None, ge=0, le=999, description="Ollama: whole layers on the GPU")


class Breakdown(_Document):
    weights: int = Field(ge=0)
    kv_cache: int = Field(ge=0)
    compute: int = Field(ge=0)
    runtime: int = Field(ge=0)
    cache: int = Field(default=0, ge=0, description="the engine's host caches (llama-server's prompt cache and "
                       "context checkpoints), out of the RAM the plan leaves")
    headroom: int = Field(ge=0)


class DeviceMemory(_Document):
    device: str = Field(description='"gpu0", "gpu1", ... or "cpu"')
    name: str
    available_bytes: int = Field(ge=0)
    used_bytes: int = Field(ge=0)
    breakdown: Breakdown


class Memory(_Document):
    gpu_bytes: int = Field(ge=0)
    cpu_bytes: int = Field(ge=0)
    gpu_available_bytes: int = Field(ge=0)
    cpu_available_bytes: int = Field(ge=0)
    breakdown: Breakdown
    devices: list[DeviceMemory]


class Calibrated(_Document):
    """This machine's benchmark, applied to the model's prediction (planner/calibration.py)."""

    measured_at: str = Field(max_length=40)
    decode_ratio: float = Field(gt=0, description="measured decode over the model's: the prediction is the model's "
                                "times this")
    prefill_ratio: float | None = Field(gt=0, description="the model's time to first token over the measured")


class Predicted(_Document):
    # No bounds: a figure, never an instruction (a GGUF smaller than its own experts predicts below zero today).
    decode_tokens_per_s: float | None
    prefill_tokens_per_s: float | None = Field(description="single stream, at the start of a prompt")
    prefill_half_depth_tokens: float | None = Field(default=None, description="the depth into a prompt at which "
                                                    "prefill runs at half prefill_tokens_per_s; null for cloud")
    roofline_decode_tokens_per_s: float | None
    aggregate_tokens_per_s: float | None = Field(default=None, description="tokens/s over aggregate_streams "
                                                 "concurrent streams, where the engine batches them (vLLM)")
    aggregate_streams: int | None = None
    calibration: Calibrated | None = Field(default=None, description="present where this machine's own benchmark "
                                           "scaled the model's figures; absent: the model alone")
    full_prompt_ttft_s: float | None = Field(default=None, description="seconds to first token for a prompt that "
                                             "fills the context: prefill integrated over the depth; null for cloud")


class Price(_Document):
    usd_per_1m_input_tokens: float | None = Field(default=None, ge=0)
    usd_per_1m_output_tokens: float | None = Field(default=None, ge=0)
    usd_per_hour: float | None = Field(default=None, ge=0)
    note: str


class ServerCommand(_Document):
    """A local server: the command, its environment, and what it loads and serves."""

    argv: list[str] = Field(min_length=1)
    env: dict[str, str]
    model_ref: ModelRef = Field(description="the model's hub repository or tag")
    model_files: list[FileName] | None = Field(default=None, min_length=1)
    served_model: str | None = None
    request: dict[str, JsonValue] | None = Field(default=None, description="Ollama: the per-request options")
    base_url: str


class ApiCall(_Document):
    """A cloud endpoint: the service's API call (its fields are the service's own)."""

    api: dict[str, Any]


class CandidateDocument(_Document):
    schema_version: Literal[1]
    status: Literal["ok", "degraded", "cloud"]
    model: ModelName
    backend: str
    quantization: str
    context_length: int = Field(ge=1, le=MAX_CONTEXT)
    reasoning_effort: Effort
    offload: Offload
    memory: Memory | None
    predicted: Predicted
    price: Price | None = Field(default=None, description="cloud plans: per 1M tokens or per hour")
    launch: ServerCommand | ApiCall

    @model_validator(mode="after")
    def _one_kind(self) -> CandidateDocument:
        """A cloud plan calls an API; a local one runs a server command within the memory it was planned for."""
        cloud = isinstance(self.launch, ApiCall)
        if (self.status == "cloud") != cloud:
            raise ValueError(f"status {self.status!r} with a launch that " +
                             ("calls an API" if cloud else "runs a server command"))
        if not cloud and self.memory is None:
            raise ValueError("a local plan needs its memory (null here): save the plan again with gptoss-plan --json")
        return self


class Alternative(CandidateDocument):
    lost_because: str


class Rejected(_Document):
    model: str
    backend: str
    reason: str
    binding: str


class Need(_Document):
    need: str
    met: bool
    fix: str | None = Field(description="what to run or set when it is not met")


class PlanDocument(CandidateDocument):
    """What `gptoss-plan --json` prints and `gptoss-up --plan FILE` applies."""

    reasons: list[str]
    binding_constraint: str
    profile: str
    sources: dict[str, str] = Field(description="where each choice came from: flag, env, profile, wizard")
    alternatives: list[Alternative]
    rejected: list[Rejected]
    prerequisites: list[Need] = Field(default_factory=list, description="what the plan needs on the machine that "
                                      "runs gptoss-up (extra, program, credentials, free disk), checked when planned")
    capacity: dict[str, JsonValue] | None = Field(default=None, description="--target-tps / --concurrency: the "
                                                  "replicas of this node that serve the target (planner.capacity)")

    def to_json(self) -> dict:
        """The document as `gptoss-plan --json` wrote it (fields it did not have stay out)."""
        return self.model_dump(mode="json", exclude_unset=True)
