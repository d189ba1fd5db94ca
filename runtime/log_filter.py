"""Run a server with its output copied into its log, secrets masked:
`python -P -m gptoss_deploy.runtime.log_filter LOG -- ARGV`.

This process leads the server's process group (so `gptoss down` stops both) and exits with the server's
status once its output ends; a server killed by a signal (the out-of-memory killer's SIGKILL) kills it with the
same. Secrets arrive on its standard input, one per line, read to the end before the server starts: never in argv
or the environment, where `ps` and /proc/PID/environ would show them.
"""
from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys

MASK = "***"
RUN_MARKER = "==== gptoss: starting"     # heads each run's output: the log keeps earlier runs, a failure reads its own


def redact(line: str, secrets: list[str]) -> str:
    for secret in secrets:
        line = line.replace(secret, MASK)
    return line


def main(argv: list[str]) -> int:
    log_path, server_argv = argv[0], argv[argv.index("--") + 1:]
    secrets = [s for s in sys.stdin.read().splitlines() if s]
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)   # this user's eyes only
    with contextlib.suppress(OSError):       # a full disk stops the logging, never the server (_copy)
        _append(log, redact(f"{RUN_MARKER} {shlex.join(server_argv)}".replace("\n", "\\n") + "\n", secrets))
    try:
        server = subprocess.Popen(server_argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, errors="replace")
    except OSError as err:
        _append(log, f"gptoss: could not start {server_argv[0]}: {err.strerror}\n")
        return 127
    # TERM and Ctrl-C reach the whole group: the server handles them, this process logs its last words.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _copy(server.stdout, log, secrets)
    status = server.wait()
    if status < 0:
        _die_like(-status)
    return status


def _die_like(signum: int) -> None:
    """End by signal SIGNUM, as the server did: gptoss reads "killed by SIGKILL" from this process's status, where
    an exit status could not tell it from a server's exit(247)."""
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))    # the server's core dump, if any, is the one worth keeping
    with contextlib.suppress(OSError, ValueError):      # SIGKILL's own action cannot be set, nor needs to be
        signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _copy(output, log: int, secrets: list[str]) -> None:
    """Copy OUTPUT into LOG until it ends. A log that cannot be written (a full disk) stops the copying, never the
    reading: a server whose output pipe closed would die at its next line."""
    lost = None
    for line in output:
        if lost is None:
            try:
                _append(log, redact(line, secrets))
            except OSError as err:
                lost = err.strerror
    if lost:
        with contextlib.suppress(OSError):   # the disk may have room again by now
            _append(log, f"gptoss: output after this point was not logged ({lost})\n")


def _append(log: int, text: str) -> None:
    os.write(log, text.encode("utf-8", errors="replace"))   # unbuffered: nothing is left to fail at exit


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
