"""Memory model: weights, KV cache (full vs sliding layers), compute buffers, runtime reserve, headroom."""
from __future__ import annotations

from dataclasses import dataclass

from gptoss_deploy.planner.catalog import SLIDING_WINDOW, ModelSpec
from gptoss_deploy.planner.units import MIB

# llama.cpp compute buffers are 2.7 GB at -ub 2048 for both models (G15396); they scale with the ubatch,
# dominated by the 201088-wide logits.
LLAMACPP_COMPUTE_BYTES_AT_UB2048 = 2.7e9
# Ollama reserves 457 MiB per GPU on top of its own estimate (ollama discover/gpu.go CudaMinimumMemory).
OLLAMA_RUNTIME_BYTES = 457 * MIB
# Never plan a device to the last byte: drivers, the desktop and other processes move.
HEADROOM_FRACTION = 0.05
MIN_HEADROOM_BYTES = 256 * MIB


def headroom_bytes(device_bytes: int) -> int:
    return max(MIN_HEADROOM_BYTES, int(device_bytes * HEADROOM_FRACTION))


def kv_cache_bytes(model: ModelSpec, context: int, sliding_tokens: int = SLIDING_WINDOW) -> int:
    """Only full-attention layers grow with context; sliding layers hold a fixed number of cells (facts: KV)."""
    per_layer = model.kv_bytes_per_token_per_layer
    full = model.full_attention_layers * per_layer * context
    sliding = model.sliding_layers * per_layer * min(context, sliding_tokens)
    return full + sliding


def llamacpp_compute_bytes(ubatch: int) -> int:
    return int(LLAMACPP_COMPUTE_BYTES_AT_UB2048 * ubatch / 2048)


@dataclass(frozen=True)
class DeviceUse:
    """What one device holds under a plan, against what it has free."""

    device: str              # "gpu0", "gpu1", "cpu"
    name: str
    available_bytes: int
    weights_bytes: int = 0
    kv_cache_bytes: int = 0
    compute_bytes: int = 0
    runtime_bytes: int = 0
    headroom_bytes: int = 0
    cache_bytes: int = 0     # the engine's host caches: llama-server's prompt cache and context checkpoints

    @property
    def used_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.compute_bytes + self.runtime_bytes + self.cache_bytes

    @property
    def needed_bytes(self) -> int:
        return self.used_bytes + self.headroom_bytes

    @property
    def fits(self) -> bool:
        return self.needed_bytes <= self.available_bytes

    def to_json(self) -> dict:
        return {
            "device": self.device, "name": self.name, "available_bytes": self.available_bytes,
            "used_bytes": self.used_bytes,
            "breakdown": {"weights": self.weights_bytes, "kv_cache": self.kv_cache_bytes,
                          "compute": self.compute_bytes, "runtime": self.runtime_bytes,
                          "cache": self.cache_bytes, "headroom": self.headroom_bytes},
        }
