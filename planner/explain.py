"""Why a plan is what it is: reasons in the user's words, the binding constraint, and why runners-up lost."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from gptoss_deploy.backends import BACKENDS
from gptoss_deploy.planner.constraints import Constraints
from gptoss_deploy.planner.devices import find_spec, is_datacenter
from gptoss_deploy.planner.hardware import HardwareReport
from gptoss_deploy.planner.memory import MIB, gib
from gptoss_deploy.planner.placement import FITTERS, Placement, Rejection
from gptoss_deploy.planner.throughput import predict_decode

if TYPE_CHECKING:
    from gptoss_deploy.planner.plan import Candidate

# G15396: on Apple silicon keep the model under ~70% of RAM.
APPLE_SAFE_RAM_FRACTION = 0.70


def machine_summary(hw: HardwareReport) -> str:
    if not hw.gpus:
        return f"CPU only: {hw.cpu.model}, {gib(hw.memory.available_bytes)} of RAM available"
    names = sorted({g.name for g in hw.gpus})
    if any(g.unified_memory for g in hw.gpus):
        kind = "unified memory GPU"
    else:
        kind = "datacenter GPUs" if is_datacenter(hw) else "desktop/laptop GPU"
    free = sum(g.memory_free_bytes for g in hw.gpus)
    return (f"{kind}: {len(hw.gpus)} x {', '.join(names)}, {gib(free)} GPU memory free; "
            f"{gib(hw.memory.available_bytes)} of RAM available")


def _fmt_tps(value: float) -> str:
    return f"{value:.0f} tok/s" if value >= 10 else f"{value:.1f} tok/s"


def explain_choice(chosen: Candidate, others: list[Candidate], rejected: list[Rejection],
                   hw: HardwareReport, c: Constraints) -> tuple[list[str], str]:
    reasons = [machine_summary(hw)]
    reasons.append(_model_reason(chosen, others, rejected, c))
    reasons.append(_backend_reason(chosen, hw, c))
    placement = chosen.placement
    if placement is not None:
        reasons.append(_context_reason(placement, c))
        offload = _offload_reason(placement)
        if offload:
            reasons.append(offload)
        hint = apple_wired_limit_hint(placement, hw, c)
        if hint:
            reasons.append(hint)
        reasons.append("quantization: native MXFP4 experts; other GGUF quants keep the experts in MXFP4 "
                       "and save under 5%, so they are not worth the quality risk")
        unknown = [g.name for g in hw.gpus if not g.memory_bandwidth_gbps and not find_spec(g.name)]
        if unknown:
            reasons.append(f"warning: memory bandwidth of {unknown[0]} is unknown; the prediction assumes a low default")
    else:
        api = chosen.launch["api"]
        if api.get("deployment") == "managed":
            reasons.append(f"cloud: Azure managed compute, {api['instance_type']} ({api['gpus']}): the first GPU "
                           f"size, fewest GPUs first, where vLLM holds {chosen.model.name} at {api['context_length']} "
                           f"tokens (tensor parallel {api['tensor_parallel_size']}); billed per hour while it exists")
        else:
            where = api["region"] or f"the AWS config's region (else {chosen.offer.regions[0]})"
            reasons.append(f"cloud: {api['model_id']} in {where}; {chosen.offer.price_note}")
        if chosen.offer.regions and api["region"] and api["region"] not in chosen.offer.regions:
            reasons.append(f"warning: gpt-oss launched in {', '.join(chosen.offer.regions)}; "
                           f"check that {api['region']} serves it")
    reasons.append(f"reasoning effort: {c.reasoning_effort} ({c.source('reasoning_effort')})")
    return reasons, _binding(chosen, others, rejected, c)


def _model_reason(chosen: Candidate, others: list[Candidate], rejected: list[Rejection], c: Constraints) -> str:
    name = chosen.model.name
    if c.model != "auto":
        return f"model: {name} ({c.source('model')})"
    bigger_lost = [o for o in others if o.prediction and o.model.total_params > chosen.model.total_params]
    bigger_rejected = [r for r in rejected if r.model.total_params > chosen.model.total_params]
    if chosen.prediction is None:
        return f"model: {name}, served in the cloud"
    speed = _fmt_tps(chosen.prediction.decode_tokens_per_s)
    if bigger_lost:
        alt = bigger_lost[0]
        return (f"model: {name}; {alt.model.name} would run at only "
                f"{_fmt_tps(alt.prediction.decode_tokens_per_s)}, below the "
                f"{c.min_decode_tokens_per_s:g} tok/s floor of profile {c.profile}")
    if bigger_rejected:
        return f"model: {name}; {bigger_rejected[0].reason}"
    return f"model: {name}, the biggest gpt-oss, predicted at {speed}"


def _backend_reason(chosen: Candidate, hw: HardwareReport, c: Constraints) -> str:
    title = BACKENDS[chosen.backend].title
    if c.backend != "auto":
        return f"backend: {title} ({c.source('backend')})"
    if c.backend_preference:
        return f"backend: {title}, the first of profile {c.profile}'s preferences that fits"
    if chosen.backend == "vllm":
        return f"backend: {title}: datacenter GPUs serve best through vLLM (continuous batching, CUDA graphs)"
    if chosen.backend == "llamacpp":
        return (f"backend: {title}: keeps attention on the GPU and can move MoE experts to RAM per layer "
                "(--n-cpu-moe), the best fit for desktops and laptops")
    if BACKENDS[chosen.backend].cloud:
        return f"backend: {title}: nothing local runs well enough, and cloud is allowed"
    return f"backend: {title}"


def _context_reason(placement: Placement, c: Constraints) -> str:
    if placement.context_length >= c.context:
        return f"context: {placement.context_length} tokens ({c.source('context')})"
    return (f"context: reduced from {c.context} to {placement.context_length} tokens: "
            "the KV cache for more does not fit the free memory")


def _offload_reason(placement: Placement) -> str | None:
    gpus = [d for d in placement.devices if d.device != "cpu"]
    free = gib(sum(d.available_bytes for d in gpus))
    if placement.backend == "llamacpp" and gpus and placement.cpu_layers:
        return (f"offload: --n-cpu-moe {placement.cpu_layers}: the MoE experts of {placement.cpu_layers} of "
                f"{placement.model.layers} layers stay in RAM so the rest fits {free} of free GPU memory")
    if placement.backend == "ollama" and gpus and placement.cpu_layers:
        return (f"offload: Ollama runs {placement.cpu_layers} of {placement.model.layers} whole layers on the CPU "
                f"to fit {free} of free GPU memory")
    if placement.backend == "vllm":
        return (f"GPU memory: --tensor-parallel-size {placement.tensor_parallel_size}, "
                f"--gpu-memory-utilization {placement.gpu_memory_utilization:.2f}, "
                f"--max-num-batched-tokens {placement.max_num_batched_tokens}: "
                "the smallest GPU group that holds the whole model and the KV cache")
    return None


def apple_wired_limit_hint(placement: Placement, hw: HardwareReport, c: Constraints) -> str | None:
    """Where raising Metal's wired limit would let the whole model sit on the GPU, say how and what it gains."""
    apple = [g for g in hw.gpus if g.vendor == "apple"]
    if not apple or placement.backend != "llamacpp" or not placement.cpu_layers:
        return None
    gpu = apple[0]
    room = hw.memory.available_bytes
    raised = hw.model_copy(update={"gpus": [gpu.model_copy(update={"memory_total_bytes": room,
                                                                    "memory_free_bytes": room})]})
    full = FITTERS["llamacpp"](placement.model, raised, placement.context_length)
    if isinstance(full, Rejection) or full.cpu_layers:
        return None
    needed = next(d for d in full.devices if d.device != "cpu").needed_bytes
    limit_mb = math.ceil(needed / MIB / 512) * 512
    note = ""
    if limit_mb * MIB > APPLE_SAFE_RAM_FRACTION * hw.memory.total_bytes:
        note = " (above the ~70% of RAM G15396 advises: close other apps first)"
    return (f"Apple: `sudo sysctl iogpu.wired_limit_mb={limit_mb}` (until reboot) lets Metal hold all of "
            f"{placement.model.name}: predicted {_fmt_tps(predict_decode(full, raised))} instead of "
            f"{_fmt_tps(predict_decode(placement, hw))}{note}")


def _binding(chosen: Candidate, others: list[Candidate], rejected: list[Rejection], c: Constraints) -> str:
    """The one constraint that decided the plan."""
    if c.model == "auto":
        bigger_rejected = [r for r in rejected if r.model.total_params > chosen.model.total_params]
        if bigger_rejected:   # a backend that cannot run here at all says less than one that ran out of memory
            return sorted(bigger_rejected, key=lambda r: "memory" not in r.resource.lower() and r.resource != "RAM")[0].resource
        if any(o.prediction and o.model.total_params > chosen.model.total_params for o in others):
            return f"decode speed floor ({c.min_decode_tokens_per_s:g} tok/s, profile {c.profile})"
    placement = chosen.placement
    if placement is None:
        return "local hardware" if chosen.backend != c.backend else f"backend ({c.source('backend')})"
    if placement.cpu_layers and any(d.device != "cpu" for d in placement.devices):
        return "GPU memory"
    if placement.context_length < c.context:
        return "GPU memory" if any(d.device != "cpu" for d in placement.devices) else "RAM"
    if chosen.status == "degraded":
        return "memory bandwidth"
    return "none: everything fits with room to spare"


def explain_loss(alt: Candidate, chosen: Candidate, c: Constraints) -> str:
    if alt.prediction and alt.prediction.decode_tokens_per_s < c.min_decode_tokens_per_s:
        return (f"predicted {_fmt_tps(alt.prediction.decode_tokens_per_s)} is below the "
                f"{c.min_decode_tokens_per_s:g} tok/s floor")
    if alt.status == "cloud" and chosen.status != "cloud":
        return "a local plan that runs well is preferred over paying per token"
    if alt.model.total_params < chosen.model.total_params:
        return f"smaller model: {chosen.model.name} runs well here"
    if alt.placement and chosen.placement and alt.placement.context_length < chosen.placement.context_length:
        return f"shorter context ({alt.placement.context_length} tokens)"
    if alt.backend != chosen.backend and alt.prediction and chosen.prediction \
            and alt.prediction.decode_tokens_per_s < chosen.prediction.decode_tokens_per_s:
        return (f"slower: {_fmt_tps(alt.prediction.decode_tokens_per_s)} against "
                f"{_fmt_tps(chosen.prediction.decode_tokens_per_s)}")
    return f"{BACKENDS[chosen.backend].title} comes first in the backend preference"
