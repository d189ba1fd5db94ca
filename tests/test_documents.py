"""The typed documents: every plan the planner writes is exactly what the Plan model describes; plan files and
the state file are read through the models, and a field out of place is named; `gptoss schema` prints them."""
from __future__ import annotations

import json

import pytest

from gptoss_deploy.planner.documents import PlanDocument

from golden import GOLDEN_DIR
from helpers import fixture_path

GOLDEN_PLANS = sorted(GOLDEN_DIR.rglob("*.json"))


def test_every_golden_plan_is_the_plan_model_to_the_byte():
    for path in GOLDEN_PLANS:
        plan = json.loads(path.read_text())["plan"]
        dumped = PlanDocument.model_validate(plan).model_dump(mode="json", exclude_unset=True)
        assert json.dumps(dumped) == json.dumps(plan), path


@pytest.mark.parametrize("change, field", [
    (lambda p: p.update(context_length="lots"), "context_length"),
    (lambda p: p.update(reasoning_effort="extreme"), "reasoning_effort"),
    (lambda p: p["offload"].update(n_cpu_moe=-1), "offload.n_cpu_moe"),
    (lambda p: p["launch"].update(argv="llama-server --host 0.0.0.0"), "launch"),
    (lambda p: p.update(launch_extra=True), "launch_extra"),
])
def test_a_plan_file_with_a_field_out_of_place_exits_2_naming_it(run_cli, tmp_path, change, field):
    _, saved, _ = run_cli("plan", "--hardware", fixture_path("laptop-rtx4060-8gb"), "--json")
    plan = json.loads(saved)
    change(plan)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    code, out, err = run_cli("up", "--plan", path, "--dry-run", "--json")
    assert code == 2 and f"plan file {path}: field {field}" in err and "gptoss schema plan" in err
    assert json.loads(out)["error"]["code"] == "bad_input"


@pytest.mark.parametrize("fixture, change, message", [
    ("laptop-rtx4060-8gb", lambda launch: launch["argv"].extend(["--host", "0.0.0.0"]),
     "the plan's launch.argv gives --host twice"),
    ("laptop-rtx4060-8gb", lambda launch: launch["argv"].extend(["--rpc", "10.0.0.9:50052"]),
     "the plan's launch.argv has a flag gptoss does not plan: '--rpc'"),
    ("laptop-rtx4060-8gb", lambda launch: launch["argv"].__setitem__(0, "/bin/sh"),
     "the plan's launch.argv runs ['/bin/sh'], not llama-server"),
    ("laptop-rtx4060-8gb", lambda launch: launch["env"].update(LD_PRELOAD="/tmp/evil.so"),
     "the plan's launch.env sets LD_PRELOAD='/tmp/evil.so', which gptoss does not plan"),
    ("h100-sxm", lambda launch: launch["env"].update(PYTHONPATH="/tmp/evil"),
     "the plan's launch.env sets PYTHONPATH='/tmp/evil', which gptoss does not plan"),
    ("h100-sxm", lambda launch: launch["argv"].__setitem__(launch["argv"].index("--port") + 1, "70000"),
     "the plan's launch.argv has --port '70000', which is not a valid value"),
])
def test_a_plan_command_is_rebuilt_from_known_flags_never_passed_through(run_cli, tmp_path, fixture, change, message):
    _, saved, _ = run_cli("plan", "--hardware", fixture_path(fixture), "--json")
    plan = json.loads(saved)
    change(plan["launch"])
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    code, _, err = run_cli("up", "--plan", path, "--dry-run")
    assert code == 2 and message in err


def test_a_state_file_record_out_of_shape_is_named_and_the_file_kept_aside(run_cli, state):
    state.root.mkdir(parents=True)
    state.path.write_text(json.dumps({"schema_version": 1, "deployments": {
        "mine": {"name": "mine", "backend": "llamacpp", "state": "running", "port": "eighty"}}}))
    code, _, err = run_cli("status")
    assert code == 0 and "was damaged (deployment mine: field port" in err
    assert "no running deployment of it was found" in err and len(list(state.root.glob("deployments.damaged-*"))) == 1


@pytest.mark.parametrize("document, title", [("plan", "PlanDocument"), ("deployment", "Deployment"),
                                             ("hardware", "HardwareReport")])
def test_schema_prints_the_json_schema_of_each_document(run_cli, document, title):
    code, out, _ = run_cli("schema", document)
    schema = json.loads(out)
    assert code == 0 and schema["title"] == title and "schema_version" in schema["properties"]


def test_schema_of_an_unknown_document_exits_2(run_cli):
    code, _, err = run_cli("schema", "plans")
    assert code == 2 and "no schema named 'plans'; choose one of: plan, deployment, hardware" in err
