"""A small Ollama at the wire: the documented HTTP API with NDJSON streams (pull, create, chat), in memory.

Run in-process by the `ollama_server` fixture, or as a stand-in `ollama serve` (binds OLLAMA_HOST).
FAKE_OLLAMA_KNOWN lists the tags the "registry" has (default gpt-oss:20b,gpt-oss:120b).
FAKE_OLLAMA_MAX_CTX: loading a model created with a larger num_ctx fails as Ollama does when memory is short.
"""
from __future__ import annotations

import json
import os
import sys
import time
from http.server import ThreadingHTTPServer

from fake_http import JsonHandler
from fake_reply import reply

TOKEN_INTERVAL_S = 0.002


class FakeOllama(ThreadingHTTPServer):
    def __init__(self, address):
        super().__init__(address, Handler)
        self.models: dict[str, dict] = {}        # name -> the create request (or {} when pulled)
        self.known = os.environ.get("FAKE_OLLAMA_KNOWN", "gpt-oss:20b,gpt-oss:120b").split(",")
        self.chats: list[dict] = []


class Handler(JsonHandler):
    server: FakeOllama

    def _stream(self, lines) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.end_headers()
        for line in lines:
            self.wfile.write(json.dumps(line).encode() + b"\n")
            self.wfile.flush()

    def do_GET(self) -> None:
        if self.path == "/api/version":
            self.send_json(200, {"version": "0.12.0"})
        elif self.path == "/api/tags":
            self.send_json(200, {"models": [{"name": n, "model": n, "size": 1, "digest": "d", "details": {}}
                                        for n in self.server.models]})
        else:
            self.send_json(404, {"error": "not found"})

    def do_DELETE(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        if self.path != "/api/delete" or self.server.models.pop(request.get("model"), None) is None:
            self.send_json(404, {"error": f"model '{request.get('model')}' not found"})
        else:
            self.send_json(200, {})

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        handler = {"/api/pull": self._pull, "/api/create": self._create, "/api/chat": self._chat,
                   "/api/generate": self._load}.get(self.path)
        if handler is None:
            self.send_json(404, {"error": "not found"})
        else:
            handler(request)

    def _pull(self, request: dict) -> None:
        name = request["model"]
        if name not in self.server.known:
            self._stream([{"status": "pulling manifest"}, {"error": "pull model manifest: file does not exist"}])
            return
        total = 13_000_000_000
        self._stream([{"status": "pulling manifest"},
                      *({"status": "pulling e7b2", "digest": "sha256:e7b2", "total": total, "completed": total * i // 3}
                        for i in range(1, 4)),
                      {"status": "verifying sha256 digest"}, {"status": "success"}])
        self.server.models[name] = {}

    def _create(self, request: dict) -> None:
        if request.get("from") not in self.server.models:
            self.send_json(404, {"error": f"model '{request.get('from')}' not found"})
            return
        self.server.models[request["model"]] = request
        self._stream([{"status": "using existing layer sha256:e7b2"}, {"status": "success"}])

    def _load(self, request: dict) -> None:
        """/api/generate without a prompt: load the model (the only use gptoss makes of it)."""
        created = self.server.models.get(request["model"])
        if created is None:
            self.send_json(404, {"error": f"model '{request['model']}' not found"})
        elif created.get("parameters", {}).get("num_ctx", 0) > int(os.environ.get("FAKE_OLLAMA_MAX_CTX", 1 << 30)):
            self.send_json(500, {"error": "model requires more system memory (14.2 GiB) than is available (9.8 GiB)"})
        else:
            self.send_json(200, {"model": request["model"], "created_at": "2026-11-24T00:00:00Z", "response": "",
                                 "done": True, "done_reason": "load"})

    def _chat(self, request: dict) -> None:
        if request["model"] not in self.server.models:
            self.send_json(404, {"error": f"model '{request['model']}' not found"})
            return
        self.server.chats.append(request)
        effort = request.get("think") if isinstance(request.get("think"), str) else None
        self._stream(self._tokens(request["model"], *reply(request.get("options", {}).get("num_predict", 16), effort)))

    def _tokens(self, model: str, chunks: list[tuple[str, str]], cut: bool):
        first = None
        for channel, text in chunks:         # gpt-oss thinks first, on the thinking channel
            first = first or time.monotonic_ns()
            message = {"role": "assistant", "content": text if channel == "answer" else "",
                       "thinking": text if channel == "reasoning" else ""}
            yield {"model": model, "created_at": "2026-11-24T00:00:00Z", "message": message, "done": False}
            time.sleep(TOKEN_INTERVAL_S)
        yield {"model": model, "created_at": "2026-11-24T00:00:00Z", "message": {"role": "assistant", "content": ""},
               "done": True, "done_reason": "length" if cut else "stop", "total_duration": 1, "prompt_eval_count": 20,
               "prompt_eval_duration": 1, "eval_count": len(chunks), "eval_duration": time.monotonic_ns() - first}


def main() -> None:
    if sys.argv[1:] != ["serve"]:
        sys.exit(f"fake ollama: only `ollama serve` is supported, got {sys.argv[1:]}")
    if os.environ.get("FAKE_SERVER_RECORD"):
        with open(os.environ["FAKE_SERVER_RECORD"], "w") as out:
            json.dump({"argv": sys.argv[1:], "env": dict(os.environ)}, out)
    host, _, port = os.environ["OLLAMA_HOST"].rpartition(":")
    FakeOllama((host, int(port))).serve_forever()


if __name__ == "__main__":
    main()
