"""plan(): a pure function of (hardware, constraints, backends) that picks model, backend, context and offload,
and says why. The backends come in through planner.backend's protocol: the planner never imports them."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from gptoss_deploy.planner.backend import ApiLaunch, CloudQuote, LaunchSettings, LocalLaunch, MachineClass, PlannedBackend
from gptoss_deploy.planner.catalog import MAX_CONTEXT, MODELS, ModelSpec, model_for
from gptoss_deploy.planner.constraints import CONTEXT_STEP, MAX_FULL_PROMPT_S, MIN_CAPPED_CONTEXT, Constraints
from gptoss_deploy.planner.devices import is_datacenter, serves_through_vllm_first
from gptoss_deploy.planner.errors import NoFitError, UsageError
from gptoss_deploy.planner.explain import explain_choice, explain_loss
from gptoss_deploy.planner.hardware import HardwareReport
from gptoss_deploy.planner.placement import EXPERTS, FITTERS, WHOLE_MODEL, Placement, Rejection, with_host_caches
from gptoss_deploy.planner.throughput import Prediction, predict

if TYPE_CHECKING:
    from gptoss_deploy.planner.documents import PlanDocument

Backends = Mapping[str, PlannedBackend]

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Candidate:
    model: ModelSpec
    backend: str
    status: str                        # "ok" | "degraded" | "cloud"
    launch: LocalLaunch | ApiLaunch
    placement: Placement | None = None
    prediction: Prediction | None = None
    quote: CloudQuote | None = None
    target_context: int | None = None  # the context it aims for: the constraints', or that capped for prefill time

    def full_prompt_ttft_s(self) -> float | None:
        """Seconds to first token for a prompt that fills the context, from the predicted prefill."""
        return None if self.placement is None else _full_prompt_s(self.placement, self.prediction)


@dataclass(frozen=True)
class Plan:
    chosen: Candidate
    alternatives: tuple[Candidate, ...]
    rejected: tuple[Rejection, ...]
    constraints: Constraints
    hardware: HardwareReport
    reasons: tuple[str, ...]
    binding_constraint: str
    lost_because: tuple[str, ...]      # why each alternative lost, in the same order

    def document(self) -> PlanDocument:
        """The plan as the typed document that `up` applies and pipelines save."""
        from gptoss_deploy.planner.documents import PlanDocument   # its models cost start-up time: build on use

        return PlanDocument.model_validate(self.to_json())

    def to_json(self) -> dict:
        doc = candidate_json(self.chosen, self.constraints)
        doc["reasons"] = list(self.reasons)
        doc["binding_constraint"] = self.binding_constraint
        doc["profile"] = self.constraints.profile
        doc["sources"] = dict(self.constraints.sources)
        doc["alternatives"] = [
            {**candidate_json(alt, self.constraints), "lost_because": why}
            for alt, why in zip(self.alternatives, self.lost_because)
        ]
        doc["rejected"] = [{"model": r.model.name, "backend": r.backend, "reason": r.reason, "binding": r.resource}
                           for r in self.rejected]
        return doc


def backend_order(hw: HardwareReport, constraints: Constraints, backends: Backends) -> list[str]:
    """Backends to try, best first: the one asked for, else the profile's preference, else by machine class
    (each local backend's own auto_rank), with cloud services after them where cloud is allowed."""
    if constraints.backend != "auto":
        return [constraints.backend]
    if constraints.backend_preference:
        order = list(constraints.backend_preference)
    else:
        machine = machine_class(hw)
        ranked = [b for b in backends.values() if not b.cloud and machine in b.auto_rank]
        order = [b.name for b in sorted(ranked, key=lambda b: b.auto_rank[machine])]
    if not constraints.local_only:
        order += [name for name, b in backends.items() if b.cloud and name not in order]
    return [name for name in order if not (constraints.local_only and backends[name].cloud)]


def machine_class(hw: HardwareReport) -> MachineClass:
    if serves_through_vllm_first(hw):
        return MachineClass.DATACENTER
    return MachineClass.SERVER if is_datacenter(hw) or hw.nodes > 1 else MachineClass.DESKTOP


def _settings(constraints: Constraints) -> LaunchSettings:
    return LaunchSettings(reasoning_effort=constraints.reasoning_effort, context=constraints.context,
                          region=constraints.region, cloud=constraints.cloud_settings)


def _candidate(model: ModelSpec, backend: PlannedBackend, hw: HardwareReport,
               constraints: Constraints) -> Candidate | Rejection:
    if backend.cloud:
        quote = backend.quote(model, _settings(constraints))
        if isinstance(quote, Rejection):
            return quote
        return Candidate(model, backend.name, "cloud", quote.launch, prediction=quote.prediction, quote=quote)
    if hw.nodes > 1 and backend.offload != WHOLE_MODEL:
        return Rejection(backend.name, model, f"{backend.name} serves from one node; a plan over {hw.nodes} nodes "
                         "runs vLLM", "nodes")
    # a local file (--gguf) is the weights, whatever the variant: planned as its size's file, with its own bytes
    shape = MODELS[model.size] if constraints.local_file else model
    unsupported = backend.unsupported(shape, hw)
    if unsupported:
        return Rejection(backend.name, model, unsupported, "support")
    artifact = backend.artifact(shape, hw)
    if constraints.gguf_bytes:
        artifact = replace(artifact, disk_bytes=constraints.gguf_bytes, loaded_bytes=constraints.gguf_bytes)
    devices = backend.computes_on(hw)
    calibration = constraints.calibrations.get((backend.name, model.name))
    if calibration:
        artifact = calibration.sized(artifact)          # its buffers as this machine's engine reported them

    def fit(context: int) -> Placement | Rejection:
        placed = FITTERS[backend.offload](backend.name, model, devices, context, artifact)
        return with_host_caches(placed, devices) if backend.host_caches else placed

    def predicted(placed: Placement) -> Prediction:     # as this machine measured it, where it has
        prediction = predict(placed, devices)
        return calibration.applied(prediction) if calibration else prediction

    placed = fit(constraints.context)
    if isinstance(placed, Rejection):
        return placed
    prediction, target = predicted(placed), constraints.context
    too_long = (_full_prompt_s(placed, prediction) or 0.0) > MAX_FULL_PROMPT_S
    if too_long and placed.context_length > MIN_CAPPED_CONTEXT and not constraints.context_chosen():
        target, placed, prediction = _readable_context(fit, predicted, placed.context_length)
    good = (prediction.decode_tokens_per_s >= constraints.min_decode_tokens_per_s
            and placed.context_length >= target)
    return Candidate(model, backend.name, "ok" if good else "degraded",
                     backend.build_launch(placed, _settings(constraints)), placed, prediction, target_context=target)


def _full_prompt_s(placed: Placement, prediction: Prediction) -> float | None:
    """Seconds to read a prompt that fills PLACED's context; None where the prefill prediction means nothing."""
    return prediction.prompt_seconds(placed.context_length) if prediction.prefill_tokens_per_s > 0 else None


def _readable_context(fit, predicted, longest: int) -> tuple[int, Placement, Prediction]:
    """The longest context, in CONTEXT_STEPs below LONGEST, whose full prompt is read within MAX_FULL_PROMPT_S
    (its own placement: a shorter context may fit more on the GPU and read faster); MIN_CAPPED_CONTEXT at least.
    The time grows with the context, so a binary search finds it."""
    def placed_at(steps: int) -> tuple[Placement, Prediction] | None:
        placed = fit(steps * CONTEXT_STEP)
        return None if isinstance(placed, Rejection) else (placed, predicted(placed))

    low, high = MIN_CAPPED_CONTEXT // CONTEXT_STEP, longest // CONTEXT_STEP - 1
    best = placed_at(low)
    while low < high:
        middle = (low + high + 1) // 2
        found = placed_at(middle)
        if found and (_full_prompt_s(*found) or 0) <= MAX_FULL_PROMPT_S:
            low, best = middle, found
        else:
            high = middle - 1
    return low * CONTEXT_STEP, *best


def readable_context(hw: HardwareReport, constraints: Constraints, backends: Backends) -> tuple[int, float] | None:
    """The context the planner itself caps to on HW: the longest whose full prompt the best local plan reads within
    MAX_FULL_PROMPT_S (MIN_CAPPED_CONTEXT at least, MAX_CONTEXT at most), and the seconds that prompt takes; None
    where nothing local fits."""
    try:
        chosen = plan(hw, constraints.relaxed(context=MAX_CONTEXT, local_only=True, cloud=False), backends).chosen
    except NoFitError:
        return None
    seconds = chosen.full_prompt_ttft_s()
    return chosen.placement.context_length, seconds if seconds is not None else 0.0


def plan(hw: HardwareReport, constraints: Constraints, backends: Backends) -> Plan:
    """Enumerate model x backend, reject what does not fit (with the reason), rank the rest."""
    sizes = [constraints.model] if constraints.model != "auto" else ["120b", "20b"]
    _require_variant(constraints, backends)
    order = backend_order(hw, constraints, backends)
    candidates: list[Candidate] = []
    rejected: list[Rejection] = []
    for size in sizes:
        for name in order:
            result = _candidate(model_for(size, constraints.variant), backends[name], hw, constraints)
            (rejected if isinstance(result, Rejection) else candidates).append(result)
    if not candidates:
        raise NoFitError(_no_fit_message(hw, constraints, rejected, backends))
    candidates.sort(key=lambda c: _sort_key(c, order, constraints))
    chosen, *others = candidates
    if chosen.status == "cloud" and not cloud_consented(constraints, backends):
        raise NoFitError(_no_fit_message(hw, constraints, rejected, backends))
    reasons, binding = explain_choice(chosen, others, rejected, hw, constraints, backends)
    lost = tuple(explain_loss(alt, chosen, constraints, backends) for alt in others)
    return Plan(chosen, tuple(others), tuple(rejected), constraints, hw, tuple(reasons), binding, lost)


def _require_variant(constraints: Constraints, backends: Backends) -> None:
    """A backend the user named that has no model of the variant is a usage error (exit 2), with the backends that
    have some; a local file (--gguf) is its own weights. (One that lacks a size, or one the tool tries, is a
    rejection like any other.)"""
    named = backends.get(constraints.backend)
    wanted = [model_for(size, constraints.variant).name for size in MODELS]
    if (named is None or not constraints.chose("backend") or constraints.local_file
            or any(name in named.models for name in wanted)):
        return
    having = [b for b, backend in backends.items() if any(name in backend.models for name in wanted)]
    raise UsageError(f"variant {constraints.variant} ({constraints.source('variant')}): {named.title} "
                     f"({constraints.source('backend')}) has no {' or '.join(wanted)}; choose --backend "
                     f"{' or '.join(having)}" + ("" if named.cloud or not named.serves_gguf_files else
                                                 ", or serve a GGUF of it you have: gptoss-up --gguf FILE"))


def _sort_key(candidate: Candidate, order: list[str], constraints: Constraints) -> tuple:
    """Best first: runs locally at or above the profile's decode floor > runs locally below it > cloud, or, when
    the user asked for cloud (--cloud), cloud before the slow local plan; then the bigger model, the full context,
    the preferred backend, the faster decode."""
    if candidate.status == "cloud":
        tier = 2 if constraints.cloud else 0
    elif candidate.prediction.decode_tokens_per_s >= constraints.min_decode_tokens_per_s:
        tier = 3
    else:
        tier = 1
    full_context = candidate.placement is None or candidate.placement.context_length >= candidate.target_context
    decode = candidate.prediction.decode_tokens_per_s if candidate.prediction else 0.0
    return (-tier, -candidate.model.total_params, not full_context, order.index(candidate.backend), -decode)


def cloud_consented(constraints: Constraints, backends: Backends) -> bool:
    """Whether the user agreed to a billed service: cloud is fine (--cloud, GPTOSS_CLOUD, the wizard's answer, a
    profile's cloud = true), or they named a cloud backend (--backend, a profile such as aws, its preferences)."""
    named = (constraints.backend, *constraints.backend_preference)
    return constraints.cloud or any(name in backends and backends[name].cloud for name in named)


def _no_fit_message(hw: HardwareReport, constraints: Constraints, rejected: list[Rejection],
                    backends: Backends) -> str:
    """Why nothing runs here, then the choices that would: the first local one that fits, and a billed one, each
    with how to ask for it in the words of where the user's setting came from."""
    local = [r for r in rejected if not backends[r.backend].cloud]
    message = (local or rejected)[0].reason if rejected else "no backend is allowed by these constraints"
    choices, named = [], set()
    for change, hint in _relaxations(constraints, backends):
        if choices and change.get("cloud") is None:
            continue                                   # one local choice is enough; the billed one follows
        try:
            alternative = plan(hw, constraints.relaxed(**change), backends).chosen
        except NoFitError:
            continue
        if (alternative.model.name, alternative.backend) in named:
            continue                                   # allowing cloud found the same local plan again
        named.add((alternative.model.name, alternative.backend))
        fits = "billed: {} on {}" if alternative.status == "cloud" else "{} on {} fits"
        choices.append(f"{fits.format(alternative.model.name, alternative.backend)} ({hint})")
    if choices:
        return f"{message}. Instead: {'; or, '.join(choices)}"
    return f"{message}. Nothing fits this machine; use a bigger machine"


def _relaxations(constraints: Constraints, backends: Backends) -> list[tuple[dict, str]]:
    """Changes to the settings the user made (never the tool's own, such as an export's local-only rule) that might
    let a plan fit, each with how to make it; the last allows a billed cloud service."""
    c = constraints
    options = []
    if c.backend != "auto" and c.chose("backend"):
        options.append(({"backend": "auto"}, c.undo("backend")))
    if c.model != "auto" and c.chose("model"):
        options.append(({"model": "auto"}, c.undo("model")))
        if c.backend != "auto" and c.chose("backend"):
            options.append(({"model": "auto", "backend": "auto"},
                            f"{c.undo('model')} and {c.undo('backend')}"))
    if cloud_consented(c, backends):
        return options
    if c.local_only and not c.chose("local_only"):
        return options
    steps = [c.undo("local_only")] if c.local_only else []
    if not c.local_only or c.source("local_only").startswith(("flag", "env")):   # a profile's: --cloud overrides it
        steps.append("add --cloud")
    if c.backend != "auto" and c.chose("backend"):
        steps.insert(0, c.undo("backend"))
    options.append(({"local_only": False, "cloud": True, "backend": "auto"}, " and ".join(steps)))
    return options


def candidate_json(candidate: Candidate, constraints: Constraints) -> dict:
    placement = candidate.placement
    doc = {
        "schema_version": SCHEMA_VERSION, "status": candidate.status, "model": candidate.model.name,
        "backend": candidate.backend, "quantization": "mxfp4",
        "context_length": placement.context_length if placement else constraints.context,
        "reasoning_effort": constraints.reasoning_effort,
    }
    if placement is None:
        api = candidate.launch.api
        doc.update(offload={"n_cpu_moe": 0, "tensor_parallel_size": api.get("tensor_parallel_size", 1),
                            "data_parallel_size": 1},
                   memory=None,
                   predicted={**(candidate.prediction.to_json() if candidate.prediction else
                                 {"decode_tokens_per_s": None, "prefill_tokens_per_s": None,
                                  "prefill_half_depth_tokens": None, "roofline_decode_tokens_per_s": None, "aggregate_tokens_per_s": None,
                                  "aggregate_streams": None}), "full_prompt_ttft_s": None},
                   price=_price(candidate.quote, constraints))
    else:
        doc.update(offload=_offload_json(placement), memory=_memory_json(placement),
                   predicted={**candidate.prediction.to_json(),
                              "full_prompt_ttft_s": _round(candidate.full_prompt_ttft_s())})
    doc["launch"] = candidate.launch.to_json()
    return doc


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


def _price(quote: CloudQuote, constraints: Constraints) -> dict:
    """The service's price as quoted, replaced field by field by the profile's own where it gives them."""
    price = dict(quote.price)
    own = {k: v for k, v in constraints.prices.items() if k in price}
    if own:
        price.update(own, note=f"from profile {constraints.profile}")
    return price


def _offload_json(placement: Placement) -> dict:
    on_gpu = any(d.device != "cpu" for d in placement.devices)
    offload = {"n_cpu_moe": placement.cpu_layers if placement.offload == EXPERTS and on_gpu else 0,
               "tensor_parallel_size": placement.tensor_parallel_size,
               "data_parallel_size": placement.data_parallel_size}
    if placement.pipeline_parallel_size > 1:
        offload["pipeline_parallel_size"] = placement.pipeline_parallel_size
    if placement.gpu_layers is not None:
        offload["gpu_layers"] = placement.gpu_layers
    return offload


def _memory_json(placement: Placement) -> dict:
    gpus = [d for d in placement.devices if d.device != "cpu"]
    cpu = next((d for d in placement.devices if d.device == "cpu"), None)
    devices = [d.to_json() for d in placement.devices]
    breakdown = {key: sum(d["breakdown"][key] for d in devices)
                 for key in ("weights", "kv_cache", "compute", "runtime", "headroom")}
    return {
        "gpu_bytes": sum(d.used_bytes for d in gpus), "cpu_bytes": cpu.used_bytes if cpu else 0,
        "gpu_available_bytes": sum(d.available_bytes for d in gpus),
        "cpu_available_bytes": cpu.available_bytes if cpu else 0,
        "breakdown": breakdown, "devices": devices,
    }

