"""Azure AI Foundry serverless: the real azure-ai-ml over azure-core's real transport, answered by an in-memory
Resource Manager (tests/fake_azure.py); the endpoint itself is the OpenAI stand-in, checking the key."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from azure.ai.ml import MLClient

from gptoss_deploy.backends import azure_provision
from gptoss_deploy.backends.openai_api import served_models
from gptoss_deploy.runtime.records import Deployment
from helpers import free_port, measured
from fake_azure import FakeArm, FakeCredential
from fake_reply import REASONING_CHUNKS

SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"
WORKSPACE = ["--azure-subscription", SUBSCRIPTION, "--azure-resource-group", "rg-ml", "--azure-workspace", "ws-ml"]
KEY = "azure-primary-key-0001"


@pytest.fixture
def endpoint_server():
    """What the serverless endpoint serves: OpenAI chat completions behind the endpoint key."""
    port = free_port()
    server = subprocess.Popen([sys.executable, str(Path(__file__).parent / "fake_openai_server.py"),
                               "--alias", "gpt-oss-120b", "--port", str(port)],
                              env={**os.environ, "VLLM_API_KEY": KEY}, stdout=subprocess.DEVNULL)
    while served_models(f"http://127.0.0.1:{port}/v1", KEY) is None:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.kill()
    server.wait()


@pytest.fixture
def arm(monkeypatch, endpoint_server):
    fake = FakeArm(scoring_uri=endpoint_server)
    monkeypatch.setenv("GPTOSS_AZURE_POLL_S", "0.01")
    monkeypatch.setattr(azure_provision, "make_credential", FakeCredential)
    monkeypatch.setattr(azure_provision, "make_ml_client", lambda credential, subscription_id, resource_group, workspace:
                        MLClient(credential, subscription_id, resource_group, workspace, transport=fake.transport()))
    return fake


def up(run_cli, *extra):
    return run_cli("up", "--profile", "azure", *WORKSPACE, *extra)


def test_up_creates_a_tagged_endpoint_benchmarks_it_and_down_deletes_it(run_cli, state, arm):
    code, out, err = up(run_cli, "--json")
    assert code == 0, err
    record = json.loads(out)
    [name] = arm.endpoints
    assert record["cloud_resources"] == [["serverless_endpoint", name]] and record["endpoint"]["name"] == name
    assert arm.endpoints[name]["tags"] == {"created-by": "gptoss-deploy", "gptoss-deployment": name}
    assert arm.endpoints[name]["properties"]["modelSettings"]["modelId"] == "azureml://registries/azureml-openai-oss/models/gpt-oss-120b"
    assert f"provisioning {name}: Creating" in err
    assert measured(record["benchmark"])                          # authenticated with the key from listKeys
    assert record["benchmark"]["spent"]["cost_usd"] is None         # no Azure price in our data
    assert KEY not in out and KEY not in state.path.read_text()     # the key stays in Azure

    code, _, err = run_cli("down", record["name"])                  # nobody at the terminal to say yes
    assert code == 2 and "pass --yes" in err and name in arm.endpoints
    assert run_cli("down", record["name"], "--yes")[0] == 0
    assert arm.endpoints == {} and state.records() == {}


def test_missing_workspace_names_every_way_to_give_it(run_cli, state, monkeypatch):
    for env in ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZURE_ML_WORKSPACE"):
        monkeypatch.delenv(env, raising=False)
    code, _, err = run_cli("up", "--profile", "azure", "--azure-subscription", SUBSCRIPTION)
    assert code == 2 and "--azure-resource-group (or AZURE_RESOURCE_GROUP" in err and "--azure-workspace" in err


def test_no_credentials_says_az_login(run_cli, state, monkeypatch):
    for env in [k for k in os.environ if k.startswith(("AZURE_", "IDENTITY_", "MSI_"))]:
        monkeypatch.delenv(env)
    monkeypatch.setenv("PATH", "/nonexistent")                       # no `az`, no `pwsh`: nothing to sign in with
    code, _, err = up(run_cli)
    assert code == 4 and err.strip().splitlines()[-1] == (
        "gptoss: error: no Azure credentials: run `az login` (or set AZURE_TENANT_ID, AZURE_CLIENT_ID and "
        "AZURE_CLIENT_SECRET for a service principal)")


@pytest.mark.parametrize("refusal, said", [
    ((400, "QuotaExceeded", "Insufficient quota for gpt-oss-120b in eastus2"),
     ["Azure quota exceeded", "Insufficient quota"]),
    ((403, "AuthorizationFailed", "The client does not have authorization to perform action"),
     ["not allowed creating serverless endpoint", "AzureML Data Scientist"]),
])
def test_refused_creation_leaves_nothing_and_says_what_to_do(run_cli, state, arm, refusal, said):
    arm.put_error = refusal
    code, _, err = up(run_cli)
    assert code == 4 and all(words in err for words in said)
    assert arm.endpoints == {} and state.records() == {}


def test_failed_provisioning_is_rolled_back(run_cli, state, arm):
    arm.final_state = "Failed"
    code, _, err = up(run_cli)
    assert code == 4 and "failed" in err and "it was deleted" in err
    assert arm.endpoints == {} and "DELETE" in " ".join(arm.calls) and state.records() == {}


def test_provisioning_timeout_is_rolled_back(run_cli, state, arm, monkeypatch):
    arm.polls_until_done = 10**6
    monkeypatch.setenv("GPTOSS_AZURE_TIMEOUT_S", "0.5")
    code, _, err = up(run_cli)
    assert code == 4 and "still provisioning after 0 s; it was deleted" in err
    assert arm.endpoints == {} and state.records() == {}


def test_marketplace_subscription_is_created_where_required_and_deleted_with_the_endpoint(run_cli, state, arm):
    arm.put_error = (400, "UserError", "This model requires a marketplace subscription in the workspace")
    code, out, err = up(run_cli, "--json", "--no-bench")
    assert code == 0, err
    record = json.loads(out)
    [name] = arm.endpoints
    assert record["cloud_resources"] == [["marketplace_subscription", name], ["serverless_endpoint", name]]
    assert list(arm.subscriptions) == [name]
    assert run_cli("down", "--all", "--yes")[0] == 0
    assert arm.endpoints == {} and arm.subscriptions == {}


def test_down_never_deletes_an_endpoint_gptoss_did_not_tag(run_cli, state, arm):
    code, out, _ = up(run_cli, "--json", "--no-bench")
    [name] = arm.endpoints
    ours, arm.endpoints[name]["tags"] = arm.endpoints[name]["tags"], {"owner": "someone else"}
    code, _, err = run_cli("down", "--all", "--yes")
    assert code == 4 and "is not tagged as created by gptoss-deploy; not deleting it" in err
    assert name in arm.endpoints and state.records()           # nothing deleted, the record kept
    arm.endpoints[name]["tags"] = ours                           # (so the teardown can clean up)


def test_managed_mode_deploys_on_the_planned_gpu_size_and_down_deletes_the_endpoint(run_cli, state, arm):
    code, out, err = up(run_cli, "--azure-mode", "managed", "--json")
    assert code == 0, err
    record = json.loads(out)
    [name] = arm.online
    assert record["cloud_resources"] == [["online_endpoint", name]]
    assert arm.online[name]["tags"] == {"created-by": "gptoss-deploy", "gptoss-deployment": name}
    assert arm.online[name]["properties"]["traffic"] == {"gptoss": 100}
    deployment = arm.online[name]["deployments"]["gptoss"]["properties"]
    # the smallest size whose vLLM holds the profile's 128k beside 120b: an A100 80GB leaves 1.5 GiB of KV cache
    # (vllm#27508's figure on an H100), the 94 GB H100 NVL more
    assert deployment["instanceType"] == record["plan"]["launch"]["api"]["instance_type"] == "Standard_NC40ads_H100_v5"
    assert deployment["model"] == "azureml://registries/HuggingFace/models/openai-gpt-oss-120b/labels/latest"
    assert record["plan"]["price"]["usd_per_hour"] is None and "billed per hour" in record["plan"]["price"]["note"]
    assert measured(record["benchmark"])                      # through the endpoint's /v1, with its key
    assert record["benchmark"]["predicted_decode_tokens_per_s"] > 0   # vLLM on the H100, as planned
    assert run_cli("down", record["name"], "--yes")[0] == 0 and arm.online == {}


def test_managed_deployment_failure_deletes_the_endpoint(run_cli, state, arm):
    arm.final_state = "Failed"
    code, _, err = up(run_cli, "--azure-mode", "managed")
    assert code == 4 and "ended Failed; it was deleted" in err and arm.online == {} and state.records() == {}


def test_managed_quota_for_the_gpu_size_is_reported(run_cli, state, arm):
    arm.put_error = (400, "BadArgument", "Not enough quota available for Standard_NC40ads_H100_v5 in eastus2")
    code, _, err = up(run_cli, "--azure-mode", "managed")
    assert code == 4 and "Azure quota exceeded" in err and "Standard_NC40ads_H100_v5" in err
    assert arm.online == {} and state.records() == {}


def test_down_on_a_terminal_asks_before_deleting_and_no_keeps_everything(state):
    import pexpect

    record = {"name": "gpt-oss-120b-azure", "backend": "azure", "model": "gpt-oss-120b", "pid": None,
              "state": "ready", "protocol": "azure", "subscription_id": SUBSCRIPTION, "resource_group": "rg-ml",
              "workspace": "ws-ml", "endpoint": {"name": "gptoss-120b-abc123", "kind": "serverless_endpoint"},
              "cloud_resources": [["serverless_endpoint", "gptoss-120b-abc123"]]}
    with state.locked():
        state.put(Deployment.model_validate(record))
    child = pexpect.spawn(sys.executable, ["-c", "from gptoss_deploy.cli.app import main; main()", "down", record["name"]],
                          env={**os.environ, "TERM": "dumb"}, encoding="utf-8", timeout=90)
    child.expect_exact("delete serverless endpoint gptoss-120b-abc123 in workspace ws-ml (resource group rg-ml)? [y/N]")
    child.sendline("n")
    child.expect_exact(f"kept {record['name']}")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and record["name"] in state.records()      # nothing was called, nothing deleted
    with state.locked():
        state.forget(record["name"])


def test_prices_from_the_profile_cost_the_benchmark_and_the_managed_hour(run_cli, state, arm, tmp_path):
    profile = tmp_path / "negotiated.toml"
    profile.write_text('description = "our Azure prices"\nmodel = "120b"\nbackend = "azure"\n'
                       "usd_per_1m_input_tokens = 0.15\nusd_per_1m_output_tokens = 0.6\nusd_per_hour = 3.4\n")
    code, out, err = run_cli("up", "--profile", profile, *WORKSPACE, "--json")
    assert code == 0, err
    spent = json.loads(out)["benchmark"]["spent"]
    assert spent["cost_usd"] == pytest.approx((spent["input_tokens"] * 0.15 + spent["output_tokens"] * 0.6) / 1e6)
    code, out, _ = run_cli("plan", "--profile", profile, "--azure-mode", "managed")
    assert code == 0 and "Price: $3.40 per hour while it runs; from profile negotiated" in out


def test_throttling_is_retried_then_reported(run_cli, state, arm):
    arm.put_error = (429, "TooManyRequests", "Rate limit exceeded")
    code, _, err = up(run_cli)
    assert code == 4 and "Azure kept throttling creating serverless endpoint" in err
    assert len([call for call in arm.calls if call.startswith("PUT")]) > 1     # azure-core tried again
    assert arm.endpoints == {} and state.records() == {}


@pytest.fixture
def answering(monkeypatch):
    """The endpoint answers as gpt-oss does at the effort asked (set before `arm` starts it)."""
    monkeypatch.setenv("FAKE_ANSWER", "97")


def test_effort_sweep_on_a_managed_endpoint_costs_its_hours(answering, run_cli, state, arm, tmp_path):
    profile = tmp_path / "hourly.toml"
    profile.write_text('description = "our price"\nmodel = "120b"\nbackend = "azure"\nusd_per_hour = 3.6\n')
    code, _, err = run_cli("up", "--profile", profile, *WORKSPACE, "--azure-mode", "managed", "--no-bench")
    assert code == 0, err
    code, out, err = run_cli("bench", "--effort-sweep", "--json")
    assert code == 0, err
    for effort in json.loads(out)["effort_sweep"]["efforts"]:     # reasoning_effort, asked through the endpoint
        tasks = effort["tasks"]
        assert effort["reasoning_tokens"] == REASONING_CHUNKS[effort["effort"]] * len(tasks)
        assert effort["correct"] == 1                              # the prime after 90
        # $3.60 an hour, for the time the requests took: a microdollar per millisecond, each row's time
        # rounded to a tenth of one
        assert effort["cost_usd"] == pytest.approx(sum(t["e2e_ms"] for t in tasks) * 1e-6, abs=len(tasks) * 0.05e-6)
    assert run_cli("down", "--all", "--yes")[0] == 0
