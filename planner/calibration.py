"""Plans that learn from this machine's own benchmarks.

A benchmark that measured a deployment (`gptoss-up`, `gptoss bench NAME`) is kept per machine, engine and model
(runtime/calibrations.py). The next plan for the same machine, engine and model scales the model's prediction by
what that benchmark measured against it: decode (and the aggregate) by the measured decode over the predicted, prefill
by the predicted time to first token over the measured; the engine's compute buffers (where it reported them) as it
measured them, so the memory the plan fits is this machine's too. Pure: the CLI reads the kept rows and hands them in
through Constraints.calibrations.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from gptoss_deploy.planner.units import GIB

if TYPE_CHECKING:
    from gptoss_deploy.planner.catalog import Artifact
    from gptoss_deploy.planner.hardware import HardwareReport
    from gptoss_deploy.planner.throughput import Prediction


@dataclass(frozen=True)
class Calibration:
    """What one benchmark on this machine measured against the model's own prediction (never a calibrated one)."""

    measured_at: str              # when, ISO 8601 UTC
    decode_ratio: float           # measured decode tok/s over the model's
    prefill_ratio: float | None   # the model's time to first token over the measured; None: not measured
    compute_ratio: float | None = None    # the engine's compute buffers over the plan's; None: not reported

    def applied(self, prediction: Prediction) -> Prediction:
        """PREDICTION as this machine measured it: the roofline stays the hardware's ceiling."""
        prefill = self.prefill_ratio or 1.0
        aggregate = prediction.aggregate_tokens_per_s
        return replace(prediction, decode_tokens_per_s=prediction.decode_tokens_per_s * self.decode_ratio,
                       prefill_tokens_per_s=prediction.prefill_tokens_per_s * prefill,
                       aggregate_tokens_per_s=None if aggregate is None else aggregate * self.decode_ratio,
                       calibration=self)

    def sized(self, artifact: Artifact) -> Artifact:
        """ARTIFACT with its engine's buffers as this machine's engine reported them."""
        return replace(artifact, buffer_scale=self.compute_ratio) if self.compute_ratio else artifact

    def reason(self) -> str:
        """The plan's line that says the prediction is this machine's, and how to get the model's alone."""
        prefill = f", {self.prefill_ratio:.2f}x its prefill" if self.prefill_ratio else ""
        buffers = (f"; the engine's compute buffers {self.compute_ratio:.2f}x the plan's, as the memory sizes them"
                   if self.compute_ratio else "")
        return (f"speed: calibrated on this machine's benchmark of {self.measured_at[:10]}: measured "
                f"{self.decode_ratio:.2f}x the model's decode{prefill}{buffers} (--no-calibration: the model alone)")

    def to_json(self) -> dict:
        return {"measured_at": self.measured_at, "decode_ratio": round(self.decode_ratio, 3),
                "prefill_ratio": None if self.prefill_ratio is None else round(self.prefill_ratio, 3),
                **({"compute_ratio": round(self.compute_ratio, 3)} if self.compute_ratio else {})}


def machine_fingerprint(hw: HardwareReport) -> str:
    """Which machine HW is, from what does not change while it runs (free memory does): the same machine probed
    twice, or described by its saved hardware file, has the same fingerprint."""
    parts = [hw.os, hw.arch, hw.cpu.model, hw.cpu.physical_cores, hw.cpu.logical_cores,
             round(hw.memory.total_bytes / GIB), hw.nodes,
             sorted((g.vendor, g.name, round(g.memory_total_bytes / GIB)) for g in hw.gpus)]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def machine_words(hw: HardwareReport) -> str:
    """The machine as a shared calibration row names it: its GPUs, its CPU and RAM (never a host name)."""
    gpus = sorted({g.name for g in hw.gpus})
    cpu = f"{hw.cpu.model} ({hw.cpu.physical_cores} cores), {round(hw.memory.total_bytes / GIB)} GiB RAM"
    return f"{len(hw.gpus)} x {', '.join(gpus)}; {cpu}" if gpus else cpu
