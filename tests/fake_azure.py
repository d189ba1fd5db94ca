"""Azure Resource Manager for azure-ai-ml, under azure-core's real requests transport (a requests adapter):
serverless endpoints with long-running provisioning, keys and deletion; and a credential with a fake token."""
from __future__ import annotations

import io
import json
import re
import time

import requests
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.pipeline.transport import RequestsTransport
from requests.adapters import BaseAdapter, HTTPAdapter
from urllib3 import HTTPResponse

WORKSPACE = r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/?]+)"
ENDPOINT = WORKSPACE + r"/serverlessEndpoints/(?P<name>[^/?]+)"
SUBSCRIPTION = WORKSPACE + r"/marketplaceSubscriptions/(?P<name>[^/?]+)"
ONLINE = WORKSPACE + r"/onlineEndpoints/(?P<name>[^/?]+)"
DEPLOYMENT = ONLINE + r"/deployments/(?P<deployment>[^/?]+)"


def _arm_id(url: str) -> str:
    """A resource's id as ARM writes it: the path, without host or query."""
    return "/" + url.split("://", 1)[1].split("/", 1)[1].split("?")[0]


class FakeCredential:
    def get_token(self, *scopes, **kwargs) -> AccessToken:
        return AccessToken("fake-arm-token", int(time.time()) + 3600)

    def get_token_info(self, *scopes, **kwargs) -> AccessTokenInfo:
        return AccessTokenInfo("fake-arm-token", int(time.time()) + 3600)


class FakeArm(BaseAdapter):
    """Answers the ARM calls azure-ai-ml makes for serverless endpoints, from an in-memory resource table."""

    def __init__(self, scoring_uri: str = "https://gptoss.eastus2.models.ai.azure.com"):
        super().__init__()
        self.endpoints: dict[str, dict] = {}
        self.subscriptions: dict[str, dict] = {}
        self.online: dict[str, dict] = {}          # managed online endpoints, with their deployments
        self.calls: list[str] = []
        self.scoring_uri = scoring_uri
        self.polls_until_done = 2          # GETs that still say "Creating"
        self.final_state = "Succeeded"     # or "Failed"
        self.put_error: tuple[int, str, str] | None = None   # (status, code, message) for every endpoint PUT

    def transport(self) -> RequestsTransport:
        session = requests.Session()
        session.mount("https://", self)
        return RequestsTransport(session=session, session_owner=False)

    def send(self, request, **kwargs) -> requests.Response:
        path = "/" + request.url.split("://", 1)[1].split("/", 1)[1].split("?")[0]
        self.calls.append(f"{request.method} {path.rsplit('/', 1)[-1]}")
        status, body = self._route(request.method, path, request)
        content = json.dumps(body).encode() if body is not None else b""
        headers = {"Content-Type": "application/json", "Content-Length": str(len(content))}
        if status == 429:
            headers["Retry-After"] = "0"            # azure-core waits what the service says, then tries again
        raw = HTTPResponse(body=io.BytesIO(content), headers=headers, status=status, preload_content=False)
        return HTTPAdapter().build_response(request, raw)

    def close(self) -> None:
        pass

    def _route(self, method: str, path: str, request):
        if m := re.fullmatch(ONLINE + "/listKeys", path):
            return 200, {"primaryKey": "azure-primary-key-0001", "secondaryKey": "azure-secondary-key-0002"}
        if (m := re.fullmatch(ONLINE + "/deployments", path)) and m["name"] in self.online:
            names = self.online[m["name"]]["deployments"]
            return 200, {"value": [self._deployment_resource(m["name"], n, request) for n in names]}
        if m := re.fullmatch(DEPLOYMENT, path):
            return self._deployment(method, m["name"], m["deployment"], request)
        if m := re.fullmatch(ONLINE, path):
            return self._online(method, m["name"], request)
        if m := re.fullmatch(ENDPOINT + "/listKeys", path):
            return 200, {"primaryKey": "azure-primary-key-0001", "secondaryKey": "azure-secondary-key-0002"}
        if m := re.fullmatch(ENDPOINT, path):
            return self._endpoint(method, m["name"], request)
        if m := re.fullmatch(SUBSCRIPTION, path):
            return self._subscription(method, m["name"], request)
        if re.fullmatch(WORKSPACE, path) and method == "GET":
            return 200, {"id": path, "name": path.rsplit("/", 1)[-1], "location": "eastus2",
                         "type": "Microsoft.MachineLearningServices/workspaces", "properties": {}}
        return 404, {"error": {"code": "NotFound", "message": f"{method} {path}"}}

    def _answered_alike(self, table: dict, method: str, name: str):
        """What both kinds of endpoint answer the same way: a refused PUT, a missing name, a DELETE."""
        if method == "PUT" and self.put_error:
            status, code, message = self.put_error
            return status, {"error": {"code": code, "message": message}}
        if method != "PUT" and name not in table:
            return 404, {"error": {"code": "ResourceNotFound", "message": f"{name} not found"}}
        if method == "DELETE":
            del table[name]
            return 204, None
        return None

    def _endpoint(self, method: str, name: str, request):
        if answer := self._answered_alike(self.endpoints, method, name):
            return answer
        if method == "PUT":
            body = json.loads(request.body)
            self.endpoints[name] = {**body, "name": name, "id": _arm_id(request.url),
                                    "polls": 0, "state": "Creating"}
            return 201, self._resource(name)
        endpoint = self.endpoints[name]
        endpoint["polls"] += 1
        if endpoint["state"] == "Creating" and endpoint["polls"] > self.polls_until_done:
            endpoint["state"] = self.final_state
        return 200, self._resource(name)

    def _online(self, method: str, name: str, request):
        """Managed online endpoints answer in their final state at once (azure-ai-ml polls them slowly)."""
        if answer := self._answered_alike(self.online, method, name):
            return answer
        if method == "PUT":
            body = json.loads(request.body)
            deployments = self.online.get(name, {}).get("deployments", {})
            self.online[name] = {**body, "id": _arm_id(request.url), "deployments": deployments}
            return 201, self._online_resource(name)
        return 200, self._online_resource(name)

    def _online_resource(self, name: str) -> dict:
        e = self.online[name]
        properties = {**e["properties"], "provisioningState": "Succeeded",
                      "scoringUri": f"{self.scoring_uri}/score"}
        return {"id": e["id"], "name": name, "location": "eastus2", "tags": e.get("tags"), "kind": "Managed",
                "identity": {"type": "SystemAssigned"}, "properties": properties}

    def _deployment(self, method: str, endpoint: str, name: str, request):
        if endpoint not in self.online:
            return 404, {"error": {"code": "ResourceNotFound", "message": f"endpoint {endpoint} not found"}}
        deployments = self.online[endpoint]["deployments"]
        if method == "PUT":
            deployments[name] = json.loads(request.body)
        if name not in deployments:
            return 404, {"error": {"code": "ResourceNotFound", "message": f"{name} not found"}}
        return (201 if method == "PUT" else 200), self._deployment_resource(endpoint, name, request)

    def _deployment_resource(self, endpoint: str, name: str, request) -> dict:
        d = self.online[endpoint]["deployments"][name]
        deployment_id = f"{self.online[endpoint]['id']}/deployments/{name}"
        return {
            "id": deployment_id, "name": name, "location": "eastus2", "tags": d.get("tags"),
            "sku": d.get("sku"), "properties": {**d["properties"], "provisioningState": self.final_state,
                                                "scaleSettings": {"scaleType": "Default"}}}

    def _subscription(self, method: str, name: str, request):
        if method == "PUT":
            body = json.loads(request.body)
            self.subscriptions[name] = body
            self.put_error = None                      # subscribed: the endpoint can be created now
            return 201, {"id": _arm_id(request.url), "name": name,
                         "properties": {**body["properties"], "provisioningState": "Succeeded", "status": "Subscribed",
                                        "marketplacePlan": {"publisherId": "openai", "offerId": "gpt-oss",
                                                            "planId": "payg"}}}
        if method == "DELETE" and self.subscriptions.pop(name, None) is not None:
            return 204, None
        return 404, {"error": {"code": "ResourceNotFound", "message": f"{name} not found"}}

    def _resource(self, name: str) -> dict:
        e = self.endpoints[name]
        properties = {**e.get("properties", {}), "provisioningState": e["state"]}
        if e["state"] == "Succeeded":
            properties["inferenceEndpoint"] = {"uri": self.scoring_uri, "headers": {}}
        return {"id": e["id"], "name": name, "location": e.get("location", "eastus2"), "tags": e.get("tags"),
                "sku": e.get("sku"), "properties": properties}
