"""The engine's own account of its memory beside the plan's: read from its log once it is ready, so that
`gptoss status --json` shows predicted against actual memory, and a figure far off the plan is a warning with its
likely cause."""
from __future__ import annotations

from gptoss_deploy.backends.engine_report import EngineReport
from gptoss_deploy.planner.documents import DeviceMemory, Memory
from gptoss_deploy.planner.units import MIB, size
from gptoss_deploy.runtime.records import EngineMemory, MemoryFigure

# The plan's figures are estimates (compute buffers most of all) and engines round theirs: a difference is news
# only when it is both this share of the plan's figure and this many bytes.
TOLERANCE_SHARE = 0.10
TOLERANCE_BYTES = 256 * MIB
# A ratio beyond these says more about the run (another batch size, a crash of the profiler) than about the plan's
# estimate: the next plan takes it no further.
MIN_COMPUTE_RATIO, MAX_COMPUTE_RATIO = 0.25, 4.0

WHERE_WORDS = {"GPUs": "on the GPUs", "host": "in RAM", "each GPU": "on each GPU"}
PART_WORDS = {"weights": "weights", "kv_cache": "KV cache", "compute": "compute buffers"}
CAUSES = {
    "weights": "the engine loaded other weights there than planned (another model file, or the layers split "
               "otherwise than the plan's --n-cpu-moe or tensor split)",
    "kv_cache": "the engine sized its KV cache otherwise than planned (another context length or number of "
                "sequences or, for vLLM, less memory left after its profiling run than the plan's activation "
                "estimate)",
    "compute": "compute buffers follow the batch size (-ub) and the context; the plan's headroom on that device "
               "is what absorbs the difference",
}


def compare(memory: Memory | None, report: EngineReport, plan_applies: bool) -> EngineMemory | None:
    """REPORT beside the plan's MEMORY; None when the engine reported nothing. Where the plan does not apply to
    the model that runs (a --gguf of another model, already a warning), the figures are kept but not judged."""
    if memory is None or not report.figures:
        return None
    figures = []
    for r in sorted(report.figures, key=lambda r: (list(WHERE_WORDS).index(r.where), list(PART_WORDS).index(r.part))):
        planned_bytes = planned(memory, r.where, r.part, report.kv_takes_the_room)
        figures.append(MemoryFigure(where=r.where, part=r.part, planned_bytes=planned_bytes, reported_bytes=r.bytes,
                                    off_plan=plan_applies and _beyond_tolerance(planned_bytes, r.bytes)))
    return EngineMemory(source=report.source, figures=figures, max_concurrency=report.max_concurrency,
                        warnings=[_off_plan(f, report.max_concurrency) for f in figures if f.off_plan],
                        compute_ratio=(_compute_ratio(memory, figures, report.kv_takes_the_room) if plan_applies
                                       else None))


def _compute_ratio(memory: Memory, figures: list[MemoryFigure], kv_takes_the_room: bool) -> float | None:
    """The engine's compute buffers over the plan's: as it reported them (llama.cpp), or (vLLM, whose KV cache
    takes the room its budget leaves) the plan's plus the room it did not leave; None where it said neither."""
    compute = [f for f in figures if f.part == "compute" and f.planned_bytes]
    if compute:
        ratio = sum(f.reported_bytes for f in compute) / sum(f.planned_bytes for f in compute)
    else:
        room = [f for f in figures if f.part == "kv_cache" and f.where == "each GPU"]
        planned_compute = planned(memory, "each GPU", "compute")
        if not (kv_takes_the_room and room and planned_compute):
            return None
        ratio = (planned_compute + room[0].planned_bytes - room[0].reported_bytes) / planned_compute
    return round(min(max(ratio, MIN_COMPUTE_RATIO), MAX_COMPUTE_RATIO), 3)


def planned(memory: Memory, where: str, part: str, kv_takes_the_room: bool = False) -> int:
    """The plan's bytes of PART at WHERE: all GPUs together, the host, or the most any one GPU holds."""
    def on(device: DeviceMemory) -> int:
        if part == "kv_cache" and kv_takes_the_room:    # the budget (free less headroom) less all but the KV cache
            return device.available_bytes - device.breakdown.headroom - device.used_bytes + device.breakdown.kv_cache
        return getattr(device.breakdown, part)

    if where == "host":
        return sum(on(d) for d in memory.devices if d.device == "cpu")
    gpus = [on(d) for d in memory.devices if d.device != "cpu"]
    return max(gpus, default=0) if where == "each GPU" else sum(gpus)


def _beyond_tolerance(planned_bytes: int, reported_bytes: int) -> bool:
    difference = abs(reported_bytes - planned_bytes)
    return difference > TOLERANCE_BYTES and difference > TOLERANCE_SHARE * planned_bytes


def _off_plan(figure: MemoryFigure, max_concurrency: float | None) -> str:
    more = "more" if figure.reported_bytes > figure.planned_bytes else "less"
    text = (f"the engine reports {size(figure.reported_bytes)} of {PART_WORDS[figure.part]} "
            f"{WHERE_WORDS[figure.where]}, {more} than the plan's {size(figure.planned_bytes)}: likely "
            f"{CAUSES[figure.part]}")
    if figure.part == "kv_cache" and max_concurrency is not None:
        text += f"; it holds {max_concurrency:.2f} requests of the full context at once"
    return text
