"""Supervise a server process: spawn it in its own process group, wait until it serves, stop it (asked, then
made to: TERM then KILL on POSIX; backends.process_groups says how on each OS)."""
from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

from gptoss_deploy.backends.process_groups import GROUPS, ProcessGroups, python_module
from gptoss_deploy.planner.errors import BackendError
from gptoss_deploy.planner.units import seconds_setting

# What the engines print when memory runs out: llama.cpp's ggml allocators ("insufficient memory (attempted to
# allocate ...)", "failed to allocate buffer"), CUDA's and torch's "out of memory", vLLM's KV-cache check ("No
# available memory for the cache blocks") and its start-up check of free memory against --gpu-memory-utilization;
# Ollama's refusal of a model larger than memory.
OUT_OF_MEMORY_SIGNS = ("insufficient memory", "failed to allocate", "out of memory",
                       "no available memory for the cache blocks", "less than desired gpu memory utilization",
                       "requires more system memory")

STOP_GRACE_S = 10.0       # vLLM frees GPU memory on TERM; give it time before KILL (GPTOSS_STOP_GRACE_S)
POLL_INTERVAL_S = 0.25
LOG_TAIL_LINES = 12


@dataclass(frozen=True)
class PortHolder:
    pid: int | None
    name: str

    def describe(self) -> str:
        return f"{self.name} (pid {self.pid})" if self.pid else self.name


class CannotBind(Exception):
    """HOST is no address of this machine (or cannot be resolved): no port on it will ever be free."""


def port_in_use(host: str, port: int) -> bool:
    """Whether something holds host:port, so that a server could not bind it (IPv4 or IPv6).

    Raises CannotBind when the address itself cannot be bound, whatever the port."""
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as err:
        raise CannotBind(f"{host} does not resolve ({err.strerror})") from None
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return True
            raise CannotBind(f"{host} is not an address of this machine ({err.strerror})") from None
    return False


def port_holder(port: int) -> PortHolder:
    """Who listens on PORT, as far as this user may see (other users' processes show no pid)."""
    try:
        connections = psutil.net_connections(kind="inet")
    except (psutil.AccessDenied, OSError):
        connections = []
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            try:
                return PortHolder(conn.pid, " ".join(psutil.Process(conn.pid).cmdline()[:3]) or "a process")
            except psutil.Error:
                return PortHolder(conn.pid, "a process")
    return PortHolder(None, "another process (not visible to this user)")


def spawn(argv: list[str], env: dict[str, str], log_path: Path, secrets: list[str]) -> subprocess.Popen:
    """Start ARGV in a new session (its own process group); its output goes to LOG_PATH with SECRETS masked."""
    if shutil.which(argv[0]) is None:
        raise BackendError(f"could not start {argv[0]}: not found or not executable")
    log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)   # logs may quote what the server saw
    process = subprocess.Popen([*python_module(f"{__package__}.log_filter"), str(log_path), "--", *argv],
                               env={**os.environ, **env}, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, text=True, **GROUPS.popen_options())
    with process.stdin:          # the secrets to mask, by a pipe: never in its argv or environment
        process.stdin.write("\n".join(secrets))
    return process


def memory_line(lines: Iterable[str]) -> str | None:
    """The first of LINES (an engine's output) that shows memory ran out, or None."""
    return next((line.strip() for line in lines if any(sign in line.lower() for sign in OUT_OF_MEMORY_SIGNS)), None)


def log_tail(log_path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last run's last LINES of the log, joined by ' | ', led by the line that shows memory ran out where that
    came earlier (a traceback printed after it, as vLLM's engine core and the embedded engine print, pushes it out
    of the tail). An earlier run's lines are never read as this one's: the fallback ladder relaunches into one log."""
    kept = [line.strip() for line in last_run_lines(log_path) if line.strip()]
    cause = memory_line(kept[:-lines])
    return " | ".join(([cause, "..."] if cause else []) + kept[-lines:])


def last_run_lines(log_path: Path) -> list[str]:
    """The lines the last run wrote to the log (none when it cannot be read): earlier runs' are not this one's."""
    from gptoss_deploy.runtime.log_filter import RUN_MARKER

    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return lines[_last_run(lines, RUN_MARKER):]


def _last_run(lines: list[str], marker: str) -> int:
    """Where the last run's lines begin: after its MARKER line (0 in a log without one)."""
    return next((i + 1 for i in range(len(lines) - 1, -1, -1) if lines[i].startswith(marker)), 0)


class ServerFailed(BackendError):
    """A supervised server that never became ready: its exit status (None: it still ran at the deadline) and its
    last run's log lines, for the fallback ladder to read; the message shows the log's tail."""

    def __init__(self, message: str, returncode: int | None, log_path: Path | None):
        self.returncode = returncode
        self.log_lines = [line.strip() for line in last_run_lines(log_path) if line.strip()] if log_path else []
        super().__init__(message)


def wait_until(ready: Callable[[], bool], process: subprocess.Popen | None, deadline_s: float,
               what: str, log_path: Path | None) -> None:
    """Poll READY until it answers True; fail early when PROCESS exits, and at the deadline."""
    give_up = time.monotonic() + deadline_s
    while not ready():
        if process is not None and process.poll() is not None:
            raise ServerFailed(f"{what} exited with status {process.returncode} before it was ready; log {log_path} "
                               f"| {log_tail(log_path) if log_path else ''}", process.returncode, log_path)
        if time.monotonic() > give_up:
            raise ServerFailed(f"{what} was not ready after {deadline_s:.0f} s; raise --ready-timeout if the model "
                               f"is still loading; log {log_path}: {log_tail(log_path) if log_path else ''}", None,
                               log_path)
        time.sleep(POLL_INTERVAL_S)


def alive(pid: int, started_at: float | None = None) -> bool:
    """Whether PID still runs and is the process we started (not a later one that reused the number)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return started_at is None or abs(process.create_time() - started_at) < 1.0
    except psutil.Error:
        return False


def create_time(pid: int) -> float:
    return psutil.Process(pid).create_time()


def _reused(pid: int, started_at: float | None) -> bool:
    """Whether PID now names another process than the one started at STARTED_AT (so its group is gone)."""
    try:
        return started_at is not None and abs(psutil.Process(pid).create_time() - started_at) >= 1.0
    except psutil.NoSuchProcess:
        return False        # the leader is gone; its group may live on
    except psutil.Error:
        return True         # not ours to look at, so not ours to signal


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def stop_grace_s() -> float:
    """GPTOSS_STOP_GRACE_S, checked: seconds between TERM and KILL."""
    return seconds_setting("GPTOSS_STOP_GRACE_S", STOP_GRACE_S, zero_allowed=True)


def stop_group(pgid: int, started_at: float | None = None, grace_s: float | None = None,
               groups: ProcessGroups = GROUPS) -> None:
    """Ask the process group led by PGID to stop, then kill whatever is left after GRACE_S.

    STARTED_AT is the leader's start time: when the number now belongs to another process, nothing is sent."""
    if _reused(pgid, started_at):
        return
    grace_s = grace_s if grace_s is not None else stop_grace_s()
    members: list[psutil.Process] = []
    for hard, wait_s in ((False, grace_s), (True, 5.0)):
        # The group as first seen, and whoever joined it since: on Windows a leader that obeyed the break takes
        # the way to its tree with it.
        seen = {p.pid for p in members}
        members = [p for p in members if _running(p)] + [p for p in groups.members(pgid) if p.pid not in seen]
        if not members:
            return
        try:
            groups.stop(pgid, members, hard)
        except (ProcessLookupError, PermissionError):
            return
        _, still_running = psutil.wait_procs(members, timeout=wait_s)
        if not still_running:
            return
    raise BackendError(f"process group {pgid} survived a kill; stop it by hand: {groups.by_hand(pgid)}")
