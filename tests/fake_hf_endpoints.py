"""A local stand-in for the two Hugging Face APIs `up --backend hf-endpoints` calls, at the HTTP boundary: the Hub's
/api/whoami-v2 and the Inference Endpoints API (/v2/provider/{namespace}: the instances, prices and quota it may run;
/v2/endpoint/{namespace}[/{name}]: create, read, delete), with the
JSON shapes huggingface_hub 2.4 reads. The real huggingface_hub client reaches it through a client factory whose
transport sends every request for huggingface.co or api.endpoints.huggingface.cloud here instead.

An endpoint goes pending, initializing, then running (or FAILED_AFTER: failed) over successive reads; running, its
url is SERVE_URL (a fake OpenAI server that checks the token).
"""
from __future__ import annotations

import json
import threading
from http.server import ThreadingHTTPServer

import httpx2

from fake_http import JsonHandler

NAMESPACE = "alice"
HOSTS = {"huggingface.co": "/hub", "api.endpoints.huggingface.cloud": "/ie"}


class FakeHf:
    def __init__(self, token: str, serve_url: str):
        self.token, self.serve_url = token, serve_url
        self.endpoints: dict[str, dict] = {}
        self.created: list[dict] = []               # each create request's body
        self.deleted: list[str] = []
        self.fail = False                           # endpoints go to `failed` instead of `running`
        self.computes = [_compute("nvidia-l4", 1, 0.8), _compute("nvidia-a100", 1, 2.5)]   # what the account may run
        fake = self

        class Handler(JsonHandler):
            def _allowed(self) -> bool:
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    self.send_json(401, {"error": "Invalid credentials in Authorization header"})
                    return False
                return True

            def do_GET(self) -> None:
                if not self._allowed():
                    return
                if self.path == "/hub/api/whoami-v2":
                    self.send_json(200, {"name": NAMESPACE, "type": "user", "auth": {"type": "access_token"}})
                elif self.path == f"/ie/v2/provider/{NAMESPACE}":
                    self.send_json(200, {"vendors": [{"name": "aws", "regions": [
                        {"name": "us-east-1", "computes": fake.computes}]}]})
                elif self.path.startswith(f"/ie/v2/endpoint/{NAMESPACE}/"):
                    name = self.path.rsplit("/", 1)[1]
                    if name not in fake.endpoints:
                        self.send_json(404, {"error": f"endpoint {name} not found"})
                        return
                    fake.advance(name)
                    self.send_json(200, fake.endpoints[name])
                else:
                    self.send_json(404, {"error": "not found"})

            def do_POST(self) -> None:
                if not self._allowed():
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.created.append(body)
                fake.endpoints[body["name"]] = {
                    **body, "type": body.get("type", "authenticated"), "healthRoute": "/health",
                    "status": {"state": "pending", "createdAt": "2026-11-25T10:00:00Z",
                               "updatedAt": "2026-11-25T10:00:00Z"}}
                self.send_json(200, fake.endpoints[body["name"]])

            def do_DELETE(self) -> None:
                if not self._allowed():
                    return
                name = self.path.rsplit("/", 1)[1]
                fake.endpoints.pop(name, None)
                fake.deleted.append(name)
                self.send_json(200, {})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def advance(self, name: str) -> None:
        status = self.endpoints[name]["status"]
        status["state"] = {"pending": "initializing",
                           "initializing": "failed" if self.fail else "running"}.get(status["state"], status["state"])
        if status["state"] == "running":
            status["url"] = self.serve_url

    def client(self) -> httpx2.Client:
        """An httpx2 client for huggingface_hub whose requests to Hugging Face's hosts come here."""
        base = self.base

        class ToFake(httpx2.HTTPTransport):
            def handle_request(self, request: httpx2.Request) -> httpx2.Response:
                prefix = HOSTS.get(request.url.host)
                if prefix is not None:
                    request.url = httpx2.URL(f"{base}{prefix}{request.url.raw_path.decode()}")
                return super().handle_request(request)

        return httpx2.Client(transport=ToFake())

    def close(self) -> None:
        self.server.shutdown()


def _compute(instance_type: str, count: int, price: float, used: int = 0, limit: int = 4) -> dict:
    """One entry of the provider list, as huggingface_hub's InferenceEndpointHardware reads it."""
    return {"id": f"aws-us-east-1-{instance_type}-x{count}", "accelerator": "gpu", "instanceType": instance_type,
            "instanceSize": f"x{count}", "architecture": instance_type, "numAccelerators": count, "numCpus": 8,
            "memoryGb": 32, "gpuMemoryGb": 24, "pricePerHour": price, "status": "available",
            "quota": {"maxAccelerators": limit, "usedAccelerators": used}}
