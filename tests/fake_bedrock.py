"""Bedrock's ConverseStream at the wire: real AWS event-stream frames, so botocore's own parser reads them."""
from __future__ import annotations

import binascii
import json
import re
import struct
import time
from http.server import ThreadingHTTPServer

from fake_http import JsonHandler
from fake_reply import first_answer, reply

TOKEN_INTERVAL_S = 0.002


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return struct.pack(">B", len(raw_name)) + raw_name + struct.pack(">BH", 7, len(raw_value)) + raw_value


def event_frame(event_type: str, payload: dict) -> bytes:
    """One event-stream message: prelude (lengths + CRC), headers, JSON payload, message CRC."""
    headers = (_header(":event-type", event_type) + _header(":content-type", "application/json")
               + _header(":message-type", "event"))
    body = json.dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", binascii.crc32(prelude))
    message = prelude + headers + body
    return message + struct.pack(">I", binascii.crc32(message))


class FakeBedrockRuntime(ThreadingHTTPServer):
    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict] = []
        self.throttle = False
        self.think_s = 0.0        # a pause between the reasoning and the answer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(JsonHandler):
    """Streams as Bedrock does: HTTP/1.1 chunked, one event-stream message per chunk, as each is ready."""

    server: FakeBedrockRuntime
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        if not re.fullmatch(r"/model/[^/]+/converse-stream", self.path):
            self.send_json(404, {"message": "unknown operation"})
            return
        if self.server.throttle:
            self.send_response(429)
            self.send_header("x-amzn-ErrorType", "ThrottlingException")
            self.send_header("Content-Type", "application/json")
            data = json.dumps({"message": "Too many requests, please wait before trying again."}).encode()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.amazon.eventstream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        effort = body.get("additionalModelRequestFields", {}).get("reasoning_effort")
        chunks, cut = reply(body["inferenceConfig"]["maxTokens"], effort)
        self._send(event_frame("messageStart", {"role": "assistant"}))
        for i, (channel, text) in enumerate(chunks):        # gpt-oss reasons first, as reasoningContent
            if i == first_answer(chunks):
                time.sleep(self.server.think_s)
            delta = {"reasoningContent": {"text": text}} if channel == "reasoning" else {"text": text}
            self._send(event_frame("contentBlockDelta", {"contentBlockIndex": int(channel == "answer"),
                                                         "delta": delta}))
            time.sleep(TOKEN_INTERVAL_S)
        n = len(chunks)
        self._send(event_frame("messageStop", {"stopReason": "max_tokens" if cut else "end_turn"}))
        self._send(event_frame("metadata", {"usage": {"inputTokens": 25, "outputTokens": n, "totalTokens": n + 25},
                                            "metrics": {"latencyMs": 100}}))
        self.wfile.write(b"0\r\n\r\n")

    def _send(self, frame: bytes) -> None:
        self.wfile.write(f"{len(frame):x}\r\n".encode() + frame + b"\r\n")
        self.wfile.flush()
