"""Azure's own settings (planner.backend.CloudSetting): the mode and model the plan depends on, and where `up`
creates the endpoint. Read by the adapter (backends.azure) and by what creates it (backends.azure_provision)."""
from __future__ import annotations

from gptoss_deploy.planner.backend import CloudSetting

AZURE_NAME = r"[\w.()-]{1,90}"            # Azure's names for resource groups and workspaces
MODES = ("serverless", "managed")
MODEL_ID = r"azureml://registries/[\w./:-]{1,300}"
# Where `up` creates the endpoint: flag > variable > profile (then in the saved plan), each under the key of its
# field in the plan's API call (azure_subscription_id -> subscription_id).
WORKSPACE = (
    CloudSetting("azure_subscription_id", "Azure subscription id", "--azure-subscription", "AZURE_SUBSCRIPTION_ID",
                 pattern=r"[0-9a-fA-F-]{36}", at_plan=False),
    CloudSetting("azure_resource_group", "Azure resource group", "--azure-resource-group", "AZURE_RESOURCE_GROUP",
                 pattern=AZURE_NAME, at_plan=False),
    CloudSetting("azure_workspace", "Azure ML / AI Foundry workspace or project", "--azure-workspace",
                 "AZURE_ML_WORKSPACE", pattern=AZURE_NAME, at_plan=False),
)
SETTINGS = (
    CloudSetting("azure_mode", "Azure: serverless (pay per token) or managed (a GPU VM size the planner picks)",
                 "--azure-mode", "GPTOSS_AZURE_MODE", choices=MODES),
    # Registry asset ids are not in our sourced data (AZ): a profile may name another
    CloudSetting("azure_model_id", "Azure registry asset id of the model, instead of ours", pattern=MODEL_ID),
    *WORKSPACE,
)


def plan_key(setting: CloudSetting) -> str:
    """The field of the plan's API call a workspace setting is saved in."""
    return setting.key.removeprefix("azure_")
