"""Capacity: how many replicas of a plan's node meet a throughput target, at what concurrency each serves.

A replica is the node as planned (its tensor-parallel group and data-parallel copies). Its concurrency is what the
user asks, else what its KV cache holds at a typical request size, at most what the engine runs at once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from gptoss_deploy.planner.errors import UsageError
from gptoss_deploy.planner.hardware import HardwareReport
from gptoss_deploy.planner.placement import LLAMACPP_SLOTS, WHOLE_MODEL, Placement
from gptoss_deploy.planner.throughput import predict_aggregate

HEADROOM = 0.20                 # replicas for the target plus 20%: traffic is bursty, and the prediction is a model
TYPICAL_REQUEST_TOKENS = 2048   # 1k in, 1k out: the serving benchmarks' common case (InferenceX "1k/1k")
TYPICAL_ANSWER_TOKENS = TYPICAL_REQUEST_TOKENS // 2
VLLM_MAX_NUM_SEQS = 256         # vLLM's default --max-num-seqs on most GPUs (VR: "a large number like 1024" on big ones)


@dataclass(frozen=True)
class Capacity:
    streams_per_replica: int
    streams_limit: int           # what one replica holds at once: KV cache at TYPICAL_REQUEST_TOKENS, engine limit
    replica_tokens_per_s: float  # predicted output tokens/s of one replica at streams_per_replica
    gpus_per_replica: int
    replicas: int | None         # None: no target asked
    target_tokens_per_s: float | None
    why: str
    usd_per_gpu_hour: float | None = None   # the user's price: none ships (it differs by cloud, region, contract)

    def requests_per_s(self) -> float:
        """One replica's planned output rate, in answers of a typical length."""
        return self.replica_tokens_per_s / TYPICAL_ANSWER_TOKENS

    def usd_per_hour(self) -> float | None:
        """The fleet's price per hour (one replica's where no target was asked)."""
        if self.usd_per_gpu_hour is None:
            return None
        return (self.replicas or 1) * self.gpus_per_replica * self.usd_per_gpu_hour

    def usd_per_1m_output_tokens(self) -> float | None:
        """At the target rate (what the fleet is sized to serve), else at one replica's predicted rate."""
        hourly = self.usd_per_hour()
        if hourly is None:
            return None
        return hourly / ((self.target_tokens_per_s or self.replica_tokens_per_s) * 3600 / 1e6)

    def to_json(self) -> dict:
        hourly, per_1m = self.usd_per_hour(), self.usd_per_1m_output_tokens()
        return {"streams_per_replica": self.streams_per_replica, "streams_limit": self.streams_limit,
                "replica_tokens_per_s": round(self.replica_tokens_per_s, 1),
                "gpus_per_replica": self.gpus_per_replica, "replicas": self.replicas,
                "gpus": None if self.replicas is None else self.replicas * self.gpus_per_replica,
                "target_tokens_per_s": self.target_tokens_per_s, "headroom": HEADROOM,
                "usd_per_gpu_hour": self.usd_per_gpu_hour,
                "usd_per_hour": None if hourly is None else round(hourly, 2),
                "usd_per_1m_output_tokens": None if per_1m is None else round(per_1m, 4), "why": self.why}


def check_capacity_flags(target_tps: float | None, concurrency: int | None,
                         usd_per_gpu_hour: float | None = None) -> None:
    if target_tps is not None and not (math.isfinite(target_tps) and target_tps > 0):
        raise UsageError(f"--target-tps {target_tps}: give output tokens/s above 0")
    if concurrency is not None and concurrency < 1:
        raise UsageError(f"--concurrency {concurrency}: give a number of concurrent requests from 1")
    if usd_per_gpu_hour is not None and not (math.isfinite(usd_per_gpu_hour) and usd_per_gpu_hour >= 0):
        raise UsageError(f"--usd-per-gpu-hour {usd_per_gpu_hour}: give a price in US dollars, 0 or more")


def capacity(placement: Placement, hw: HardwareReport, target_tps: float | None, concurrency: int | None,
             usd_per_gpu_hour: float | None = None) -> Capacity:
    """The replicas of PLACEMENT's node that serve TARGET_TPS output tokens/s, each at CONCURRENCY streams."""
    check_capacity_flags(target_tps, concurrency, usd_per_gpu_hour)
    limit = streams_limit(placement)
    streams = min(concurrency or limit, limit)
    per_replica = predict_aggregate(placement, hw, streams)
    gpus = sum(1 for d in placement.devices if d.device != "cpu")
    replicas = None if target_tps is None else max(1, math.ceil(target_tps * (1 + HEADROOM) / per_replica))
    held = "" if not concurrency or concurrency <= limit else f"; {concurrency} asked, but one replica holds {limit}"
    why = (f"{streams} concurrent requests per replica{held}: its KV cache holds {_kv_streams(placement)} requests of "
           f"{TYPICAL_REQUEST_TOKENS:,} tokens and the engine runs at most {_engine_limit(placement)}")
    return Capacity(streams, limit, per_replica, max(gpus, 1), replicas, target_tps, why, usd_per_gpu_hour)


def streams_limit(placement: Placement) -> int:
    return max(1, min(_kv_streams(placement), _engine_limit(placement)))


def _engine_limit(placement: Placement) -> int:
    per_copy = VLLM_MAX_NUM_SEQS if placement.offload == WHOLE_MODEL else LLAMACPP_SLOTS
    return per_copy * placement.data_parallel_size


def _kv_streams(placement: Placement) -> int:
    """Requests of TYPICAL_REQUEST_TOKENS whose KV cache fits: vLLM pages it into all the memory its budget leaves;
    llama.cpp keeps the planned context, shared by its slots."""
    model = placement.model
    per_token = model.full_attention_layers * model.kv_bytes_per_token_per_layer
    gpus = [d for d in placement.devices if d.device != "cpu"]
    if placement.offload == WHOLE_MODEL:
        room = sum(d.available_bytes - d.headroom_bytes - d.weights_bytes - d.compute_bytes - d.runtime_bytes
                   for d in gpus)
    else:
        room = placement.context_length * per_token * placement.data_parallel_size
    return max(1, int(room // per_token) // TYPICAL_REQUEST_TOKENS)
