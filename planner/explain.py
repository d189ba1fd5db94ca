"""Why a plan is what it is: reasons in the user's words, the binding constraint, and why runners-up lost."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from gptoss_deploy.planner.constraints import MAX_FULL_PROMPT_S, Constraints
from gptoss_deploy.planner.devices import EXPERIMENTAL, find_spec, is_datacenter, serves_through_vllm_first, vllm_support
from gptoss_deploy.planner.hardware import HardwareReport
from gptoss_deploy.planner.placement import EXPERTS, WHOLE_MODEL, Placement, Rejection, fit_expert_offload
from gptoss_deploy.planner.throughput import predict_decode
from gptoss_deploy.planner.units import MIB, gib, tokens_per_s

if TYPE_CHECKING:
    from gptoss_deploy.planner.plan import Backends, Candidate

# G15396: on Apple silicon keep the model under ~70% of RAM.
APPLE_SAFE_RAM_FRACTION = 0.70


def machine_summary(hw: HardwareReport) -> str:
    if not hw.gpus:
        return f"CPU only: {hw.cpu.model}, {gib(hw.memory.available_bytes)} of RAM available"
    names = sorted({g.name for g in hw.gpus})
    if any(g.unified_memory for g in hw.gpus):      # one pool: say it once, and how much of it the GPU may take
        gpu_share = sum(g.memory_free_bytes for g in hw.gpus)
        return (f"unified memory GPU: {len(hw.gpus)} x {', '.join(names)}; {gib(hw.memory.available_bytes)} of "
                f"memory available, of which the GPU may use {gib(gpu_share)}")
    kind = "datacenter GPUs" if is_datacenter(hw) else "desktop/laptop GPU"
    free = sum(g.memory_free_bytes for g in hw.gpus)
    return (f"{kind}: {len(hw.gpus)} x {', '.join(names)}, {gib(free)} GPU memory free; "
            f"{gib(hw.memory.available_bytes)} of RAM available")


def explain_choice(chosen: Candidate, others: list[Candidate], rejected: list[Rejection],
                   hw: HardwareReport, c: Constraints, backends: Backends) -> tuple[list[str], str]:
    reasons = [machine_summary(hw)]
    reasons.append(_model_reason(chosen, others, rejected, c))
    reasons.append(_backend_reason(chosen, c, backends, hw))
    reasons.extend(_vllm_notes(chosen, hw))
    placement = chosen.placement
    if chosen.prediction is not None and chosen.prediction.calibration is not None:
        reasons.append(chosen.prediction.calibration.reason())
    if chosen.status == "degraded" and chosen.prediction.decode_tokens_per_s < c.min_decode_tokens_per_s:
        reasons.append(_below_floor_reason(chosen, others, c, backends))
    if placement is not None:
        reasons.append(_context_reason(chosen, c))
        reasons.extend(backends[chosen.backend].placement_reasons(placement, hw))   # in its engine's words
        hint = apple_wired_limit_hint(placement, hw, c)
        if hint:
            reasons.append(hint)
        reasons.append("quantization: native MXFP4 experts; other GGUF quants keep the experts in MXFP4 "
                       "and save under 5%, so they are not worth the quality risk")
        unknown = [g.name for g in hw.gpus if not g.memory_bandwidth_gbps and not find_spec(g.name)]
        if unknown:
            reasons.append(f"warning: memory bandwidth of {unknown[0]} is unknown; the prediction assumes a low default")
    else:
        reasons.extend(chosen.quote.reasons)        # the service says what it is, where, and at what price
    reasons.append(f"reasoning effort: {c.reasoning_effort} ({c.source('reasoning_effort')})")
    return reasons, _binding(chosen, others, rejected, c)


def _model_reason(chosen: Candidate, others: list[Candidate], rejected: list[Rejection], c: Constraints) -> str:
    name = chosen.model.name
    if c.model != "auto":
        return f"model: {name} ({c.source('model')})"
    # local runners-up only: a cloud service's prediction (its GPU size's) says nothing of this machine
    bigger_lost = [o for o in others if o.placement is not None and o.prediction
                   and o.model.total_params > chosen.model.total_params]
    bigger_rejected = [r for r in rejected if r.model.total_params > chosen.model.total_params]
    if chosen.prediction is None:
        return f"model: {name}, served in the cloud"
    speed = tokens_per_s(chosen.prediction.decode_tokens_per_s)
    if bigger_lost:
        alt = bigger_lost[0]
        return (f"model: {name}; {alt.model.name} would run at only "
                f"{tokens_per_s(alt.prediction.decode_tokens_per_s)}, below the "
                f"{c.min_decode_tokens_per_s:g} tok/s floor of profile {c.profile}")
    if bigger_rejected:
        return f"model: {name}; {bigger_rejected[0].reason}"
    return f"model: {name}, the biggest gpt-oss, predicted at {speed}"


def _backend_reason(chosen: Candidate, c: Constraints, backends: Backends, hw: HardwareReport) -> str:
    backend = backends[chosen.backend]
    if c.backend != "auto":
        return f"backend: {backend.title} ({c.source('backend')})"
    if c.backend_preference:
        return f"backend: {backend.title}, the first of profile {c.profile}'s preferences that fits"
    if backend.cloud and c.cloud:
        return f"backend: {backend.title}: nothing local runs well enough, and cloud is fine ({c.source('cloud')})"
    if backend.cloud:
        return f"backend: {backend.title}: nothing fits this machine locally, and you allowed a billed service"
    if not hw.gpus:
        return f"backend: {backend.title}: no GPU here, and it runs gpt-oss's MXFP4 experts on the CPU"
    if hw.nodes > 1:
        return f"backend: {backend.title}: the engine that serves one model over {hw.nodes} nodes"
    if is_datacenter(hw) and not serves_through_vllm_first(hw):
        why = next(w for _, w in map(vllm_support, hw.gpus) if w)
        if backend.offload == WHOLE_MODEL:
            return f"backend: {backend.title}: {why}; it is tried after llama.cpp, and plans better here"
        return f"backend: {backend.title}: {why}, so it is tried before vLLM"
    return f"backend: {backend.title}: {backend.why_chosen}" if backend.why_chosen else f"backend: {backend.title}"


def _context_reason(chosen: Candidate, c: Constraints) -> str:
    context, prediction = chosen.placement.context_length, chosen.prediction
    ttft = chosen.full_prompt_ttft_s()
    if chosen.target_context < c.context:
        return (f"context: {context:,} tokens, capped from {c.context:,} ({c.source('context')}): a full "
                f"{c.context:,}-token prompt would take ~{prediction.prompt_seconds(c.context):,.0f} s to first "
                f"token (predicted prefill {tokens_per_s(prediction.prefill_tokens_per_s)}, slowing as the prompt "
                f"grows), over {MAX_FULL_PROMPT_S:.0f} s (~{ttft:,.0f} s now); --context {c.context} keeps it")
    full = f"; a full prompt takes ~{ttft:,.0f} s to first token" if ttft is not None else ""
    if context >= c.context:
        return f"context: {context:,} tokens ({c.source('context')}){full}"
    return (f"context: reduced from {c.context:,} to {context:,} tokens: the KV cache for more does not fit the "
            f"free memory{full}")


def _below_floor_reason(chosen: Candidate, others: list[Candidate], c: Constraints, backends: Backends) -> str:
    """A plan slower than the profile asks: by how much, and what would be faster, cloud included, at what price."""
    decode = chosen.prediction.decode_tokens_per_s
    faster = []
    for alt in others:
        if alt.status == "cloud":
            faster.append(f"{alt.model.name} on {backends[alt.backend].title} ({_price_words(alt)}, with --cloud)")
        elif alt.prediction.decode_tokens_per_s > decode:
            faster.append(f"{alt.model.name} on {backends[alt.backend].title} at "
                          f"{tokens_per_s(alt.prediction.decode_tokens_per_s)}")
    instead = f"; faster: {', '.join(faster[:3])}" if faster else "; nothing faster is allowed here"
    return (f"speed: predicted {tokens_per_s(decode)} is below profile {c.profile}'s "
            f"{c.min_decode_tokens_per_s:g} tok/s floor{instead}")


def _price_words(candidate: Candidate) -> str:
    price = candidate.quote.price
    if price.get("usd_per_1m_input_tokens") is not None:
        return (f"${price['usd_per_1m_input_tokens']:.2f} / ${price['usd_per_1m_output_tokens']:.2f} per 1M "
                "input / output tokens")
    if price.get("usd_per_hour") is not None:
        return f"${price['usd_per_hour']:g} per hour"
    return "price not in our data"


def whole_layers_reason(placement: Placement, title: str) -> list[str]:
    """Engines that offload whole layers (Ollama, LM Studio): how many run on the CPU, in no flag of theirs."""
    if not placement.cpu_layers or not any(d.device != "cpu" for d in placement.devices):
        return []
    free = gib(sum(d.available_bytes for d in placement.devices if d.device != "cpu"))
    return [f"offload: {title} runs {placement.cpu_layers} of {placement.model.layers} whole layers on the CPU "
            f"to fit {free} of free GPU memory"]


def _vllm_notes(chosen: Candidate, hw: HardwareReport) -> list[str]:
    """A warning where vLLM runs on a GPU its gpt-oss recipe lists as work in progress."""
    if chosen.placement is None or chosen.placement.offload != WHOLE_MODEL:
        return []
    return [f"warning: {why}; llama.cpp (--backend llamacpp) is the tested path there"
            for level, why in {vllm_support(g) for g in hw.gpus} if level == EXPERIMENTAL]


def apple_wired_limit_hint(placement: Placement, hw: HardwareReport, c: Constraints) -> str | None:
    """Where raising Metal's wired limit would let the whole model sit on the GPU, say how and what it gains."""
    apple = [g for g in hw.gpus if g.vendor == "apple"]
    if not apple or placement.offload != EXPERTS or not placement.cpu_layers:
        return None
    gpu = apple[0]
    room = hw.memory.available_bytes
    raised = hw.model_copy(update={"gpus": [gpu.model_copy(update={"memory_total_bytes": room,
                                                                    "memory_free_bytes": room})]})
    full = fit_expert_offload(placement.backend, placement.model, raised, placement.context_length,
                              placement.artifact)
    if isinstance(full, Rejection) or full.cpu_layers:
        return None
    needed = next(d for d in full.devices if d.device != "cpu").needed_bytes
    limit_mb = math.ceil(needed / MIB / 512) * 512
    note = ""
    if limit_mb * MIB > APPLE_SAFE_RAM_FRACTION * hw.memory.total_bytes:
        note = "; that is above the ~70% of RAM llama.cpp's gpt-oss guide advises, so close other apps first"
    return (f"Apple: `sudo sysctl iogpu.wired_limit_mb={limit_mb}` (until reboot) lets Metal hold all of "
            f"{placement.model.name}: predicted {tokens_per_s(predict_decode(full, raised))} instead of "
            f"{tokens_per_s(predict_decode(placement, hw))}{note}")


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
    if placement.context_length < chosen.target_context:
        return "GPU memory" if any(d.device != "cpu" for d in placement.devices) else "RAM"
    if chosen.target_context < c.context:
        return f"prefill speed (a full prompt over {MAX_FULL_PROMPT_S:.0f} s)"
    if chosen.status == "degraded":
        return "memory bandwidth"
    return "none: everything fits with room to spare"


def explain_loss(alt: Candidate, chosen: Candidate, c: Constraints, backends: Backends) -> str:
    if alt.prediction and alt.prediction.decode_tokens_per_s < c.min_decode_tokens_per_s:
        return (f"predicted {tokens_per_s(alt.prediction.decode_tokens_per_s)} is below the "
                f"{c.min_decode_tokens_per_s:g} tok/s floor")
    if alt.status == "cloud" and chosen.status == "degraded":
        return "a local plan is preferred over paying per token unless cloud is asked for (--cloud)"
    if alt.status == "cloud" and chosen.status != "cloud":
        return "a local plan that runs well is preferred over paying per token"
    if alt.model.total_params < chosen.model.total_params:
        return f"smaller model: {chosen.model.name} runs well here"
    if alt.placement and chosen.placement and alt.placement.context_length < chosen.placement.context_length:
        return f"shorter context ({alt.placement.context_length} tokens)"
    if alt.backend != chosen.backend and alt.prediction and chosen.prediction \
            and alt.prediction.decode_tokens_per_s < chosen.prediction.decode_tokens_per_s:
        return (f"slower: {tokens_per_s(alt.prediction.decode_tokens_per_s)} against "
                f"{tokens_per_s(chosen.prediction.decode_tokens_per_s)}")
    return f"{backends[chosen.backend].title} comes first in the backend preference"
