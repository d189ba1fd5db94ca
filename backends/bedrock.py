"""AWS Bedrock: the API call a plan makes (AWS). Nothing is called while planning."""
from __future__ import annotations

from backends.base import LaunchSettings
from planner.catalog import CloudOffer

DEFAULT_REGION = "us-west-2"   # where gpt-oss launched on Bedrock (AWS)


def build_launch(offer: CloudOffer, settings: LaunchSettings) -> dict:
    return {"api": {
        "service": "bedrock-runtime",
        "region": settings.region or DEFAULT_REGION,
        "model_id": settings.cloud_model_id or offer.model_id,
        "operation": "ConverseStream",
        "additionalModelRequestFields": {"reasoning_effort": settings.reasoning_effort},
    }}
