"""Azure AI Foundry: the serverless deployment a plan asks for (AZ). Nothing is called while planning."""
from __future__ import annotations

from backends.base import LaunchSettings
from planner.catalog import CloudOffer

DEFAULT_REGION = "eastus2"


def build_launch(offer: CloudOffer, settings: LaunchSettings) -> dict:
    return {"api": {
        "service": "azure-ai-foundry",
        "deployment": "serverless",
        "region": settings.region or DEFAULT_REGION,
        # Registry asset ids are not verified (AZ): the profile's azure model id overrides this name.
        "model_id": settings.cloud_model_id or offer.model_id,
        "reasoning_effort": settings.reasoning_effort,
    }}
