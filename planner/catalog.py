"""The gpt-oss models: architecture, per-backend artifacts and cloud offers (../shared/data/gptoss-facts.md)."""
from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3
GB = 1000**3

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
    def sliding_layers(self) -> int:
        return self.layers - self.full_attention_layers


GPT_OSS_20B = ModelSpec("gpt-oss-20b", "20b", layers=24, experts=32, experts_per_token=4,
                        full_attention_layers=12, total_params=20.91e9, active_params=3.61e9)
GPT_OSS_120B = ModelSpec("gpt-oss-120b", "120b", layers=36, experts=128, experts_per_token=4,
                         full_attention_layers=18, total_params=116.83e9, active_params=5.13e9)
MODELS: dict[str, ModelSpec] = {m.size: m for m in (GPT_OSS_20B, GPT_OSS_120B)}


@dataclass(frozen=True)
class Artifact:
    """What a backend loads: where it comes from, its size on disk and resident in memory."""

    ref: str
    disk_bytes: int
    loaded_bytes: int
    files: tuple[str, ...] = ()   # the files to fetch from the hub repo REF (a split GGUF: its shards, first first)

    def expert_bytes(self, model: ModelSpec) -> float:
        # Every artifact we ship keeps the experts in native MXFP4 (bartowski README: requants save ~nothing).
        return model.expert_params * MXFP4_BYTES_PER_PARAM

    def dense_bytes(self, model: ModelSpec) -> float:
        return self.loaded_bytes - self.expert_bytes(model)

    def expert_bytes_per_layer(self, model: ModelSpec) -> float:
        return self.expert_bytes(model) / model.layers


# GGUF sizes: G15396; Ollama tags: ollama.com library; vLLM resident size: vllm#33155 measured 64.38 GiB
# for the 120b (60.8 GiB on disk), and the 20b is scaled by the same ratio.
_VLLM_LOAD_RATIO = 64.38 / 60.8
ARTIFACTS: dict[tuple[str, str], Artifact] = {
    ("llamacpp", "20b"): Artifact("ggml-org/gpt-oss-20b-GGUF", int(11.27 * GIB), int(11.27 * GIB),
                                  ("gpt-oss-20b-mxfp4.gguf",)),
    ("llamacpp", "120b"): Artifact("ggml-org/gpt-oss-120b-GGUF", int(59.02 * GIB), int(59.02 * GIB),
                                   tuple(f"gpt-oss-120b-mxfp4-0000{i}-of-00003.gguf" for i in (1, 2, 3))),
    ("ollama", "20b"): Artifact("gpt-oss:20b", 14 * GB, 14 * GB),
    ("ollama", "120b"): Artifact("gpt-oss:120b", 65 * GB, 65 * GB),
    ("vllm", "20b"): Artifact("openai/gpt-oss-20b", int(12.8 * GIB), int(12.8 * GIB * _VLLM_LOAD_RATIO)),
    ("vllm", "120b"): Artifact("openai/gpt-oss-120b", int(60.8 * GIB), int(64.38 * GIB)),
}


@dataclass(frozen=True)
class CloudOffer:
    service: str
    model_id: str
    regions: tuple[str, ...]
    usd_per_1m_input: float | None
    usd_per_1m_output: float | None
    price_note: str


# AWS: list prices are secondary sources ("verify"); launched in us-west-2. Azure: the registry asset ids
# (registry azureml-openai-oss, as Azure's own deployment samples name it) are not in our sourced data (AZ),
# so profiles may override them (azure_model_id); the price is left for the portal to say.
CLOUD_OFFERS: dict[tuple[str, str], CloudOffer] = {
    ("bedrock", "20b"): CloudOffer("bedrock", "openai.gpt-oss-20b-1:0", ("us-west-2",), 0.07, 0.30,
                                   "AWS list price (secondary source, verify on the AWS pricing page)"),
    ("bedrock", "120b"): CloudOffer("bedrock", "openai.gpt-oss-120b-1:0", ("us-west-2",), 0.15, 0.60,
                                    "AWS list price (secondary source, verify on the AWS pricing page)"),
    ("azure", "20b"): CloudOffer("azure", "azureml://registries/azureml-openai-oss/models/gpt-oss-20b", (), None, None,
                                 "serverless price not in our data: see the Azure AI Foundry model catalog"),
    ("azure", "120b"): CloudOffer("azure", "azureml://registries/azureml-openai-oss/models/gpt-oss-120b", (), None,
                                  None,
                                  "serverless price not in our data: see the Azure AI Foundry model catalog"),
}
