"""This machine's benchmarks, kept for the next plan (planner/calibration.py): one row per machine, engine and model,
the latest measurement, in calibration.json beside the deployment records.

A row names no deployment, path, address or key, so that `gptoss bench --json` rows can be shared as calibration
data as they are.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from gptoss_deploy.backends import get_backend
from gptoss_deploy.planner.calibration import Calibration, machine_fingerprint
from gptoss_deploy.planner.errors import UsageError, validation_problem
from gptoss_deploy.planner.throughput import predict_dense_file, prompt_seconds

if TYPE_CHECKING:
    from gptoss_deploy.planner.documents import Predicted
    from gptoss_deploy.planner.gguf_info import GgufInfo
    from gptoss_deploy.planner.hardware import HardwareReport
    from gptoss_deploy.runtime.records import Deployment, Measurement
    from gptoss_deploy.runtime.state import StateStore

FILE_NAME = "calibration.json"


def measurement_of(record: Deployment) -> Measurement | None:
    """RECORD's benchmark as a row, where it measured (a pass, or a missed gate: not a run that could not measure)
    the model that ran against a prediction for it, on a machine it knows."""
    bench, predicted = record.benchmark, record.prediction()
    if (bench is None or bench.verdict not in ("pass", "fail") or not bench.decode_tokens_per_s
            or record.machine is None or predicted is None or not predicted.decode_tokens_per_s):
        return None
    decode, prefill = model_speeds(predicted)
    model_ttft_ms = None
    if bench.prompt_tokens and prefill and predicted.prefill_half_depth_tokens:
        seconds = prompt_seconds(bench.prompt_tokens, prefill, predicted.prefill_half_depth_tokens) + 1 / decode
        model_ttft_ms = 1000 * seconds
    from gptoss_deploy.runtime.records import Measurement

    return Measurement(machine=record.machine, hardware=record.hardware or "unknown", engine=record.backend,
                       model=record.plan.model if record.plan_applies else record.model,
                       measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       decode_tokens_per_s=bench.decode_tokens_per_s, model_decode_tokens_per_s=round(decode, 1),
                       ttft_ms=bench.ttft_ms or None, prompt_tokens=bench.prompt_tokens,
                       model_ttft_ms=None if model_ttft_ms is None else round(model_ttft_ms, 1),
                       # beside the plan's figures, where they are this model's
                       memory=record.memory.model_dump(mode="json") if record.memory and record.plan_applies else None,
                       compute_ratio=record.memory.compute_ratio if record.memory and record.plan_applies else None)


def model_speeds(predicted: Predicted) -> tuple[float, float | None]:
    """The model's own decode and prefill in PREDICTED, before this machine's calibration scaled them."""
    ratio = predicted.calibration
    decode = predicted.decode_tokens_per_s / (ratio.decode_ratio if ratio else 1.0)
    prefill = predicted.prefill_tokens_per_s
    if prefill and ratio and ratio.prefill_ratio:
        prefill /= ratio.prefill_ratio
    return decode, prefill


def file_yardstick(gguf: GgufInfo, hw: HardwareReport, engine: str, on_gpu: bool,
                   root: Path | None) -> Predicted | None:
    """A --gguf of another model served by ENGINE: its own prediction as a plan's figures, scaled by this machine's
    benchmarks of that file where ROOT (the state dir; None: no calibration) keeps one. None for a mixture of experts (which experts it
    reads is not known here) or a header that does not say its shape."""
    from gptoss_deploy.planner.documents import Predicted

    if gguf.expert_count or not (gguf.block_count and gguf.embedding_length and gguf.parameters):
        return None
    devices = get_backend(engine).computes_on(hw)       # the cores the engine is told to use
    prediction = predict_dense_file(gguf.tensor_bytes, gguf.parameters, gguf.block_count, gguf.embedding_length,
                                    devices, on_gpu)
    if prediction is None:
        return None
    calibration = calibrations_for(root, hw).get((engine, gguf.served_name)) if root else None
    if calibration:
        prediction = calibration.applied(prediction)
    return Predicted.model_validate(prediction.to_json())


def calibrations_for(root: Path, hw: HardwareReport) -> Mapping[tuple[str, str], Calibration]:
    """What the benchmarks kept in ROOT measured on HW's machine, by (engine, model)."""
    measurements = read_measurements(root)
    machine = machine_fingerprint(hw) if measurements else None
    return {(m.engine, m.model): m.calibration() for m in measurements if m.machine == machine}


def read_measurements(root: Path) -> list[Measurement]:
    path = root / FILE_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):     # nothing kept (a state dir that is a file: the store says)
        return []
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read {path} ({err}); delete it (plans forget this machine's benchmarks), or plan "
                         "with --no-calibration") from None
    from pydantic import ValidationError

    from gptoss_deploy.runtime.records import CalibrationFile     # its models cost start-up: built where one is kept

    try:
        return CalibrationFile.model_validate_json(text).measurements
    except ValidationError as err:
        raise UsageError(f"{path} is damaged ({validation_problem(err)}); delete it (plans forget this machine's "
                         "benchmarks), or plan with --no-calibration") from None


def keep(store: StateStore, measurement: Measurement) -> None:
    """MEASUREMENT in place of the row for its machine, engine and model, in STORE's directory; a damaged file is
    set aside (and the user told), never lost. Call under the state lock."""
    from gptoss_deploy.runtime.state import set_aside, write_atomically

    path = store.root / FILE_NAME
    try:
        rows = read_measurements(store.root)
    except UsageError as err:
        aside = set_aside(path)
        store.notify(f"{err.message.split(';')[0]}; kept as {aside}, and a new one started")
        rows = []
    same = (measurement.machine, measurement.engine, measurement.model)
    rows = [m for m in rows if (m.machine, m.engine, m.model) != same]
    document = {"schema_version": 1, "measurements": [m.to_json() for m in [*rows, measurement]]}
    write_atomically(store.root, path, json.dumps(document, indent=2), "the calibration file")
