"""Azure AI Foundry with azure-ai-ml: create the endpoint `up` plans (tagged, rolled back when a step fails), read
its key when needed, and delete it on `down`. Keys stay in Azure: fetched when needed, handed over in memory."""
from __future__ import annotations

import logging
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from gptoss_deploy.backends.azure_settings import WORKSPACE, plan_key
from gptoss_deploy.backends.base import CloudEndpoint, Provisioned
from gptoss_deploy.planner.documents import PlanDocument
from gptoss_deploy.planner.errors import BackendError, UsageError

CREATED_BY = "gptoss-deploy"           # the tag that marks what this tool may delete
ARM_SCOPE = "https://management.azure.com/.default"
CREDENTIAL_TIMEOUT_S = 30.0            # `az login` answers in seconds; a hung probe should not hang `up`
PROVISION_TIMEOUT_S = 1200.0           # GPTOSS_AZURE_TIMEOUT_S
POLL_INTERVAL_S = 10.0                 # GPTOSS_AZURE_POLL_S; Azure's Retry-After wins where it sends one


def _quiet_sdk_logs() -> None:
    """azure-identity logs every credential it tried and azure-ai-ml warns about 'experimental' methods, on
    stderr; our one line says what to do instead."""
    logging.getLogger("azure").setLevel(logging.CRITICAL)


MANAGED_DEPLOYMENT = "gptoss"


def make_credential():
    """DefaultAzureCredential without the managed-identity probe on machines that have none (it stalls)."""
    from azure.identity import DefaultAzureCredential

    has_managed_identity = any(os.environ.get(k) for k in ("IDENTITY_ENDPOINT", "MSI_ENDPOINT"))
    return DefaultAzureCredential(exclude_managed_identity_credential=not has_managed_identity, process_timeout=10)


def make_ml_client(credential, subscription_id: str, resource_group: str, workspace: str):
    from azure.ai.ml import MLClient

    return MLClient(credential, subscription_id, resource_group, workspace)


def _signed_in_client(coordinates: dict, progress):
    """An MLClient whose credential has already produced a token, within CREDENTIAL_TIMEOUT_S."""
    from azure.core.exceptions import ClientAuthenticationError

    progress("signing in to Azure")
    _quiet_sdk_logs()
    credential = make_credential()
    pool = ThreadPoolExecutor(1)
    try:
        pool.submit(credential.get_token, ARM_SCOPE).result(timeout=CREDENTIAL_TIMEOUT_S)
    except FutureTimeout:
        raise BackendError(f"Azure sign-in did not answer within {CREDENTIAL_TIMEOUT_S:.0f} s: run `az login`, "
                           "then run again") from None
    except ClientAuthenticationError:
        raise BackendError("no Azure credentials: run `az login` (or set AZURE_TENANT_ID, AZURE_CLIENT_ID and "
                           "AZURE_CLIENT_SECRET for a service principal)") from None
    finally:
        pool.shutdown(wait=False)
    return make_ml_client(credential, **coordinates)


def workspace_coordinates(api: dict, options) -> dict:
    """Subscription, resource group and workspace: flag > environment > profile (the saved plan)."""
    found, missing = {}, []
    for setting in WORKSPACE:
        key = plan_key(setting)
        found[key] = options.cloud.get(setting.key) or os.environ.get(setting.env) or api.get(key)
        if not found[key]:
            missing.append(f"{setting.flag} (or {setting.env}, or {setting.key} in the profile)")
    if missing:
        raise UsageError(f"Azure needs to know where to deploy: give {'; '.join(missing)}")
    return found


def azure_error(err: Exception, doing: str) -> BackendError:
    """One line for the Azure failures users meet, with what to do."""
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError

    if isinstance(err, ClientAuthenticationError):
        return BackendError(f"Azure rejected the sign-in {doing}: run `az login` and run again")
    if isinstance(err, ResourceNotFoundError):
        return BackendError(f"not found {doing}: {_message(err)}; check the subscription, resource group and "
                            "workspace")
    if isinstance(err, HttpResponseError):
        code, message = _code(err), _message(err)
        if "quota" in f"{code} {message}".lower():
            return BackendError(f"Azure quota exceeded {doing}: {message}; request more quota for gpt-oss in "
                                "this region, or set another `region` in the profile")
        if err.status_code == 429:
            return BackendError(f"Azure kept throttling {doing} after retrying with backoff: wait a minute and "
                                "run again")
        if code in ("AuthorizationFailed", "Forbidden") or err.status_code == 403:
            return BackendError(f"not allowed {doing}: {message}; the signed-in identity needs the AzureML Data "
                                "Scientist (or Contributor) role on the workspace")
        return BackendError(f"Azure {code or err.status_code} {doing}: {message}")
    return BackendError(f"Azure call failed {doing}: {err}")


def _code(err) -> str:
    return getattr(getattr(err, "error", None), "code", None) or ""


def _message(err) -> str:
    error = getattr(err, "error", None)
    return (getattr(error, "message", None) or str(err)).splitlines()[0]


def provision(doc: PlanDocument, options, progress) -> Provisioned:
    """Create the endpoint (serverless, with a marketplace subscription where Azure asks for one; or managed
    online on the planned GPU size), wait until it serves, and return where it is. A failure deletes what this
    run created."""
    api = doc.launch.api
    coordinates = workspace_coordinates(api, options)
    client = _signed_in_client(coordinates, progress)
    name = f"gptoss-{doc.model.removeprefix('gpt-oss-')}-{secrets.token_hex(3)}"
    tags = {"created-by": CREATED_BY, "gptoss-deployment": name}
    kind = "online_endpoint" if api.get("deployment") == "managed" else "serverless_endpoint"
    created: list[tuple[str, str]] = []
    try:
        if kind == "online_endpoint":
            scoring_uri = _create_managed(client, name, api, tags, created, progress).removesuffix("/score")
        else:
            scoring_uri = _create_endpoint(client, name, api["model_id"], tags, created, progress).scoring_uri
        _operations(client, kind).get_keys(name)            # the key works before we call it ready
    except BaseException as err:
        _roll_back(client, created, progress)
        if isinstance(err, BackendError | KeyboardInterrupt):
            raise
        raise azure_error(err, f"creating {kind.replace('_', ' ')} {name}") from None
    return Provisioned("azure", api["region"], CloudEndpoint(
        doc.model, f"{scoring_uri.rstrip('/')}/v1", "OPENAI_API_KEY", api["model_id"], name=name, kind=kind),
        created, coordinates=coordinates)


def _create_managed(client, name: str, api: dict, tags: dict, created: list, progress) -> str:
    """Endpoint, then the deployment on the planned GPU size, then all traffic to it; the scoring URI."""
    from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint

    endpoint = ManagedOnlineEndpoint(name=name, auth_mode="key", tags=tags)
    progress(f"creating online endpoint {name}")
    creating = client.online_endpoints.begin_create_or_update(endpoint)
    created.append(("online_endpoint", name))               # deleting the endpoint deletes its deployments
    _wait(creating, name, progress)
    deployment = ManagedOnlineDeployment(name=MANAGED_DEPLOYMENT, endpoint_name=name, model=api["model_id"],
                                         instance_type=api["instance_type"], instance_count=1, tags=tags)
    progress(f"deploying {api['model_id']} on {api['instance_type']} (the VM starts, then loads the model)")
    _wait(client.online_deployments.begin_create_or_update(deployment), name, progress)
    endpoint.traffic = {MANAGED_DEPLOYMENT: 100}
    return _wait(client.online_endpoints.begin_create_or_update(endpoint), name, progress).scoring_uri


def _create_endpoint(client, name: str, model_id: str, tags: dict, created: list, progress):
    from azure.ai.ml.entities import MarketplaceSubscription, ServerlessEndpoint
    from azure.core.exceptions import HttpResponseError

    endpoint = ServerlessEndpoint(name=name, model_id=model_id, tags=tags)
    progress(f"creating serverless endpoint {name} for {model_id}")
    try:
        poller = client.serverless_endpoints.begin_create_or_update(endpoint, polling_interval=_poll_s())
    except HttpResponseError as err:
        if "marketplace" not in _message(err).lower():
            raise
        progress(f"subscribing to {model_id} in the Azure Marketplace")
        subscription = MarketplaceSubscription(name=name, model_id=model_id)
        subscribing = client.marketplace_subscriptions.begin_create_or_update(subscription, polling_interval=_poll_s())
        created.append(("marketplace_subscription", name))
        _wait(subscribing, name, progress)
        poller = client.serverless_endpoints.begin_create_or_update(endpoint, polling_interval=_poll_s())
    created.append(("serverless_endpoint", name))
    return _wait(poller, name, progress)


def _poll_s() -> float:
    return float(os.environ.get("GPTOSS_AZURE_POLL_S", POLL_INTERVAL_S))


def _wait(poller, name: str, progress):
    """Wait for a provisioning poller, with progress, up to GPTOSS_AZURE_TIMEOUT_S; its result or one error."""
    from azure.core.exceptions import HttpResponseError

    timeout = float(os.environ.get("GPTOSS_AZURE_TIMEOUT_S", PROVISION_TIMEOUT_S))
    give_up = time.monotonic() + timeout
    try:
        while not poller.done():
            if time.monotonic() > give_up:
                raise BackendError(f"{name} was still provisioning after {timeout:.0f} s; it was deleted. Azure "
                                   "may be short of capacity: try again later or in another region")
            progress(f"provisioning {name}: {poller.status()}")
            poller.wait(min(_poll_s(), timeout))     # raises what the polling thread met
        result = poller.result()
    except HttpResponseError as err:
        if "quota" in _message(err).lower():
            raise
        raise BackendError(f"provisioning {name} failed (state {poller.status()}: {_message(err)}); "
                           "it was deleted") from None
    state = getattr(result, "provisioning_state", None) or "Succeeded"
    state = str(getattr(state, "value", state))     # an enum on some entities, a string on others
    if state.lower() != "succeeded":             # some operations report failure in the result, not as an error
        raise BackendError(f"provisioning {name} ended {state}; it was deleted. Its logs in Azure ML studio say why")
    return result


def _roll_back(client, created: list, progress) -> None:
    """Delete what this run created, newest first; a failure here is reported, not hidden."""
    for kind, name in reversed(created):
        progress(f"rolling back: deleting {kind.replace('_', ' ')} {name}")
        try:
            _operations(client, kind).begin_delete(name).result()
        except Exception as err:
            raise BackendError(f"could not delete {kind.replace('_', ' ')} {name} while rolling back ({err}); "
                               "delete it in the Azure portal") from None


def _operations(client, kind: str):
    return {"serverless_endpoint": client.serverless_endpoints, "online_endpoint": client.online_endpoints,
            "marketplace_subscription": client.marketplace_subscriptions}[kind]


def endpoint_key(record) -> str:
    """The endpoint's key, fetched from Azure now (never stored)."""
    client = _signed_in_client(_record_coordinates(record), lambda _: None)
    try:
        return _operations(client, record.endpoint.kind).get_keys(record.endpoint.name).primary_key
    except Exception as err:
        raise azure_error(err, f"reading the key of {record.endpoint.name}") from None


def _record_coordinates(record) -> dict:
    return {plan_key(s): getattr(record, plan_key(s)) for s in WORKSPACE}


def teardown(record, progress) -> None:
    """Delete the resources this tool created for RECORD, after checking each still carries our tag."""
    from azure.core.exceptions import ResourceNotFoundError

    client = _signed_in_client(_record_coordinates(record), progress)
    for kind, name in reversed(record.cloud_resources or []):
        operations = _operations(client, kind)
        try:
            if kind in ("serverless_endpoint", "online_endpoint"):
                tags = operations.get(name).tags or {}
                if tags.get("created-by") != CREATED_BY or tags.get("gptoss-deployment") != name:
                    raise BackendError(f"{kind.replace('_', ' ')} {name} is not tagged as created by "
                                       f"{CREATED_BY}; not deleting it")
            progress(f"deleting {kind.replace('_', ' ')} {name}")
            operations.begin_delete(name).result()
        except ResourceNotFoundError:
            continue                               # already gone
        except BackendError:
            raise
        except Exception as err:
            raise azure_error(err, f"deleting {name}") from None
