"""The gpt-oss models (../shared/data/gptoss-facts.md), and the shapes in which backends declare what they load
(Artifact) or sell (CloudOffer)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

# gpt-oss's reasoning efforts (Harmony's system message): every list of them derives from this one
REASONING_EFFORTS = ("low", "medium", "high")
Effort = Literal[REASONING_EFFORTS]      # type: ignore[valid-type]
MXFP4_BYTES_PER_PARAM = 4.25 / 8   # 4-bit values + one 8-bit scale per 32-value block (OAI)
F16_BYTES = 2
MAX_CONTEXT = 131072                # YaRN x32 over 4096 (HFCFG)
SLIDING_WINDOW = 128                # sliding-attention layers keep 128 tokens (HFCFG)


@dataclass(frozen=True)
class ModelSpec:
    """Architecture from config.json (OAI, HFCFG); parameter counts from G15396."""

    name: str
    size: str                    # "20b" | "120b": the user's word for it
    layers: int
    experts: int
    experts_per_token: int
    full_attention_layers: int   # the other layers are sliding-window
    total_params: float
    active_params: float
    hidden_size: int = 2880
    expert_intermediate_size: int = 2880
    variant: str = "gpt-oss"     # a key of VARIANTS: whose weights of this architecture
    attention_heads: int = 64
    kv_heads: int = 8
    head_dim: int = 64
    vocab_size: int = 201088

    @property
    def params_per_expert(self) -> int:
        # gate+up projection (hidden -> 2 x intermediate) and down projection (intermediate -> hidden)
        return 3 * self.hidden_size * self.expert_intermediate_size

    @property
    def expert_params(self) -> int:
        return self.layers * self.experts * self.params_per_expert

    @property
    def dense_params(self) -> float:
        """Everything that is not an MoE expert: attention, router, norms, embedding, output head."""
        return self.total_params - self.expert_params

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def kv_bytes_per_token_per_layer(self) -> int:
        return 2 * self.kv_heads * self.head_dim * F16_BYTES   # K and V, f16: 2 KiB

    @property
    def attention_flops_per_depth(self) -> int:
        """FLOPs one prompt token spends per token before it: QK^T and AV, 2 x 2 FLOPs per head dimension, in each
        full-attention layer (a sliding layer looks back SLIDING_WINDOW tokens at most: a constant)."""
        return 4 * self.attention_heads * self.head_dim * self.full_attention_layers

    @property
    def sliding_layers(self) -> int:
        return self.layers - self.full_attention_layers


GPT_OSS_20B = ModelSpec("gpt-oss-20b", "20b", layers=24, experts=32, experts_per_token=4,
                        full_attention_layers=12, total_params=20.91e9, active_params=3.61e9)
GPT_OSS_120B = ModelSpec("gpt-oss-120b", "120b", layers=36, experts=128, experts_per_token=4,
                         full_attention_layers=18, total_params=116.83e9, active_params=5.13e9)
MODELS: dict[str, ModelSpec] = {m.size: m for m in (GPT_OSS_20B, GPT_OSS_120B)}
# --variant: the weights of a size. gpt-oss-safeguard (October 2025: openai/gpt-oss-safeguard-20b and -120b) is
# gpt-oss post-trained to classify content under a policy the user writes; the same architecture, so the same
# memory and speed (its model cards: "21B parameters with 3.6B active", "117B ... 5.1B active").
VARIANTS = {"gpt-oss": "gpt-oss", "safeguard": "gpt-oss-safeguard"}    # the flag's word: the models' name prefix
VARIANT_MODELS: dict[str, ModelSpec] = {
    f"{prefix}-{m.size}": replace(m, name=f"{prefix}-{m.size}", variant=variant)
    for variant, prefix in VARIANTS.items() for m in MODELS.values()}
ModelName = Literal[tuple(VARIANT_MODELS)]      # type: ignore[valid-type]


def model_for(size: str, variant: str) -> ModelSpec:
    """The model of SIZE ("20b", "120b") in VARIANT (a key of VARIANTS)."""
    return VARIANT_MODELS[f"{VARIANTS[variant]}-{size}"]


def model_named(name: str) -> ModelSpec:
    """A model by the name a plan gives it (gpt-oss-20b, gpt-oss-safeguard-120b...)."""
    return VARIANT_MODELS[name]


@dataclass(frozen=True)
class Artifact:
    """What a backend loads: where it comes from, its size on disk and resident in memory."""

    ref: str
    disk_bytes: int
    loaded_bytes: int
    files: tuple[str, ...] = ()   # the files to fetch from the hub repo REF (a split GGUF: its shards, first first)
    # The engine's buffers for it (compute buffers, vLLM's activations) as this machine's engine reported them, over
    # the model's estimate (planner/calibration.py); 1: the estimate.
    buffer_scale: float = 1.0

    def buffers(self, estimate: float) -> int:
        """The bytes of buffers the model ESTIMATEs, as this machine's engine measured them."""
        return int(estimate * self.buffer_scale)

    def expert_bytes(self, model: ModelSpec) -> float:
        # Every artifact we ship keeps the experts in native MXFP4 (bartowski README: requants save ~nothing).
        return model.expert_params * MXFP4_BYTES_PER_PARAM

    def dense_bytes(self, model: ModelSpec) -> float:
        return self.loaded_bytes - self.expert_bytes(model)

    def expert_bytes_per_layer(self, model: ModelSpec) -> float:
        return self.expert_bytes(model) / model.layers


@dataclass(frozen=True)
class CloudOffer:
    """A hosted gpt-oss: the service's model id, the regions that offer it, its list price per 1M tokens (None: unknown)."""

    service: str
    model_id: str
    regions: tuple[str, ...]
    usd_per_1m_input: float | None
    usd_per_1m_output: float | None
    price_note: str
