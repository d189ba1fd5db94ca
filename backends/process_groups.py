"""A server's process group, per OS: how it is made, who is in it, how it is asked to stop and then made to.

POSIX: a new session (its own process group), its members by process group id, TERM then KILL to the group.
Windows has no process groups of that kind: the server starts in a new console process group
(CREATE_NEW_PROCESS_GROUP), which CTRL_BREAK_EVENT reaches; its members are the leader's process tree (psutil),
killed one by one (TerminateProcess) when they outlast the break. The Windows side makes only the OS calls given
to it (os.kill and psutil.Process), so tests run it against fakes of those on any OS.
"""
from __future__ import annotations

import os
import signal
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable

import psutil

# subprocess's Windows-only constants, by value (Windows API): so the Windows layer can be built anywhere.
CREATE_NEW_PROCESS_GROUP = 0x00000200
CTRL_BREAK_EVENT = 1


def python_module(module: str) -> list[str]:
    """The command that runs MODULE of this installation as a process of its own: -P keeps the working directory
    off sys.path, so a project's own `backends/` package can never stand in for ours."""
    return [sys.executable, "-P", "-m", module]


class ProcessGroups(ABC):
    @abstractmethod
    def popen_options(self) -> dict:
        """subprocess.Popen's options that start a process as the leader of a new group."""

    @abstractmethod
    def members(self, leader: int) -> list[psutil.Process]:
        """The live processes of LEADER's group (the leader itself may be gone)."""

    @abstractmethod
    def group_of(self, process: psutil.Process, marked: Callable[[psutil.Process], bool]) -> int:
        """The leader of PROCESS's group; MARKED says which processes were started by this tool."""

    @abstractmethod
    def stop(self, leader: int, members: list[psutil.Process], hard: bool) -> None:
        """Ask the group to stop, or (HARD) make it stop."""

    @abstractmethod
    def by_hand(self, leader: int) -> str:
        """The command a person runs when the group outlives a kill."""


class PosixGroups(ProcessGroups):
    def popen_options(self) -> dict:
        return {"start_new_session": True}

    def members(self, leader: int) -> list[psutil.Process]:
        found = []
        for process in psutil.process_iter():
            try:
                if os.getpgid(process.pid) == leader and process.status() != psutil.STATUS_ZOMBIE:
                    found.append(process)
            except (ProcessLookupError, psutil.Error):
                pass
        return found

    def group_of(self, process: psutil.Process, marked: Callable[[psutil.Process], bool]) -> int:
        return os.getpgid(process.pid)

    def stop(self, leader: int, members: list[psutil.Process], hard: bool) -> None:
        os.killpg(leader, signal.SIGKILL if hard else signal.SIGTERM)

    def by_hand(self, leader: int) -> str:
        return f"kill -9 -{leader}"


class WindowsGroups(ProcessGroups):
    def __init__(self, kill: Callable[[int, int], None] = os.kill,
                 process: Callable[[int], psutil.Process] = psutil.Process):
        self._kill, self._process = kill, process

    def popen_options(self) -> dict:
        return {"creationflags": CREATE_NEW_PROCESS_GROUP}

    def members(self, leader: int) -> list[psutil.Process]:
        try:
            root = self._process(leader)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return []                   # the leader is gone: its tree can no longer be walked
        found = []
        for process in tree:
            try:
                if process.status() != psutil.STATUS_ZOMBIE:
                    found.append(process)
            except psutil.Error:
                pass
        return found

    def group_of(self, process: psutil.Process, marked: Callable[[psutil.Process], bool]) -> int:
        """The topmost marked ancestor: the log filter this tool started, which the server runs under."""
        top = process
        try:
            parent = process.parent()
            while parent is not None and marked(parent):
                top, parent = parent, parent.parent()
        except psutil.Error:
            pass
        return top.pid

    def stop(self, leader: int, members: list[psutil.Process], hard: bool) -> None:
        if not hard:                    # the console break reaches the whole group, as TERM does on POSIX
            self._kill(leader, CTRL_BREAK_EVENT)
            return
        for process in members:
            try:
                process.kill()          # TerminateProcess
            except psutil.NoSuchProcess:
                pass

    def by_hand(self, leader: int) -> str:
        return f"taskkill /T /F /PID {leader}"


def on_stop_signals(handler: Callable[..., None]) -> None:
    """Run HANDLER on what `down` sends a server: TERM on POSIX, the console break (SIGBREAK) on Windows; and Ctrl-C."""
    for name in ("SIGTERM", "SIGINT", "SIGBREAK"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), handler)


GROUPS: ProcessGroups = WindowsGroups() if os.name == "nt" else PosixGroups()
