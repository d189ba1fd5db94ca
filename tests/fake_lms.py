"""A stand-in for LM Studio's `lms` CLI: the subcommands gptoss runs, with LM Studio's server as the fake OpenAI
server (started in the background, as LM Studio's own runs apart from the shell that asked for it).

State in FAKE_LMS_HOME: calls.jsonl (each argv), server.pid, models (what is loaded: the server lists it).
FAKE_LMS_FAIL="load:<message>" (or get:, unload:) makes that subcommand fail the way lms does: the message on
stderr, exit 1.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HOME = Path(os.environ["FAKE_LMS_HOME"])


def flag(argv: list[str], *names: str) -> str | None:
    return next((argv[argv.index(n) + 1] for n in names if n in argv), None)


def fail_if_asked(command: str) -> None:
    asked, _, message = os.environ.get("FAKE_LMS_FAIL", "").partition(":")
    if asked == command:
        print(f"Error: {message}", file=sys.stderr)
        sys.exit(1)


def server_start(argv: list[str]) -> None:
    port, host = int(flag(argv, "--port", "-p") or 1234), flag(argv, "--bind") or "127.0.0.1"
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "fake_openai_server.py"), "--host", host, "--port", str(port)],
        env={**os.environ, "FAKE_SERVER_MODELS_FILE": str(HOME / "models"), "FAKE_SERVER_NO_HEALTH": "1"},
        start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (HOME / "server.pid").write_text(str(server.pid))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            print(f"Success! Server is now running on port {port}")
            return
        except OSError:
            time.sleep(0.1)
    sys.exit("Error: the server did not start")


def server_stop() -> None:
    pid_file = HOME / "server.pid"
    if pid_file.exists():
        os.kill(int(pid_file.read_text()), signal.SIGTERM)
        pid_file.unlink()
    print("Stopped the server")


def main(argv: list[str]) -> None:
    HOME.mkdir(parents=True, exist_ok=True)
    with open(HOME / "calls.jsonl", "a") as calls:
        calls.write(json.dumps(argv) + "\n")
    models = HOME / "models"
    loaded = models.read_text().split() if models.exists() else []
    if argv[:2] == ["server", "start"]:
        server_start(argv)
    elif argv[:2] == ["server", "stop"]:
        server_stop()
    elif argv[:1] == ["get"]:
        fail_if_asked("get")
        print(f"Downloaded {argv[1]}")
    elif argv[:1] == ["load"]:
        fail_if_asked("load")
        models.write_text("\n".join([*loaded, flag(argv, "--identifier") or argv[1]]) + "\n")
        print(f"Model loaded successfully: {argv[1]}")
    elif argv[:1] == ["unload"]:
        fail_if_asked("unload")
        models.write_text("".join(f"{m}\n" for m in loaded if m != argv[1]))
        print(f"Model '{argv[1]}' unloaded")
    else:
        sys.exit(f"Error: fake lms does not know `{' '.join(argv)}`")


if __name__ == "__main__":
    main(sys.argv[1:])
