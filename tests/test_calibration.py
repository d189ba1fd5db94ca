"""Plans that learn: a benchmark kept per machine, engine and model scales the next plan's prediction on that
machine, says so, and --no-calibration turns it off. The loop on the real engine is in test_llamacpp_live."""
from __future__ import annotations

import json
import shlex

import pytest
from hypothesis import HealthCheck, given, settings

from gptoss_deploy.planner.calibration import machine_fingerprint
from gptoss_deploy.planner.hardware import load_hardware
from gptoss_deploy.runtime.calibrations import FILE_NAME, keep, measurement_of
from gptoss_deploy.runtime.records import Deployment, Measurement
from gptoss_deploy.runtime.state import StateStore

from helpers import fixture_path
from test_untrusted_input import JSON_VALUES, assert_answered, mutations, noise

DESKTOP = fixture_path("rtx4090-desktop")


def row(hw_path=DESKTOP, **changes) -> Measurement:
    """A benchmark of gpt-oss-20b on llama.cpp that measured 0.8x the model's decode and took twice its TTFT."""
    fields = {"machine": machine_fingerprint(load_hardware(hw_path)), "hardware": "1 x RTX 4090", "engine": "llamacpp",
              "model": "gpt-oss-20b", "measured_at": "2026-12-01T10:00:00+00:00", "decode_tokens_per_s": 160.0,
              "model_decode_tokens_per_s": 200.0, "ttft_ms": 400.0, "model_ttft_ms": 200.0, "prompt_tokens": 64}
    return Measurement(**{**fields, **changes})


@pytest.fixture
def kept(state):
    """Keep MEASUREMENTS in the test's state dir, as a benchmark would."""
    def put(*measurements: Measurement) -> StateStore:
        with state.locked():
            for measurement in measurements:
                keep(state, measurement)
        return state
    return put


def plan_json(run_cli, *flags) -> dict:
    code, out, err = run_cli("plan", "--hardware", DESKTOP, "--model", "20b", "--backend", "llamacpp", "--json", *flags)
    assert code == 0, err
    return json.loads(out)


def test_a_machine_is_known_again_by_what_does_not_change_while_it_runs():
    desktop = load_hardware(DESKTOP)
    busier = desktop.model_copy(update={"memory": desktop.memory.model_copy(update={"available_bytes": 1}),
                                        "gpus": [g.model_copy(update={"memory_free_bytes": 1}) for g in desktop.gpus]})
    assert machine_fingerprint(busier) == machine_fingerprint(desktop)
    other_gpu = desktop.model_copy(update={"gpus": [g.model_copy(update={"name": "NVIDIA GeForce RTX 3090"})
                                                    for g in desktop.gpus]})
    assert machine_fingerprint(other_gpu) != machine_fingerprint(desktop)


def test_the_next_plan_on_the_machine_predicts_what_its_benchmark_measured_and_says_so(run_cli, kept):
    model_alone = plan_json(run_cli)["predicted"]
    kept(row())
    predicted = plan_json(run_cli)
    assert predicted["predicted"]["decode_tokens_per_s"] == pytest.approx(0.8 * model_alone["decode_tokens_per_s"],
                                                                          abs=0.1)
    assert predicted["predicted"]["prefill_tokens_per_s"] == pytest.approx(
        0.5 * model_alone["prefill_tokens_per_s"], abs=0.1)
    assert predicted["predicted"]["calibration"] == {"measured_at": "2026-12-01T10:00:00+00:00", "decode_ratio": 0.8,
                                                     "prefill_ratio": 0.5}
    said = [r for r in predicted["reasons"] if r.startswith("speed: calibrated")]
    assert said == ["speed: calibrated on this machine's benchmark of 2026-12-01: measured 0.80x the model's decode, "
                    "0.50x its prefill (--no-calibration: the model alone)"]
    # the slower prefill reads a full prompt more slowly: the plan's time to first token says so
    assert predicted["predicted"]["full_prompt_ttft_s"] > model_alone["full_prompt_ttft_s"]


def test_the_next_plan_sizes_the_engines_compute_buffers_as_its_benchmark_on_the_machine_reported_them(run_cli, kept):
    def compute(doc: dict) -> int:
        return next(d for d in doc["memory"]["devices"] if d["device"] == "gpu0")["breakdown"]["compute"]
    model_alone = plan_json(run_cli)
    kept(row(compute_ratio=1.5))
    learned = plan_json(run_cli)
    assert compute(learned) == pytest.approx(1.5 * compute(model_alone), rel=1e-6)
    assert learned["predicted"]["calibration"]["compute_ratio"] == 1.5
    assert any("the engine's compute buffers 1.50x the plan's, as the memory sizes them" in r
               for r in learned["reasons"])
    assert plan_json(run_cli, "--no-calibration")["memory"] == model_alone["memory"]


def test_no_calibration_plans_from_the_model_alone_and_the_launch_line_keeps_it(run_cli, kept):
    model_alone = plan_json(run_cli)
    kept(row())
    code, out, err = run_cli("plan", "--hardware", DESKTOP, "--model", "20b", "--backend", "llamacpp", "--yes",
                             "--no-calibration")
    assert code == 0, err
    launch = next(line.strip() for line in out.splitlines() if line.strip().startswith("gptoss-up"))
    assert shlex.split(launch)[-1] == "--no-calibration"
    assert plan_json(run_cli, "--no-calibration")["predicted"] == model_alone["predicted"]


def test_benchmarks_of_other_machines_engines_and_models_change_nothing(run_cli, kept):
    model_alone = plan_json(run_cli)["predicted"]
    kept(row(hw_path=fixture_path("2x-rtx3090")), row(engine="vllm"), row(model="gpt-oss-120b"))
    assert plan_json(run_cli)["predicted"] == model_alone


def test_a_saved_calibrated_plan_is_applied_as_it_was_planned(run_cli, kept, tmp_path):
    kept(row())
    saved = tmp_path / "plan.json"
    saved.write_text(json.dumps(plan_json(run_cli)))
    code, out, err = run_cli("up", "--plan", saved, "--dry-run", "--json")
    assert code == 0, err
    assert json.loads(out)["plan"]["predicted"]["calibration"]["decode_ratio"] == 0.8


def test_a_damaged_calibration_file_is_one_line_with_the_ways_out(run_cli, state):
    state.root.mkdir(parents=True)
    (state.root / FILE_NAME).write_text('{"schema_version": 1, "measurements": [{"machine": "nope"}]}')
    code, _, err = run_cli("plan", "--hardware", DESKTOP, "--json")
    assert code == 2 and str(state.root / FILE_NAME) in err and "--no-calibration" in err and "delete it" in err
    assert plan_json(run_cli, "--no-calibration")["model"] == "gpt-oss-20b"


def test_keeping_a_benchmark_sets_a_damaged_file_aside(state):
    notes = []
    store = StateStore(state.root, notify=notes.append)
    state.root.mkdir(parents=True)
    (state.root / FILE_NAME).write_text("not json")
    with store.locked():
        keep(store, row())
    kept_rows = json.loads((state.root / FILE_NAME).read_text())["measurements"]
    assert [r["model"] for r in kept_rows] == ["gpt-oss-20b"]
    assert [p.read_text() for p in state.root.glob("calibration.damaged-*.json")] == ["not json"]
    assert "kept as" in notes[0]


def test_one_row_per_machine_engine_and_model_the_latest(kept):
    store = kept(row(), row(decode_tokens_per_s=100.0, measured_at="2026-12-02T10:00:00+00:00"), row(engine="vllm"))
    rows = json.loads((store.root / FILE_NAME).read_text())["measurements"]
    assert sorted((r["engine"], r["decode_tokens_per_s"]) for r in rows) == [("llamacpp", 100.0), ("vllm", 160.0)]


RECORD = {"name": "x", "backend": "llamacpp", "model": "gpt-oss-20b", "state": "running", "host": "127.0.0.1",
          "port": 1, "endpoint": {"base_url": "http://127.0.0.1:1/v1"}, "machine": "0123456789abcdef",
          "hardware": "AMD EPYC (2 cores), 24 GiB RAM"}


@pytest.mark.parametrize("verdict, kept_row", [("pass", True), ("fail", True), ("invalid", False),
                                               ("unstable", False)])
def test_only_a_run_that_measured_is_kept(run_cli, verdict, kept_row):
    code, out, _ = run_cli("plan", "--hardware", fixture_path("cpu-only"), "--model", "20b", "--backend", "llamacpp",
                           "--json")
    bench = {"decode_tokens_per_s": 10.0, "server_decode_tokens_per_s": 10.0, "ttft_ms": 900.0,
             "aggregate_tokens_per_s": None, "concurrency": 4, "output_tokens": 64,
             "predicted_decode_tokens_per_s": 12.0, "measured_vs_predicted": 0.8, "roofline_efficiency": None,
             "verdict": verdict, "reasons": [], "samples": [], "prompt_tokens": 70}
    record = Deployment.model_validate({**RECORD, "plan": json.loads(out), "benchmark": bench})
    measurement = measurement_of(record)
    assert (measurement is not None) == kept_row
    if measurement:
        assert measurement.calibration().decode_ratio == pytest.approx(10.0 / record.plan.predicted.decode_tokens_per_s,
                                                                       rel=0.01)
        shared = json.dumps(measurement.to_json())
        assert "127.0.0.1" not in shared and '"x"' not in shared     # no address, no deployment name


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=mutations({"schema_version": 1, "measurements": [row().to_json()]}, values=JSON_VALUES).map(
    lambda d: json.dumps(d).encode()) | noise())
def test_any_calibration_file_plans_or_exits_2(run_cli, tmp_path, monkeypatch, content):
    root = tmp_path / "calibrated-state"
    root.mkdir(exist_ok=True)
    monkeypatch.setenv("GPTOSS_STATE_DIR", str(root))
    (root / FILE_NAME).write_bytes(content)
    assert_answered(*run_cli("plan", "--hardware", DESKTOP, "--json"), allowed=(0, 2))


def test_ratios_of_zero_or_below_are_refused():
    with pytest.raises(ValueError):
        row(decode_tokens_per_s=0.0)
    with pytest.raises(ValueError):
        row(model_ttft_ms=-1.0)
