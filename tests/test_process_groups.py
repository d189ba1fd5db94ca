"""The supervision's platform layer. POSIX runs for real everywhere else in the suite (test_supervision.py); the
Windows layer runs here against fakes of the two things it calls, os.kill and psutil.Process, since no Windows
machine is available: a process tree, a console break that some processes obey, TerminateProcess."""
from __future__ import annotations

import psutil
import pytest

from gptoss_deploy.backends.process_groups import CREATE_NEW_PROCESS_GROUP, CTRL_BREAK_EVENT, WindowsGroups
from gptoss_deploy.planner.errors import BackendError
from gptoss_deploy.runtime.process import stop_group


class FakeProcess:
    """A Windows process as psutil shows it: a tree, a status, kill (TerminateProcess), wait."""

    def __init__(self, pid: int, parent: FakeProcess | None = None, obeys_break: bool = True,
                 survives_kill: bool = False, marked: bool = True):
        self.pid, self._parent, self.obeys_break, self.survives_kill = pid, parent, obeys_break, survives_kill
        self.marked, self.running, self.kids = marked, True, []
        if parent:
            parent.kids.append(self)

    def children(self, recursive: bool = False) -> list[FakeProcess]:
        found = []
        for kid in self.kids:
            found += [kid, *(kid.children(True) if recursive else [])]
        return [p for p in found if p.running]

    def parent(self) -> FakeProcess | None:
        return self._parent

    def status(self) -> str:
        return psutil.STATUS_RUNNING

    def kill(self) -> None:
        self.running = self.survives_kill

    def is_running(self) -> bool:
        return self.running

    def wait(self, timeout: float | None = None) -> int:
        if self.running:
            raise psutil.TimeoutExpired(timeout)
        return 1


class FakeWindows:
    """The processes by pid, and os.kill as Windows applies CTRL_BREAK_EVENT: to the group the pid leads."""

    def __init__(self, *processes: FakeProcess):
        self.table = {p.pid: p for p in processes}
        self.kills: list[tuple[int, int]] = []

    def process(self, pid: int) -> FakeProcess:
        if pid not in self.table or not self.table[pid].running:
            raise psutil.NoSuchProcess(pid)
        return self.table[pid]

    def kill(self, pid: int, sig: int) -> None:
        self.kills.append((pid, sig))
        leader = self.process(pid)
        for member in [leader, *leader.children(recursive=True)]:
            member.running = member.running and not member.obeys_break

    def groups(self) -> WindowsGroups:
        return WindowsGroups(kill=self.kill, process=self.process)


def tree(**engine) -> tuple[FakeWindows, FakeProcess, FakeProcess, FakeProcess]:
    """The log filter (group leader), the server under it, and a worker the server started."""
    log_filter = FakeProcess(100)
    server = FakeProcess(101, log_filter, **engine)
    worker = FakeProcess(102, server, **engine)
    return FakeWindows(log_filter, server, worker), log_filter, server, worker


def test_a_server_starts_as_the_leader_of_a_new_console_process_group():
    assert WindowsGroups().popen_options() == {"creationflags": CREATE_NEW_PROCESS_GROUP}   # 0x200, as Windows has it


def test_the_group_is_the_leaders_process_tree():
    windows, log_filter, server, worker = tree()
    assert windows.groups().members(100) == [log_filter, server, worker]
    log_filter.running = False
    assert windows.groups().members(100) == []        # a tree without its root cannot be walked: said in the README


def test_a_server_that_obeys_the_break_is_stopped_by_it_alone():
    windows, *processes = tree()
    stop_group(100, grace_s=1.0, groups=windows.groups())
    assert windows.kills == [(100, CTRL_BREAK_EVENT)] and not any(p.running for p in processes)


def test_a_server_that_ignores_the_break_is_terminated_after_the_grace():
    windows, log_filter, server, worker = tree(obeys_break=False)
    stop_group(100, grace_s=0.2, groups=windows.groups())
    assert windows.kills == [(100, CTRL_BREAK_EVENT)]
    assert not server.running and not worker.running   # TerminateProcess, one by one


def test_a_process_that_survives_terminate_is_named_with_the_command_to_run():
    windows, *_ = tree(obeys_break=False, survives_kill=True)
    with pytest.raises(BackendError, match=r"stop it by hand: taskkill /T /F /PID 100"):
        stop_group(100, grace_s=0.1, groups=windows.groups())


def test_recovery_finds_the_group_as_the_topmost_process_this_tool_marked():
    shell = FakeProcess(1, marked=False)               # the launcher's own parent: not ours
    windows, log_filter, server, worker = tree()
    log_filter._parent = shell
    marked = lambda process: process.marked            # noqa: E731
    assert {windows.groups().group_of(p, marked) for p in (log_filter, server, worker)} == {100}
