"""AWS Bedrock: the API call a plan makes (AWS), the preflight before using it, and a ConverseStream client.

Nothing is called while planning. Bedrock serves gpt-oss as it is: nothing is created, so nothing is deleted.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

from gptoss_deploy.backends.base import CloudBackend, CloudEndpoint, Provisioned, per_token_quote
from gptoss_deploy.backends.flags import checked_fields, object_of, one_of, optional, text_matching
from gptoss_deploy.backends.usage import EndpointDescription
from gptoss_deploy.planner.backend import ApiLaunch
from gptoss_deploy.planner.catalog import REASONING_EFFORTS, CloudOffer
from gptoss_deploy.planner.errors import BackendError
from gptoss_deploy.planner.placement import Rejection

DEFAULT_REGION = "us-west-2"   # where gpt-oss launched on Bedrock (AWS)
AWS_REGION = r"[a-z]{2}(-gov)?-[a-z]+-\d"    # us-west-2, eu-central-1, us-gov-west-1
# Where Bedrock serves both gpt-oss models in-region: AWS "Supported foundation models" page, checked 2026-11.
OFFERED_REGIONS = ("us-east-1", "us-east-2", "us-west-2", "ap-northeast-1", "ap-south-1", "ap-southeast-3",
                   "eu-central-1", "eu-north-1", "eu-south-1", "eu-west-1", "eu-west-2", "sa-east-1")
# Bedrock's OpenAI-compatible Chat Completions endpoint, where we have seen it serve gpt-oss (AWS).
OPENAI_COMPATIBLE_REGIONS = ("us-west-2",)
HTTP_TIMEOUT_S = 60
# List prices are secondary sources ("verify") (AWS).
_PRICE_NOTE = "AWS list price from a secondary source: verify it on the AWS pricing page"
BOTO3_SNIPPET = """\
import boto3
client = boto3.client("bedrock-runtime", region_name="{region}")
response = client.converse(
    modelId="{model_id}",
    messages=[{{"role": "user", "content": [{{"text": "Hello!"}}]}}],
    additionalModelRequestFields={{"reasoning_effort": "{effort}"}},
)
print(response["output"]["message"]["content"][-1]["text"])"""


class Bedrock(CloudBackend):
    name = "bedrock"
    title = "AWS Bedrock"
    sdk_module, extra = "boto3", "aws"
    # gpt-oss-safeguard: no Bedrock model id in our sources (AWS's OpenAI models page lists gpt-oss's two)
    offers = {"gpt-oss-20b": CloudOffer("bedrock", "openai.gpt-oss-20b-1:0", OFFERED_REGIONS, 0.07, 0.30, _PRICE_NOTE),
              "gpt-oss-120b": CloudOffer("bedrock", "openai.gpt-oss-120b-1:0", OFFERED_REGIONS, 0.15, 0.60,
                                         _PRICE_NOTE)}

    credentials = "AWS credentials (environment, AWS_PROFILE, or ~/.aws config)"

    def credentials_missing(self) -> str | None:
        """botocore's chain, looked for without calling anything (its instance-metadata step would wait on the
        network): the environment, then the shared files."""
        env = os.environ
        if any(env.get(name) for name in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                                          "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                                          "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")):
            return None
        files = (env.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"), env.get("AWS_CONFIG_FILE", "~/.aws/config"))
        if any(Path(name).expanduser().is_file() for name in files):
            return None
        return "no AWS credentials found: run `aws configure` (or `aws sso login`), or set AWS_PROFILE"

    def check_planned(self, plan) -> None:
        offer = self.offers.get(plan.model)
        checked_fields(plan.launch.api, {
            "service": one_of("bedrock-runtime"), "region": optional(text_matching(AWS_REGION)),
            "model_id": one_of(offer.model_id if offer else None), "operation": one_of("ConverseStream"),
            "additionalModelRequestFields": object_of({"reasoning_effort": one_of(*REASONING_EFFORTS)})}, "launch.api")

    def quote(self, model, settings):
        offer = self.offer_for(model)
        if isinstance(offer, Rejection):
            return offer
        launch = ApiLaunch({
            "service": "bedrock-runtime",
            "region": settings.region,          # None: the AWS config's region at launch, else DEFAULT_REGION
            "model_id": offer.model_id,
            "operation": "ConverseStream",
            "additionalModelRequestFields": {"reasoning_effort": settings.reasoning_effort},
        })
        return per_token_quote(launch, offer, settings.region or f"the AWS config's region (else {DEFAULT_REGION})")

    def describe_call(self, api: dict) -> str:
        region = api["region"] or f"the AWS config's region, else {DEFAULT_REGION}"
        return f"{api['service']} {api['operation']} {api['model_id']} ({region})"

    def provision(self, *, plan, options, progress) -> Provisioned:
        """Nothing to create on Bedrock: check access, and record where and how to call the model."""
        api = plan.launch.api
        region, model_id = launch_region(api), api["model_id"]
        who = preflight(region, model_id, progress)
        base_url = openai_base_url(region)
        return Provisioned("bedrock", region, CloudEndpoint(
            model_id, base_url, "OPENAI_API_KEY (a Bedrock API key)" if base_url else None, model_id, region),
            account=who["account"], identity=who["identity"])

    def teardown(self, *, record, progress) -> None:
        """Nothing was created on Bedrock, so nothing is deleted."""

    def resources_summary(self, record) -> str:
        return "nothing (Bedrock serves gpt-oss without a deployment)"

    def stream_client(self, *, record, api_key, effort):
        return BedrockStream(record.endpoint.region, record.endpoint.model_id, effort)

    def describe(self, *, record, reused) -> EndpointDescription:
        endpoint = record.endpoint
        state = "recorded before" if reused else "ready"
        snippet = BOTO3_SNIPPET.format(region=endpoint.region, model_id=endpoint.model_id,
                                       effort=record.plan.reasoning_effort)
        lines = ["  Call it with boto3:", *("    " + line for line in snippet.splitlines())]
        if endpoint.base_url:
            lines.append(f"  OpenAI-compatible: export OPENAI_BASE_URL={endpoint.base_url} (with a Bedrock API "
                         "key as OPENAI_API_KEY)")
        price = record.plan.price
        if price and price.usd_per_1m_input_tokens is not None:
            lines.append(f"  list price: ${price.usd_per_1m_input_tokens:g} in / "
                         f"${price.usd_per_1m_output_tokens:g} out per 1M tokens ({price.note})")
        return EndpointDescription(f"{state}: {endpoint.model_id} on AWS Bedrock in {endpoint.region} "
                                   f"(account {record.account})", lines)


def make_client(service: str, region: str):
    """A boto3 client on the normal credential chain (env, AWS_PROFILE, SSO, instance role).

    Retries are botocore's adaptive mode (backoff on throttling); AWS_MAX_ATTEMPTS sets how many tries."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "adaptive"}, connect_timeout=10, read_timeout=HTTP_TIMEOUT_S)
    return boto3.Session().client(service, region_name=region, config=config)


def aws_error(err: Exception, doing: str) -> BackendError:
    """One line that says what failed and what to do, for the errors users of boto3 meet."""
    from botocore.exceptions import (ClientError, EndpointConnectionError, NoCredentialsError,
                                     PartialCredentialsError, ProfileNotFound, SSOError, TokenRetrievalError)

    profile = _profile_name()
    login = f"`aws sso login --profile {profile}`" if profile else "`aws sso login --profile NAME`"
    if isinstance(err, (SSOError, TokenRetrievalError)):
        return BackendError(f"the AWS SSO session is missing or expired ({doing}): run {login}")
    if isinstance(err, (NoCredentialsError, PartialCredentialsError)):
        return BackendError("no AWS credentials found: run `aws configure`, set AWS_PROFILE, or log in "
                            f"with {login}")
    if isinstance(err, ProfileNotFound):
        return BackendError(f"{err}: check AWS_PROFILE and ~/.aws/config")
    if isinstance(err, EndpointConnectionError):
        return BackendError(f"cannot reach AWS ({doing}): {err}; check the network and the region")
    if isinstance(err, ClientError):
        code = err.response.get("Error", {}).get("Code", "")
        message = err.response.get("Error", {}).get("Message", "")
        if code in ("ExpiredToken", "ExpiredTokenException", "UnrecognizedClientException",
                    "InvalidClientTokenId"):
            return BackendError(f"AWS rejected the credentials ({code}) {doing}: refresh them ({login} for SSO)")
        if code in ("AccessDeniedException", "AccessDenied"):
            return BackendError(f"access denied {doing}: {message}; the IAM identity needs bedrock:ListFoundationModels, "
                                "bedrock:GetFoundationModelAvailability and bedrock:InvokeModelWithResponseStream")
        if code in ("ThrottlingException", "TooManyRequestsException", "ServiceQuotaExceededException"):
            return BackendError(f"Bedrock kept throttling {doing} ({code}) after retrying with backoff: wait a "
                                "minute and run again, or raise the quota in Service Quotas")
        return BackendError(f"AWS {code or 'error'} {doing}: {message}")
    return BackendError(f"AWS call failed {doing}: {err}")


def _profile_name() -> str | None:
    import os

    return os.environ.get("AWS_PROFILE") or os.environ.get("AWS_DEFAULT_PROFILE")


def preflight(region: str, model_id: str, progress) -> dict:
    """Credentials (sts get-caller-identity), the region's offer, and this account's access to the model."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        progress("checking AWS credentials")
        identity = make_client("sts", region).get_caller_identity()
        bedrock = make_client("bedrock", region)
        progress(f"checking that {region} serves {model_id}")
        offered = [m["modelId"] for m in bedrock.list_foundation_models(byProvider="OpenAI")["modelSummaries"]]
        if model_id not in offered:
            raise BackendError(f"{model_id} is not offered in {region}; Bedrock serves gpt-oss in "
                               f"{', '.join(OFFERED_REGIONS)}: set `region` in your profile")
        availability = bedrock.get_foundation_model_availability(modelId=model_id)
    except (BotoCoreError, ClientError) as err:
        raise aws_error(err, f"checking {model_id} in {region}") from None
    if availability.get("authorizationStatus") != "AUTHORIZED" or \
            availability.get("entitlementAvailability") != "AVAILABLE":
        raise BackendError(f"account {identity['Account']} has no access to {model_id} in {region}: enable it "
                           "under Model access in the Bedrock console, then run again")
    return {"account": identity["Account"], "identity": identity["Arn"]}


def openai_base_url(region: str) -> str | None:
    """Bedrock's OpenAI-compatible Chat Completions endpoint for gpt-oss (AWS), where we know it is offered."""
    return f"https://bedrock-runtime.{region}.amazonaws.com/openai/v1" if region in OPENAI_COMPATIBLE_REGIONS else None


class BedrockStream:
    """ConverseStream with botocore's event-stream parser; token counts from the `metadata` event's usage."""

    def __init__(self, region: str, model_id: str, reasoning_effort: str):
        self.client = make_client("bedrock-runtime", region)
        self.model_id, self.effort = model_id, reasoning_effort

    def stream(self, prompt: str, max_tokens: int, deadline_s: float = math.inf, fixed_length: bool = True):
        # FIXED_LENGTH cannot be asked of Bedrock: the benchmark's verdict says when a request stopped early
        from botocore.exceptions import BotoCoreError, ClientError, EventStreamError

        from gptoss_deploy.backends.streaming import BenchError, StreamClock

        clock, usage = StreamClock(deadline_s=deadline_s), None
        try:
            response = self.client.converse_stream(
                modelId=self.model_id, messages=[{"role": "user", "content": [{"text": prompt}]}],
                inferenceConfig={"maxTokens": max_tokens},
                additionalModelRequestFields={"reasoning_effort": self.effort})
            for event in response["stream"]:
                delta = event.get("contentBlockDelta", {}).get("delta", {})
                answer, reasoning = delta.get("text") or "", delta.get("reasoningContent", {}).get("text") or ""
                if answer or reasoning:
                    clock.token(answer, reasoning)          # reasoning counts: TTFT on any channel
                usage = event.get("metadata", {}).get("usage") or usage
        except (EventStreamError, ClientError, BotoCoreError) as err:
            raise aws_error(err, f"streaming from {self.model_id}") from None
        if not usage:
            raise BenchError("Bedrock sent no usage metadata: token counts unknown")
        return clock.sample(usage["outputTokens"], None, usage.get("inputTokens"))


def launch_region(api: dict) -> str:
    """The plan's region (a profile's `region`), else the AWS config's (AWS_REGION, the profile's region), else
    where gpt-oss launched."""
    import boto3

    return api["region"] or boto3.Session().region_name or DEFAULT_REGION


BEDROCK = Bedrock()
