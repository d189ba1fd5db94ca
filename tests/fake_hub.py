"""A Hugging Face hub at the wire, for one file: HEAD for its metadata, GET (with Range) for its bytes."""
from __future__ import annotations

import hashlib
import re
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

from fake_http import JsonHandler

COMMIT = "0123456789abcdef0123456789abcdef01234567"
CHUNK = 256 * 1024


class FakeHub(ThreadingHTTPServer):
    def __init__(self, repo: str, filename: str, content: Path):
        super().__init__(("127.0.0.1", 0), Handler)
        self.route = f"/{repo}/resolve/main/{filename}"
        self.data = content.read_bytes()
        self.etag = hashlib.sha256(self.data).hexdigest()
        self.bytes_sent = 0
        # A download held after this many bytes until `released` is set: a test interrupts it mid-way whatever the
        # machine's speed.
        self.hold_after_bytes: int | None = None
        self.released = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(JsonHandler):
    server: FakeHub

    def _headers(self, status: int, length: int) -> None:
        self.send_response(status)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{self.server.etag}"')
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")

    def do_HEAD(self) -> None:
        if self.path != self.server.route:
            self.send_json(404, {"error": "Entry not found"})
            return
        self._headers(200, len(self.server.data))
        self.end_headers()

    def do_GET(self) -> None:
        if self.path != self.server.route:
            self.send_json(404, {"error": "Entry not found"})
            return
        wanted = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        start = int(wanted.group(1)) if wanted else 0
        self._headers(206 if start else 200, len(self.server.data) - start)
        self.end_headers()
        for offset in range(start, len(self.server.data), CHUNK):
            try:
                self.wfile.write(self.server.data[offset:offset + CHUNK])
            except (BrokenPipeError, ConnectionResetError):
                return
            self.server.bytes_sent += CHUNK
            if self.server.hold_after_bytes is not None and self.server.bytes_sent >= self.server.hold_after_bytes:
                self.server.released.wait(timeout=600)
