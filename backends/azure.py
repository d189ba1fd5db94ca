"""Azure AI Foundry: the plan's API call (serverless, or managed compute on a GPU size vLLM's fit picks), and how
to call what `up` created. Creating and deleting it: backends.azure_provision."""
from __future__ import annotations

import os
import shlex
from pathlib import Path

from gptoss_deploy.backends.azure_settings import MODEL_ID, MODES, SETTINGS, WORKSPACE, plan_key
from gptoss_deploy.backends.base import CloudBackend, Provisioned, per_token_quote
from gptoss_deploy.backends.flags import checked_fields, one_of, optional, text_matching, whole_number
from gptoss_deploy.backends.usage import EndpointDescription
from gptoss_deploy.planner.backend import ApiLaunch, CloudQuote
from gptoss_deploy.planner.catalog import MAX_CONTEXT, REASONING_EFFORTS, CloudOffer
from gptoss_deploy.planner.errors import UsageError
from gptoss_deploy.planner.placement import Rejection
from gptoss_deploy.planner.throughput import predict

DEFAULT_REGION = "eastus2"
# The registry asset ids (registry azureml-openai-oss, as Azure's own deployment samples name it) are not in our
# sourced data (AZ), so profiles may override them (azure_model_id); the price is left for the portal to say.
_PRICE_NOTE = "serverless price not in our data: see the Azure AI Foundry model catalog"
# gpt-oss-safeguard: no Azure asset id in our sources, so Azure plans gpt-oss only.
SERVERLESS_OFFERS = {
    name: CloudOffer("azure", f"azureml://registries/azureml-openai-oss/models/{name}", (), None, None, _PRICE_NOTE)
    for name in ("gpt-oss-20b", "gpt-oss-120b")
}
MANAGED_MODEL_IDS = {   # the Hugging Face collection in Azure's catalog (openai-gpt-oss-*), for managed compute
    name: f"azureml://registries/HuggingFace/models/openai-{name}/labels/latest" for name in SERVERLESS_OFFERS}


class Azure(CloudBackend):
    name = "azure"
    title = "Azure AI Foundry"
    sdk_module, extra = "azure.ai.ml", "azure"
    offers = SERVERLESS_OFFERS
    settings = SETTINGS

    credentials = "Azure credentials (az login, or AZURE_CLIENT_ID for a service principal)"

    def credentials_missing(self) -> str | None:
        """What DefaultAzureCredential would find, looked for without calling anything: a service principal or
        managed identity in the environment, or the Azure CLI's sign-in."""
        if os.environ.get("AZURE_CLIENT_ID") or os.environ.get("AZURE_FEDERATED_TOKEN_FILE"):
            return None
        cli_dir = Path(os.environ.get("AZURE_CONFIG_DIR", "~/.azure")).expanduser()
        if (cli_dir / "azureProfile.json").is_file():
            return None
        return "no Azure credentials found: run `az login`, or set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET"

    def quote(self, model, settings) -> CloudQuote | Rejection:
        offer = self.offer_for(model)
        if isinstance(offer, Rejection):
            return offer
        api = {
            "service": "azure-ai-foundry",
            "deployment": "serverless",
            "region": settings.region or DEFAULT_REGION,
            "model_id": settings.cloud.get("azure_model_id") or offer.model_id,
            "reasoning_effort": settings.reasoning_effort,
            **{plan_key(s): settings.cloud.get(s.key) for s in WORKSPACE},
        }
        if settings.cloud.get("azure_mode") == "managed":
            return _managed_quote(model, offer, api, settings)
        return per_token_quote(ApiLaunch(api), offer, api["region"])

    def check_planned(self, plan) -> None:
        from gptoss_deploy.backends.azure_sizes import AZURE_GPU_SIZES

        api = plan.launch.api
        fields = {"service": one_of("azure-ai-foundry"), "deployment": one_of(*MODES),
                  "region": text_matching(r"[a-z0-9]{2,40}"),
                  "model_id": text_matching(MODEL_ID),                    # a profile may name another
                  "reasoning_effort": one_of(*REASONING_EFFORTS),
                  **{plan_key(s): optional(text_matching(s.pattern)) for s in WORKSPACE}}
        if isinstance(api, dict) and api.get("deployment") == "managed":
            fields |= {"instance_type": one_of(*(s.instance_type for s in AZURE_GPU_SIZES)),
                       "instance_count": whole_number(1, 1), "gpus": text_matching(r"[\w .-]{1,80}"),
                       "tensor_parallel_size": whole_number(1, 8), "context_length": whole_number(1, MAX_CONTEXT)}
        checked_fields(api, fields, "launch.api")
        if plan.model not in self.offers:
            raise UsageError(f"the plan's model {plan.model} is not offered on {self.title}")

    def describe_call(self, api: dict) -> str:
        on = f" on {api['instance_type']}" if api.get("instance_type") else ""
        return f"{api['service']} {api['deployment']} {api['model_id']}{on} ({api['region']})"

    def provision(self, *, plan, options, progress) -> Provisioned:
        from gptoss_deploy.backends.azure_provision import provision

        return provision(plan, options, progress)

    def teardown(self, *, record, progress) -> None:
        from gptoss_deploy.backends.azure_provision import teardown

        teardown(record, progress)

    def resources_summary(self, record) -> str:
        items = ", ".join(f"{kind.replace('_', ' ')} {name}" for kind, name in record.cloud_resources or [])
        return f"{items} in workspace {record.workspace} (resource group {record.resource_group})"

    def stream_client(self, *, record, api_key, effort):
        from gptoss_deploy.backends.azure_provision import endpoint_key
        from gptoss_deploy.backends.openai_api import OpenAIStream

        endpoint = record.endpoint   # the key stays in Azure: fetched for this run only
        return OpenAIStream(endpoint.base_url, endpoint.model, endpoint_key(record), {"reasoning_effort": effort})

    def describe(self, *, record, reused) -> EndpointDescription:
        endpoint = record.endpoint
        state = "recorded before" if reused else "ready"
        fetch_key = ["az", "ml", endpoint.kind.replace("_", "-"), "get-credentials", "--name", endpoint.name,
                     "--resource-group", record.resource_group, "--workspace-name", record.workspace,
                     "--query", "primaryKey", "-o", "tsv"]
        lines = [f"  export OPENAI_BASE_URL={endpoint.base_url}",
                 f"  export OPENAI_API_KEY=$({shlex.join(fetch_key)})",
                 f"  the key stays in Azure; delete the endpoint with: gptoss down {record.name}"]
        if endpoint.kind == "online_endpoint":
            lines.append(f"  {record.plan.launch.api['instance_type']} is billed per hour until then")
        return EndpointDescription(f"{state}: {endpoint.kind.replace('_', ' ')} {endpoint.name} "
                                   f"({endpoint.model_id}) in {record.region}, workspace {record.workspace}", lines)


def _managed_quote(model, offer: CloudOffer, api: dict, settings) -> CloudQuote | Rejection:
    """Managed compute: vLLM on the first Azure GPU size that holds the model, planned like a local vLLM."""
    from gptoss_deploy.backends.azure_sizes import choose_size

    chosen = choose_size(model, settings.context)
    if isinstance(chosen, Rejection):
        return chosen
    size, placed = chosen
    api = {**api, "deployment": "managed", "instance_type": size.instance_type, "instance_count": 1,
           "gpus": f"{size.gpus}x {size.gpu_name}", "tensor_parallel_size": placed.tensor_parallel_size,
           "context_length": placed.context_length,
           "model_id": settings.cloud.get("azure_model_id") or MANAGED_MODEL_IDS[model.name]}
    reason = (f"cloud: Azure managed compute, {api['instance_type']} ({api['gpus']}): the first GPU size, fewest "
              f"GPUs first, where vLLM holds {model.name} at {api['context_length']} tokens (tensor parallel "
              f"{api['tensor_parallel_size']}); billed per hour while it exists")
    price = {"usd_per_hour": None, "note": f"{api['instance_type']}: see Azure's VM pricing for {api['region']}; "
                                           "billed per hour while the endpoint exists"}
    return CloudQuote(ApiLaunch(api), offer, (reason,), price, predict(placed, size.hardware()))


AZURE = Azure()
