"""harness.processes: one stop (a process or its group), die-with-parent, ports and their owner."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from harness import processes

IGNORES_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_stop_a_process_that_exits_on_sigterm() -> None:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    started = time.monotonic()
    assert processes.stop(process, grace_s=5) == -signal.SIGTERM
    assert time.monotonic() - started < 4 and process.returncode == -signal.SIGTERM  # reaped, no grace spent


def test_stop_kills_what_ignores_sigterm_after_the_grace() -> None:
    process = subprocess.Popen([sys.executable, "-c", IGNORES_TERM], stdout=subprocess.PIPE)
    assert process.stdout.readline() == b"up\n"
    started = time.monotonic()
    assert processes.stop(process, grace_s=0.3) == -signal.SIGKILL
    assert 0.3 <= time.monotonic() - started < 5
    process.stdout.close()


def test_stop_a_group_kills_what_the_leader_left_behind() -> None:
    script = (
        "import subprocess, sys; child = subprocess.Popen([sys.executable, '-c', " + repr(IGNORES_TERM) + "], stdout=subprocess.PIPE); "
        "child.stdout.readline(); print(child.pid, flush=True)"
    )
    leader = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, start_new_session=True)
    orphan = int(leader.stdout.readline())
    leader.stdout.close()
    assert leader.wait(10) == 0 and _alive(orphan)  # the leader is gone, its child is not
    processes.stop(leader, group=leader.pid, grace_s=0.3)
    deadline = time.monotonic() + 5
    while _alive(orphan) and time.monotonic() < deadline:
        time.sleep(0.02)  # the orphan is reparented; its new parent reaps it
    assert not _alive(orphan)


def test_stop_without_a_leader_and_on_a_finished_process() -> None:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    assert processes.stop(group=process.pid, first=signal.SIGKILL) is None
    assert process.wait(5) == -signal.SIGKILL
    assert processes.stop(process) == -signal.SIGKILL  # already reaped: nothing signalled, same status
    with pytest.raises(ValueError):
        processes.stop()
    with pytest.raises(ValueError):
        processes.stop(group=1)


def test_stop_a_group_without_its_leader_waits_the_grace_then_kills() -> None:
    process = subprocess.Popen([sys.executable, "-c", IGNORES_TERM], stdout=subprocess.PIPE, start_new_session=True)
    assert process.stdout.readline() == b"up\n"
    started = time.monotonic()
    assert processes.stop(group=process.pid, grace_s=0.3) is None
    assert 0.3 <= time.monotonic() - started < 5
    assert process.wait(5) == -signal.SIGKILL
    process.stdout.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_die_with_parent_kills_the_child_and_only_main_thread_for_servers() -> None:
    script = (
        "import subprocess, sys; from harness import processes; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], preexec_fn=processes.die_with_parent()); "
        "print(child.pid, flush=True); import time; time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait(5)
    parent.stdout.close()
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(child)

    import threading

    seen: list = []
    thread = threading.Thread(target=lambda: seen.append(processes.die_with_parent(outlives_thread=True)))
    thread.start()
    thread.join()
    assert seen == [None] and processes.die_with_parent(outlives_thread=True) is not None


def test_free_port_and_its_owner() -> None:
    port = processes.free_port()
    with socket.socket() as sock:
        sock.bind((processes.HOST, port))
        assert processes.owns_listener(os.getpid(), port) is False  # bound, not listening
        sock.listen()
        assert processes.owns_listener(os.getpid(), port) is True
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            assert processes.owns_listener(other.pid, port) is False
        finally:
            processes.stop(other)
