"""plan(): a pure function of (hardware, constraints) that picks model, backend, context and offload, and says why."""
from __future__ import annotations

from dataclasses import dataclass, replace

from gptoss_deploy.backends import BACKENDS, get_backend_module
from gptoss_deploy.backends.base import LaunchSettings
from gptoss_deploy.planner.catalog import ARTIFACTS, CLOUD_OFFERS, MODELS, CloudOffer, ModelSpec
from gptoss_deploy.planner.constraints import Constraints
from gptoss_deploy.planner.devices import is_datacenter
from gptoss_deploy.planner.errors import NoFitError
from gptoss_deploy.planner.explain import explain_choice, explain_loss
from gptoss_deploy.planner.hardware import HardwareReport
from gptoss_deploy.planner.azure_compute import choose_size
from gptoss_deploy.planner.placement import FITTERS, Placement, Rejection, fit_llamacpp
from gptoss_deploy.planner.throughput import Prediction, predict

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Candidate:
    model: ModelSpec
    backend: str
    status: str                        # "ok" | "degraded" | "cloud"
    launch: dict
    placement: Placement | None = None
    prediction: Prediction | None = None
    offer: CloudOffer | None = None


@dataclass(frozen=True)
class Plan:
    chosen: Candidate
    alternatives: tuple[Candidate, ...]
    rejected: tuple[Rejection, ...]
    constraints: Constraints
    hardware: HardwareReport
    reasons: tuple[str, ...]
    binding_constraint: str

    def to_json(self) -> dict:
        doc = candidate_json(self.chosen, self.constraints)
        doc["reasons"] = list(self.reasons)
        doc["binding_constraint"] = self.binding_constraint
        doc["profile"] = self.constraints.profile
        doc["sources"] = dict(self.constraints.sources)
        doc["alternatives"] = [
            {**candidate_json(alt, self.constraints), "lost_because": explain_loss(alt, self.chosen, self.constraints)}
            for alt in self.alternatives
        ]
        doc["rejected"] = [{"model": r.model.name, "backend": r.backend, "reason": r.reason, "binding": r.resource}
                           for r in self.rejected]
        return doc


def backend_order(hw: HardwareReport, constraints: Constraints) -> list[str]:
    """Backends to try, best first: the one asked for, else the profile's preference, else by machine class."""
    if constraints.backend != "auto":
        return [constraints.backend]
    if constraints.backend_preference:
        order = list(constraints.backend_preference)
    elif is_datacenter(hw):
        order = ["vllm", "llamacpp", "ollama"]
    else:
        order = ["llamacpp", "ollama"]
    if not constraints.local_only:
        order += [name for name in ("bedrock", "azure") if name not in order]
    return [name for name in order if not (constraints.local_only and BACKENDS[name].cloud)]


def _settings(constraints: Constraints) -> LaunchSettings:
    return LaunchSettings(reasoning_effort=constraints.reasoning_effort, region=constraints.region,
                          cloud_model_id=constraints.azure_model_id, azure_workspace=constraints.azure_workspace)


def _candidate(model: ModelSpec, backend: str, hw: HardwareReport, constraints: Constraints) -> Candidate | Rejection:
    module = get_backend_module(backend)
    if BACKENDS[backend].cloud:
        offer = CLOUD_OFFERS[(backend, model.size)]
        if backend == "azure" and constraints.azure_mode == "managed":
            return _azure_managed(model, offer, constraints)
        return Candidate(model, backend, "cloud", module.build_launch(offer, _settings(constraints)), offer=offer)
    if backend == "llamacpp" and constraints.gguf_bytes:     # a local file: plan with its own size
        catalog = ARTIFACTS[("llamacpp", model.size)]
        local = replace(catalog, disk_bytes=constraints.gguf_bytes, loaded_bytes=constraints.gguf_bytes)
        placed = fit_llamacpp(model, hw, constraints.context, local)
    else:
        placed = FITTERS[backend](model, hw, constraints.context)
    if isinstance(placed, Rejection):
        return placed
    prediction = predict(placed, hw)
    good = (prediction.decode_tokens_per_s >= constraints.min_decode_tokens_per_s
            and placed.context_length >= constraints.context)
    return Candidate(model, backend, "ok" if good else "degraded",
                     module.build_launch(placed, _settings(constraints)), placed, prediction)


def _azure_managed(model: ModelSpec, offer: CloudOffer, constraints: Constraints) -> Candidate | Rejection:
    """Azure managed compute: vLLM on the first GPU size that holds the model, planned like a local vLLM."""
    chosen = choose_size(model, constraints.context)
    if isinstance(chosen, Rejection):
        return chosen
    size, placed = chosen
    launch = get_backend_module("azure").build_managed_launch(offer, size, placed, _settings(constraints))
    return Candidate(model, "azure", "cloud", launch, offer=offer, prediction=predict(placed, size.hardware()))


def plan(hw: HardwareReport, constraints: Constraints) -> Plan:
    """Enumerate model x backend, reject what does not fit (with the reason), rank the rest."""
    sizes = [constraints.model] if constraints.model != "auto" else ["120b", "20b"]
    order = backend_order(hw, constraints)
    candidates: list[Candidate] = []
    rejected: list[Rejection] = []
    for size in sizes:
        for backend in order:
            result = _candidate(MODELS[size], backend, hw, constraints)
            (rejected if isinstance(result, Rejection) else candidates).append(result)
    if not candidates:
        raise NoFitError(_no_fit_message(hw, constraints, rejected))
    candidates.sort(key=lambda c: _sort_key(c, order, constraints))
    chosen, *others = candidates
    reasons, binding = explain_choice(chosen, others, rejected, hw, constraints)
    return Plan(chosen, tuple(others), tuple(rejected), constraints, hw, tuple(reasons), binding)


def _sort_key(candidate: Candidate, order: list[str], constraints: Constraints) -> tuple:
    """Best first: runs locally at or above the profile's decode floor > cloud > runs locally below it;
    then the bigger model, the full context, the preferred backend, the faster decode."""
    if candidate.status == "cloud":
        tier = 1
    elif candidate.prediction.decode_tokens_per_s >= constraints.min_decode_tokens_per_s:
        tier = 2
    else:
        tier = 0
    full_context = candidate.placement is None or candidate.placement.context_length >= constraints.context
    decode = candidate.prediction.decode_tokens_per_s if candidate.prediction else 0.0
    return (-tier, -candidate.model.total_params, not full_context, order.index(candidate.backend), -decode)


def _no_fit_message(hw: HardwareReport, constraints: Constraints, rejected: list[Rejection]) -> str:
    message = rejected[0].reason if rejected else "no backend is allowed by these constraints"
    for change, hint in _relaxations(constraints):
        try:
            alternative = plan(hw, constraints.relaxed(**change))
        except NoFitError:
            continue
        return f"{message}. Instead: {alternative.chosen.model.name} on {alternative.chosen.backend} fits ({hint})"
    return f"{message}. Nothing fits this machine locally; allow cloud backends (drop --local) or use a bigger machine"


def _relaxations(constraints: Constraints) -> list[tuple[dict, str]]:
    options = []
    if constraints.backend != "auto":
        options.append(({"backend": "auto"}, "drop --backend"))
    if constraints.model != "auto":
        options.append(({"model": "auto"}, "drop --model"))
    if constraints.model != "auto" and constraints.backend != "auto":
        options.append(({"model": "auto", "backend": "auto"}, "drop --model and --backend"))
    if constraints.local_only:
        options.append(({"local_only": False, "backend": "auto"}, "allow cloud: drop --local"))
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
        offer = candidate.offer
        api = candidate.launch["api"]
        managed = api.get("deployment") == "managed"
        doc.update(offload={"n_cpu_moe": 0, "tensor_parallel_size": api.get("tensor_parallel_size", 1)},
                   memory=None,
                   predicted=candidate.prediction.to_json() if candidate.prediction else
                   {"decode_tokens_per_s": None, "prefill_tokens_per_s": None, "roofline_decode_tokens_per_s": None},
                   price=_price(api, offer, managed, constraints))
    else:
        doc.update(offload=_offload_json(placement), memory=_memory_json(placement),
                   predicted=candidate.prediction.to_json())
    doc["launch"] = candidate.launch
    return doc


def _price(api: dict, offer: CloudOffer, managed: bool, constraints: Constraints) -> dict:
    """List prices from our data, replaced field by field by the profile's own where it gives them."""
    if managed:
        price = {"usd_per_hour": None, "note": f"{api['instance_type']}: see Azure's VM pricing for {api['region']}; "
                                               "billed per hour while the endpoint exists"}
    else:
        price = {"usd_per_1m_input_tokens": offer.usd_per_1m_input,
                 "usd_per_1m_output_tokens": offer.usd_per_1m_output, "note": offer.price_note}
    own = {k: v for k, v in constraints.prices.items() if k in price}
    if own:
        price.update(own, note=f"from profile {constraints.profile}")
    return price


def _offload_json(placement: Placement) -> dict:
    on_gpu = any(d.device != "cpu" for d in placement.devices)
    offload = {"n_cpu_moe": placement.cpu_layers if placement.backend == "llamacpp" and on_gpu else 0,
               "tensor_parallel_size": placement.tensor_parallel_size}
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

