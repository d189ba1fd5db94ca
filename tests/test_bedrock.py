"""AWS Bedrock: real boto3. Control plane (STS, Bedrock) through botocore's Stubber; ConverseStream against a
local endpoint speaking AWS event-stream (tests/fake_bedrock.py), so botocore's real parser runs."""
from __future__ import annotations

import json
import threading

import pytest
from botocore.stub import Stubber

from gptoss_deploy.backends import bedrock
from fake_bedrock import FakeBedrockRuntime
from fake_reply import REASONING_CHUNKS
from helpers import measured

MODEL_ID = "openai.gpt-oss-120b-1:0"
IDENTITY = {"UserId": "AIDA", "Account": "123456789012", "Arn": "arn:aws:iam::123456789012:user/dev"}
OFFERED = {"modelSummaries": [{"modelId": MODEL_ID, "modelArn": f"arn:aws:bedrock:us-west-2::foundation-model/{MODEL_ID}"},
                              {"modelId": "openai.gpt-oss-20b-1:0", "modelArn": "arn:x"}]}
AVAILABLE = {"modelId": MODEL_ID, "agreementAvailability": {"status": "AVAILABLE"},
             "authorizationStatus": "AUTHORIZED", "entitlementAvailability": "AVAILABLE",
             "regionAvailability": "AVAILABLE"}


class Aws:
    """What the stubbed control plane answers, per service: (method, response or error code)."""

    def __init__(self):
        self.answers: dict[str, list[tuple[str, object]]] = {
            "sts": [("get_caller_identity", IDENTITY)],
            "bedrock": [("list_foundation_models", OFFERED), ("get_foundation_model_availability", AVAILABLE)],
        }
        self.stubbers: list[Stubber] = []

    def client(self, real_make_client):
        def make(service: str, region: str):
            client = real_make_client(service, region)
            if service in self.answers:             # the runtime stays real, pointed at the fake endpoint
                stubber = Stubber(client)
                for method, answer in self.answers[service]:
                    if isinstance(answer, str):
                        stubber.add_client_error(method, service_error_code=answer, service_message="denied",
                                                 http_status_code=403)
                    else:
                        stubber.add_response(method, answer)
                stubber.activate()
                self.stubbers.append(stubber)
            return client
        return make


@pytest.fixture
def aws(monkeypatch, tmp_path):
    for name, value in {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret-example",
                        "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
                        "AWS_EC2_METADATA_DISABLED": "true", "AWS_MAX_ATTEMPTS": "2"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    runtime = FakeBedrockRuntime()
    threading.Thread(target=runtime.serve_forever, daemon=True).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", runtime.url)
    fake = Aws()
    fake.runtime = runtime
    monkeypatch.setattr(bedrock, "make_client", fake.client(bedrock.make_client))
    yield fake
    runtime.shutdown()
    runtime.server_close()


def test_up_checks_access_records_the_endpoint_and_benchmarks_converse_stream(run_cli, state, aws):
    aws.runtime.think_s = 0.5
    code, out, err = run_cli("up", "--profile", "aws", "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["endpoint"]["region"] == "us-west-2" and record["endpoint"]["model_id"] == MODEL_ID
    assert record["endpoint"]["base_url"] == "https://bedrock-runtime.us-west-2.amazonaws.com/openai/v1"
    assert record["account"] == "123456789012" and record["pid"] is None
    for stubber in aws.stubbers:
        stubber.assert_no_pending_responses()         # credentials, offer and access were all checked
    bench = record["benchmark"]
    assert measured(bench) and bench["ttft_ms"] < 400   # the answer came 500 ms after the reasoning
    request = aws.runtime.requests[-1]
    assert request["additionalModelRequestFields"] == {"reasoning_effort": "medium"}
    spent = bench["spent"]                            # 120b list price: $0.15 in, $0.60 out per 1M tokens
    assert spent["cost_usd"] == pytest.approx((spent["input_tokens"] * 0.15 + spent["output_tokens"] * 0.60) / 1e6)
    assert spent["input_tokens"] == 25 * 8            # warm-up, 3 single streams, 4 concurrent

    code, out, _ = run_cli("up", "--profile", "aws")
    assert code == 0 and "recorded before" in out and 'modelId="openai.gpt-oss-120b-1:0"' in out
    assert run_cli("down", record["name"])[0] == 0 and state.records() == {}


def test_no_credentials_says_how_to_get_them(run_cli, state, aws, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    aws.answers.pop("sts")                             # the real client: botocore's real credential chain
    code, out, err = run_cli("up", "--profile", "aws")
    assert code == 4 and out == "" and "no AWS credentials found: run `aws configure`" in err
    assert state.records() == {}


def test_expired_sso_session_says_aws_sso_login(run_cli, state, aws, monkeypatch, tmp_path):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    (tmp_path / "aws-config").write_text(
        "[profile dev]\nsso_session = corp\nsso_account_id = 123456789012\nsso_role_name = Dev\n"
        "region = us-west-2\n[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\n"
        "sso_region = us-east-1\n")
    monkeypatch.setenv("AWS_PROFILE", "dev")
    monkeypatch.setenv("HOME", str(tmp_path))          # no cached SSO token
    aws.answers.pop("sts")
    code, _, err = run_cli("up", "--profile", "aws")
    assert code == 4 and "the AWS SSO session is missing or expired" in err
    assert "run `aws sso login --profile dev`" in err


def test_access_denied_to_the_model(run_cli, state, aws):
    aws.answers["bedrock"][1] = ("get_foundation_model_availability", "AccessDeniedException")
    code, _, err = run_cli("up", "--profile", "aws")
    assert code == 4 and "access denied checking openai.gpt-oss-120b-1:0 in us-west-2" in err
    assert "bedrock:InvokeModelWithResponseStream" in err and state.records() == {}


def test_model_access_not_enabled(run_cli, state, aws):
    aws.answers["bedrock"][1] = ("get_foundation_model_availability",
                                 {**AVAILABLE, "authorizationStatus": "NOT_AUTHORIZED"})
    code, _, err = run_cli("up", "--profile", "aws")
    assert code == 4 and "account 123456789012 has no access to openai.gpt-oss-120b-1:0" in err
    assert "Model access in the Bedrock console" in err


def test_region_without_gpt_oss_names_where_it_is(run_cli, state, aws, tmp_path):
    profile = tmp_path / "paris.toml"
    profile.write_text('description = "Bedrock in Paris"\nmodel = "120b"\nbackend = "bedrock"\nregion = "eu-west-3"\n')
    aws.answers["bedrock"] = [("list_foundation_models", {"modelSummaries": []})]
    code, _, err = run_cli("up", "--profile", profile)
    assert code == 4 and "openai.gpt-oss-120b-1:0 is not offered in eu-west-3" in err and "us-west-2" in err


def test_throttling_is_retried_then_reported(run_cli, state, aws):
    aws.runtime.throttle = True
    code, _, err = run_cli("up", "--profile", "aws")
    assert code == 4 and "Bedrock kept throttling" in err and "ThrottlingException" in err
    assert len(aws.runtime.requests) == 2              # AWS_MAX_ATTEMPTS=2: tried again with backoff


def test_region_comes_from_the_aws_config_when_the_profile_has_none(run_cli, state, aws, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    aws.answers["bedrock"] = [("list_foundation_models", {"modelSummaries": []})]
    code, _, err = run_cli("up", "--profile", "aws")
    assert code == 4 and "openai.gpt-oss-120b-1:0 is not offered in eu-central-1" in err


def test_effort_sweep_prices_each_effort_at_the_list_price(run_cli, state, aws, monkeypatch):
    monkeypatch.setenv("FAKE_ANSWER", "The answer is 391.")
    code, out, err = run_cli("up", "--profile", "aws", "--no-bench", "--json")
    assert code == 0, err
    code, out, err = run_cli("bench", "--effort-sweep", "--json")
    assert code == 0, err
    efforts = json.loads(out)["effort_sweep"]["efforts"]
    tasks = len(efforts[0]["tasks"])
    asked = [r["additionalModelRequestFields"]["reasoning_effort"] for r in aws.runtime.requests[-3 * tasks:]]
    assert asked == ["low", "medium", "high"] * tasks          # each task at the three efforts in turn
    for effort in efforts:        # reasoningContent apart from text; 120b list price: $0.15 in, $0.60 out per 1M
        assert effort["reasoning_tokens"] == REASONING_CHUNKS[effort["effort"]] * tasks
        assert effort["answer_tokens"] == 4 * tasks and effort["correct"] == 1
        output = effort["reasoning_tokens"] + effort["answer_tokens"]
        assert effort["cost_usd"] == pytest.approx((25 * tasks * 0.15 + output * 0.60) / 1e6)
    assert efforts[0]["cost_usd"] < efforts[2]["cost_usd"]
