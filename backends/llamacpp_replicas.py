"""Copies of one llama-server, one per GPU, behind one address: llama.cpp's data parallelism.

Run as `python -P -m gptoss_deploy.backends.llamacpp_replicas --visible-env CUDA_VISIBLE_DEVICES --devices 0,1 --
llama-server ... --host H --port P`: each copy sees only its GPU and listens on a private loopback port; this
process answers at H:P and hands each request to the copy with the fewest requests in flight, streaming the answer
back as it comes. The launcher supervises it like one server: it and its copies share one process group, and if
a copy exits, so does it.

The copies check the API key (--api-key-file): the key a client sends is passed on, never checked here.
"""
from __future__ import annotations

import argparse
import http.client
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from gptoss_deploy.backends.process_groups import on_stop_signals
from gptoss_deploy.planner.vendors import GPU_VENDORS

PASSED_HEADERS = ("Authorization", "Content-Type", "Accept")
COPY_TIMEOUT_S = 600.0                # one request's answer: long generations stream for minutes
# Connections waiting to be accepted: llama-server's own backlog, so a burst of clients (256 at once) waits its turn
# where Python's default of 5 reset a quarter of them (tests/bench_router_burst.py).
LISTEN_BACKLOG = 512


class Copies:
    """The running copies: their ports, and how many requests each has in flight."""

    def __init__(self, ports: list[int]):
        self.ports, self.in_flight, self.lock = ports, [0] * len(ports), threading.Lock()

    def take(self) -> int:
        with self.lock:
            chosen = min(range(len(self.ports)), key=lambda i: self.in_flight[i])
            self.in_flight[chosen] += 1
            return chosen

    def give_back(self, chosen: int) -> None:
        with self.lock:
            self.in_flight[chosen] -= 1


def handler_for(copies: Copies) -> type[BaseHTTPRequestHandler]:
    class Forward(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] in ("/health", "/v1/models", "/models"):
                self._ask_all()            # ready when every copy is: readiness asks here
            else:
                self._forward(b"")

        def do_POST(self) -> None:
            self._forward(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

        def _ask_all(self) -> None:
            answers = [_request(port, "GET", self.path, self.headers, b"") for port in copies.ports]
            try:
                failed = [a for a in answers if a.status != 200]
                self._relay(failed[0] if failed else answers[0])
            finally:
                for answer in answers:
                    answer.close()

        def _forward(self, body: bytes) -> None:
            chosen = copies.take()
            try:
                answer = _request(copies.ports[chosen], self.command, self.path, self.headers, body)
                try:
                    self._relay(answer)
                finally:
                    answer.close()
            except OSError:
                self.send_error(502, "a llama-server copy did not answer")
            finally:
                copies.give_back(chosen)

        def _relay(self, answer) -> None:
            """The copy's status and body, as it comes (server-sent events included); the connection closes after."""
            self.send_response(answer.status)
            for name in ("Content-Type", "Cache-Control"):
                if answer.getheader(name):
                    self.send_header(name, answer.getheader(name))
            self.end_headers()
            while chunk := answer.read1(65536):
                self.wfile.write(chunk)
                self.wfile.flush()

        def log_message(self, format, *args) -> None:      # the copies log each request already
            pass

    return Forward


def _request(port: int, method: str, path: str, headers, body: bytes):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=COPY_TIMEOUT_S)
    passed = {name: headers[name] for name in PASSED_HEADERS if headers.get(name)}
    connection.request(method, path, body=body or None, headers=passed)
    return connection.getresponse()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _with_address(argv: list[str], host: str, port: int) -> list[str]:
    argv = list(argv)
    argv[argv.index("--host") + 1], argv[argv.index("--port") + 1] = host, str(port)
    return argv


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llama-server copies (gptoss)")
    parser.add_argument("--visible-env", required=True,
                        choices=[v.visible_devices for v in GPU_VENDORS.values() if v.visible_devices])
    parser.add_argument("--devices", required=True, help="one device per copy, comma-separated")
    parser.add_argument("server", nargs=argparse.REMAINDER, help="-- then the llama-server command")
    options = parser.parse_args(args)
    server = options.server[1:] if options.server[:1] == ["--"] else options.server
    host, port = server[server.index("--host") + 1], int(server[server.index("--port") + 1])
    ports = [_free_port() for _ in options.devices.split(",")]
    children = [subprocess.Popen(_with_address(server, "127.0.0.1", private),
                                 env={**os.environ, options.visible_env: device})
                for device, private in zip(options.devices.split(","), ports)]
    listener = _Listener if ":" not in host else _IPv6Listener
    proxy = listener((host, port), handler_for(Copies(ports)))
    # shutdown() waits for serve_forever() to return: from the signal handler, which runs in the thread serving,
    # it would wait forever (and `down` would have to kill the router)
    on_stop_signals(lambda *_: threading.Thread(target=proxy.shutdown, daemon=True).start())
    exited: list[subprocess.Popen] = []
    threading.Thread(target=_stop_when_a_copy_exits, args=(children, proxy, exited), daemon=True).start()
    try:
        proxy.serve_forever()
    finally:
        for child in children:
            child.terminate()
    return 1 if exited else 0


def _stop_when_a_copy_exits(children: list[subprocess.Popen], proxy: ThreadingHTTPServer,
                            exited: list[subprocess.Popen]) -> None:
    while not any(child.poll() is not None for child in children):
        threading.Event().wait(0.5)
    exited.append(next(child for child in children if child.poll() is not None))
    # in the words a failed launch is read in: "exited with status -9" is the out-of-memory killer's (fallback.py)
    print(f"a llama-server copy exited with status {exited[0].returncode}: stopping the others", file=sys.stderr,
          flush=True)
    proxy.shutdown()


class _Listener(ThreadingHTTPServer):
    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True


class _IPv6Listener(_Listener):
    address_family = socket.AF_INET6


if __name__ == "__main__":
    sys.exit(main())
