"""Hugging Face Inference Endpoints: gpt-oss on a dedicated GPU instance running vLLM with the planned flags, created
with huggingface_hub's create_inference_endpoint, tagged as ours, waited on with progress and deleted by `down`.

The instance is the first (fewest GPUs, then the older generation) where vLLM holds the model at the planned
context, by the same fitting as Azure's managed compute. The image's settings follow huggingface_hub 2.4's
documentation: `custom_image={"vLLM": {"url", "port", "tensorParallelSize"}}`, `container_args` appended to the
image's vLLM command. Hourly prices are not in our sourced data, so the plan names the instance only; `up` reads the
price, availability and quota of that instance from Hugging Face when it creates the endpoint, and says the price.
"""
from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gptoss_deploy.backends.base import CONTAINER_PORT, CloudBackend, CloudEndpoint, Provisioned
from gptoss_deploy.backends.flags import checked_env, checked_fields, one_of, parse_flags, text_matching, whole_number
from gptoss_deploy.backends.usage import EndpointDescription
from gptoss_deploy.backends.vllm import FLAGS, PLANNED_ENV, TUNING_FLAGS, VLLM
from gptoss_deploy.planner.backend import ApiLaunch, CloudQuote
from gptoss_deploy.planner.catalog import MAX_CONTEXT, REASONING_EFFORTS, VARIANT_MODELS, CloudOffer
from gptoss_deploy.planner.errors import BackendError, UsageError
from gptoss_deploy.planner.gpus import CLOUD_GPUS, gpu_node
from gptoss_deploy.planner.hardware import HardwareReport
from gptoss_deploy.planner.placement import Rejection
from gptoss_deploy.planner.throughput import predict
from gptoss_deploy.planner.units import seconds_setting

TAG = "gptoss-deploy"                     # `down` deletes only endpoints that carry it
DEFAULT_VENDOR, DEFAULT_REGION = "aws", "us-east-1"
READY_TIMEOUT_S = 3600.0
POLL_S = 10.0
_PRICE_NOTE = "billed per hour while the endpoint exists: see huggingface.co/pricing#endpoints for the instance"
# OpenAI's repositories, gpt-oss-safeguard's included (SGG); the endpoint runs vLLM's image on them
OFFERS = {name: CloudOffer("hf-endpoints", f"openai/{name}", (), None, None, _PRICE_NOTE) for name in VARIANT_MODELS}
# The plan's vLLM flags go to the image as arguments, but for these: the image sets host and port, and takes the
# parallel sizes in its own config (tensorParallelSize, dataParallelSize).
_IMAGE_OWNS = {"--host", "--port", "--tensor-parallel-size", "--data-parallel-size"}


@dataclass(frozen=True)
class HfInstance:
    """An Inference Endpoints GPU instance (vendor aws): its type and size as the API names them."""

    instance_type: str
    instance_size: str
    gpu: str                    # planner.gpus.CLOUD_GPUS key
    count: int

    def hardware(self) -> HardwareReport:
        return gpu_node(CLOUD_GPUS[self.gpu], self.count, f"{self.instance_type} {self.instance_size}")


# Fewest GPUs first (cost grows with them), within a count the older generation first (Hugging Face's AWS list).
INSTANCES = tuple(HfInstance(f"nvidia-{kind}", f"x{count}", gpu, count) for count in (1, 2, 4, 8)
                  for kind, gpu, counts in (("l4", "L4", (1, 4)), ("a10g", "A10G", (1, 4)), ("l40s", "L40S", (1, 4, 8)),
                                            ("a100", "A100-80GB", (1, 2, 4, 8)), ("h100", "H100", (1, 2, 4, 8)))
                  if count in counts)


def _require_planned(api: dict) -> None:
    """A saved plan's endpoint image, flags and variables as gptoss plans them: the endpoint would run whatever
    image and arguments the file names."""
    image = api.get("image")
    vllm = image.get("vLLM") if isinstance(image, dict) and list(image) == ["vLLM"] else None
    if not (isinstance(vllm, dict) and vllm.get("url") == VLLM.container_images["nvidia"].ref
            and vllm.get("port") == CONTAINER_PORT
            and set(vllm) <= {"url", "port", "tensorParallelSize", "dataParallelSize"}):
        raise UsageError(f"the plan's launch.api.image is {image!r}, not the vLLM image gptoss plans")
    args, env = api.get("args"), api.get("env")
    if not (isinstance(args, list) and all(isinstance(a, str) for a in args) and isinstance(env, dict)):
        raise UsageError("the plan's launch.api needs args (a list of vLLM's flags) and env (an object)")
    parse_flags(args, {f: c for f, c in {**FLAGS, **TUNING_FLAGS}.items() if f not in _IMAGE_OWNS},
                where="launch.api.args")
    checked_env(env, PLANNED_ENV, where="launch.api.env")


class HfEndpoints(CloudBackend):
    name = "hf-endpoints"
    title = "Hugging Face Inference Endpoints"
    offers = OFFERS
    credentials = "a Hugging Face token (HF_TOKEN, or `hf auth login`)"

    def check_planned(self, plan) -> None:
        offer = self.offers.get(plan.model)
        repository = one_of(offer.model_id if offer else None)
        name = text_matching(r"[a-z0-9][a-z0-9-]{0,62}")
        checked_fields(plan.launch.api, {
            "service": one_of("hf-inference-endpoints"), "repository": repository, "model_id": repository,
            "vendor": name, "region": name, "accelerator": one_of("gpu"),
            "instance_type": one_of(*{i.instance_type for i in INSTANCES}),
            "instance_size": one_of(*{i.instance_size for i in INSTANCES}), "gpus": text_matching(r"[\w .-]{1,80}"),
            "image": lambda _: True, "args": lambda _: True, "env": lambda _: True,      # below, field by field
            "served_model": one_of(plan.model), "context_length": whole_number(1, MAX_CONTEXT),
            "reasoning_effort": one_of(*REASONING_EFFORTS)}, "launch.api")
        _require_planned(plan.launch.api)

    def credentials_missing(self) -> str | None:
        """HF_TOKEN, or the token file `hf auth login` writes, looked for without calling anything."""
        home = Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser()
        if os.environ.get("HF_TOKEN") or Path(os.environ.get("HF_TOKEN_PATH", home / "token")).expanduser().is_file():
            return None
        return "no Hugging Face token found: run `hf auth login`, or set HF_TOKEN"

    def quote(self, model, settings) -> CloudQuote | Rejection:
        from gptoss_deploy.backends.azure_sizes import choose_size

        chosen = choose_size(model, settings.context, INSTANCES, self.name)
        if isinstance(chosen, Rejection):
            return chosen
        instance, placed = chosen
        launch = VLLM.build_launch(placed, settings)
        argv = launch.argv[3:]                          # after `vllm serve MODEL`
        args = [a for i, a in enumerate(argv) if a not in _IMAGE_OWNS and argv[i - 1] not in _IMAGE_OWNS]
        image = {"url": VLLM.container_images["nvidia"].ref, "port": CONTAINER_PORT,
                 "tensorParallelSize": placed.tensor_parallel_size}
        if placed.data_parallel_size > 1:
            image["dataParallelSize"] = placed.data_parallel_size
        api = {"service": "hf-inference-endpoints", "repository": OFFERS[model.name].model_id,
               "vendor": DEFAULT_VENDOR, "region": settings.region or DEFAULT_REGION, "accelerator": "gpu",
               "instance_type": instance.instance_type, "instance_size": instance.instance_size,
               "gpus": f"{instance.count}x {CLOUD_GPUS[instance.gpu].name}", "image": {"vLLM": image},
               "args": args, "env": launch.env, "served_model": placed.model.name,
               "context_length": placed.context_length, "reasoning_effort": settings.reasoning_effort,
               "model_id": OFFERS[model.name].model_id}
        reason = (f"cloud: Hugging Face Inference Endpoints, {instance.instance_type} {instance.instance_size} "
                  f"({api['gpus']}): the first instance, fewest GPUs first, where vLLM holds {model.name} at "
                  f"{placed.context_length} tokens; billed per hour while it exists")
        return CloudQuote(ApiLaunch(api), OFFERS[model.name], (reason,),
                          {"usd_per_hour": None, "note": _PRICE_NOTE}, predict(placed, instance.hardware()))

    def describe_call(self, api: dict) -> str:
        return (f"{api['service']} {api['repository']} on {api['instance_type']} {api['instance_size']} "
                f"({api['vendor']} {api['region']})")

    def provision(self, *, plan, options, progress) -> Provisioned:
        """Create the endpoint (vLLM with the planned flags, tagged as ours), wait until it runs; on any failure,
        delete it again."""
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError

        self.check_planned(plan)
        _poll_s()                                     # a bad setting fails before anything is created
        missing = self.credentials_missing()
        if missing:
            raise BackendError(missing)
        api, hub = plan.launch.api, HfApi()
        try:
            with reaching_the_hub():
                namespace = hub.whoami()["name"]
        except HfHubHTTPError as err:
            raise BackendError(f"Hugging Face refused the token ({_status(err)}): run `hf auth login`, or set "
                               "HF_TOKEN to a token with Inference Endpoints access") from None
        with reaching_the_hub():
            price = _check_instance(hub, namespace, api)
        name = options.name or f"{plan.model}-{secrets.token_hex(3)}"
        progress(f"creating Inference Endpoint {namespace}/{name} on {api['instance_type']} {api['instance_size']}")
        try:
            with reaching_the_hub():
                endpoint = hub.create_inference_endpoint(
                    name, repository=api["repository"], framework="pytorch", task="text-generation",
                    accelerator=api["accelerator"], vendor=api["vendor"], region=api["region"],
                    instance_type=api["instance_type"], instance_size=api["instance_size"], min_replica=1,
                    max_replica=1, custom_image=api["image"], container_args=api["args"], env=api["env"],
                    type="authenticated", tags=[TAG], namespace=namespace)
        except HfHubHTTPError as err:
            raise BackendError(f"Hugging Face would not create the endpoint ({_status(err)}): check the "
                               "account's billing and quota for this instance") from None
        try:
            with reaching_the_hub():
                _wait_running(endpoint, progress)
        except BaseException:
            endpoint.delete()
            raise
        return Provisioned("openai", f"{api['vendor']} {api['region']}", CloudEndpoint(
            api["served_model"], f"{endpoint.url.rstrip('/')}/v1", "HF_TOKEN", api["repository"], name=name),
            [("inference_endpoint", f"{namespace}/{name}")], account=namespace,
            warnings=[f"{api['instance_type']} {api['instance_size']} is billed ${price:g} per hour (Hugging "
                      "Face's price at creation) while the endpoint exists"])

    def teardown(self, *, record, progress) -> None:
        from huggingface_hub import HfApi

        hub = HfApi()
        for _, full_name in record.cloud_resources or []:
            namespace, name = full_name.split("/", 1)
            with reaching_the_hub():
                endpoint = hub.get_inference_endpoint(name, namespace=namespace)
                if TAG not in (endpoint.raw.get("tags") or []):
                    raise BackendError(f"{full_name} does not carry the tag {TAG}: gptoss deletes only what it "
                                       "created")
                progress(f"deleting Inference Endpoint {full_name}")
                endpoint.delete()

    def resources_summary(self, record) -> str:
        return ", ".join(f"Inference Endpoint {name}" for _, name in record.cloud_resources or [])

    def stream_client(self, *, record, api_key, effort):
        from huggingface_hub import get_token

        from gptoss_deploy.backends.openai_api import OpenAIStream

        endpoint = record.endpoint
        return OpenAIStream(endpoint.base_url, endpoint.model, get_token(), {"reasoning_effort": effort})

    def describe(self, *, record, reused) -> EndpointDescription:
        endpoint = record.endpoint
        api = record.plan.launch.api
        state = "recorded before" if reused else "ready"
        return EndpointDescription(
            f"{state}: Inference Endpoint {endpoint.name} ({endpoint.model_id}) in {record.region}",
            [f"  export OPENAI_BASE_URL={endpoint.base_url}", "  export OPENAI_API_KEY=$HF_TOKEN   (your token)",
             f"  {api['instance_type']} {api['instance_size']} is billed per hour until: gptoss down {record.name}"])


def _check_instance(hub, namespace: str, api: dict) -> float:
    """The planned instance as Hugging Face offers it to NAMESPACE now: available, within quota; its hourly price."""
    wanted = (api["vendor"], api["region"], api["instance_type"], api["instance_size"])
    offered = {(h.vendor, h.region, h.instance_type, h.instance_size): h
               for h in hub.list_inference_endpoints_hardware(namespace=namespace)}
    instance = offered.get(wanted)
    what = f"{api['instance_type']} {api['instance_size']} in {api['vendor']} {api['region']}"
    if instance is None or instance.status in ("not_available", "deprecated"):
        raise BackendError(f"Hugging Face does not offer {what} now: plan for another region (a profile's region)")
    if instance.used_accelerators + instance.num_accelerators > instance.max_accelerators:
        raise BackendError(f"{what} needs {instance.num_accelerators} GPU(s) and {namespace} may run "
                           f"{instance.max_accelerators}, {instance.used_accelerators} in use: delete an endpoint, "
                           "or ask Hugging Face for more quota")
    return instance.price_per_hour


def _wait_running(endpoint, progress) -> None:
    """Poll until the endpoint runs (progress at each state), or fail on its failure or the deadline."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        endpoint.fetch()
        if endpoint.status == "running" and endpoint.url:
            return
        if endpoint.status in ("failed", "updateFailed"):
            raise BackendError(f"Inference Endpoint {endpoint.name} failed to start: see its logs on "
                               "endpoints.huggingface.co")
        if time.monotonic() > deadline:
            raise BackendError(f"Inference Endpoint {endpoint.name} was not running after {READY_TIMEOUT_S:.0f} s")
        progress(f"Inference Endpoint {endpoint.name}: {endpoint.status}")
        time.sleep(_poll_s())


@contextmanager
def reaching_the_hub() -> Iterator[None]:
    """A call to Hugging Face that cannot reach it (no network, a wrong HF_ENDPOINT) is one line and exit 4."""
    import httpx

    try:
        yield
    except httpx.TransportError as err:
        raise BackendError(f"cannot reach Hugging Face ({type(err).__name__}): check the network, or HF_ENDPOINT "
                           "if it is set") from None


def _poll_s() -> float:
    return seconds_setting("GPTOSS_HF_POLL_S", POLL_S, zero_allowed=True)


def _status(err) -> str:
    response = getattr(err, "response", None)
    return f"HTTP {response.status_code}" if response is not None else type(err).__name__


HF_ENDPOINTS = HfEndpoints()
