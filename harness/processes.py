"""Every process the harness runs: stopped by its id, dying with its parent, on a port it owns.

One place for what every runner of a process needs (the toxiproxy server, the simulator, the
contract clients, the benchmarks): :func:`stop` (SIGTERM, bounded wait, SIGKILL, reap; a process
or its whole group), :func:`die_with_parent`, :func:`free_port` and :func:`owns_listener` (which
pid holds a listening port, read from /proc).

Nothing the harness starts outlives it. Three layers, because each alone has a gap:

- :func:`die_with_parent` (a ``preexec_fn``): the child asks the kernel for SIGKILL when the thread
  that forked it ends (``PR_SET_PDEATHSIG``), and exits at once if the parent is already gone
  (the race between fork and prctl). It covers the group leader only, not what the leader spawns.
- :class:`Watchdog`: one small process per run, in its own session (so a terminal's SIGINT and
  SIGHUP do not reach it), that reads the run's process groups and temp directories on a pipe.
  When the pipe closes, however the harness ended (exit, exception, SIGKILL), it SIGTERMs every
  group still registered, SIGKILLs what is left after a grace period and removes the directories.
- Temp directories carry their owner's pid in the name (``streamchaos-trial-<pid>-...``), and
  :func:`sweep_temp_dirs` removes, at start, only those whose owner is dead: other runs may be live.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

TRIAL_PREFIX = "streamchaos-trial-"
WATCHDOG_GRACE_S = 2.0


STOP_GRACE_S = 5.0
HOST = "127.0.0.1"


# -- stopping -----------------------------------------------------------------------------------


def stop(
    process: subprocess.Popen | None = None, *, group: int | None = None, grace_s: float = STOP_GRACE_S, first: int = signal.SIGTERM
) -> int | None:
    """Stop ``process`` (a Popen) or the process group ``group`` (or both: the group, led by
    ``process``): ``first`` (SIGTERM), up to ``grace_s`` for the leader to exit, SIGKILL, reap.
    Returns the leader's exit status (None without a ``process``).

    With a ``group`` the SIGKILL goes to the whole group even when the leader exited in time:
    what it spawned may still be there. The leader is waited for (reaped), never probed: a dead
    but unreaped leader still answers ``killpg(pgid, 0)``. Everything is by id, never by name."""
    if process is None and group is None:
        raise ValueError("stop needs a process or a group")
    if group is not None and group <= 1:
        raise ValueError(f"refusing to signal process group {group}")
    running = process is not None and process.poll() is None
    if group is not None:
        group_there = _signal_group(group, first)
    else:
        group_there = False
        if running:
            _signal(process.pid, first)  # type: ignore[union-attr]
    if first != signal.SIGKILL:
        if process is not None and (running or group_there):
            try:
                process.wait(grace_s)
            except subprocess.TimeoutExpired:
                pass
        elif group_there:  # no leader to wait for: watch the group go
            deadline = time.monotonic() + grace_s
            while _group_alive(group) and time.monotonic() < deadline:  # type: ignore[arg-type]
                time.sleep(0.02)
    if group is not None:
        _signal_group(group, signal.SIGKILL)
    elif process is not None and process.poll() is None:
        _signal(process.pid, signal.SIGKILL)
    if process is None:
        return None
    try:
        return process.wait(grace_s)  # reap (SIGKILL cannot be refused)
    except subprocess.TimeoutExpired:  # pragma: no cover - uninterruptible sleep in the kernel
        return process.poll()


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _signal_group(pgid: int, sig: int) -> bool:
    """Whether the group was there to signal."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- dying with the parent ----------------------------------------------------------------------


def die_with_parent(sig: int = signal.SIGKILL, *, outlives_thread: bool = False) -> Callable[[], None] | None:
    """A ``preexec_fn``: ``sig`` to the child when the forking thread ends; exit at once if the
    parent is already dead (it died between fork and prctl). None off Linux.

    PDEATHSIG follows the *thread* that forked, not the process. A caller whose thread waits for
    the child (a client run) can use it from any thread; a child that may outlive the forking
    thread (a server) passes ``outlives_thread=True`` and gets it only from the main thread,
    whose end is the process's end (elsewhere None: the watchdog and the atexit hooks cover it)."""
    if not sys.platform.startswith("linux"):
        return None
    if outlives_thread and threading.current_thread() is not threading.main_thread():
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died between fork and prctl
            os._exit(1)

    return preexec


# -- ports --------------------------------------------------------------------------------------


def free_port(host: str = HOST) -> int:
    """A port the kernel just gave out on ``host`` (free now; a caller that binds it later must
    handle losing a race for it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def owns_listener(pid: int, port: int) -> bool | None:
    """Whether process ``pid`` holds the socket listening on TCP ``port`` (None: cannot tell, no
    /proc). An API that answers on a port may be another process's: this says whose it is."""
    inodes = _listening_inodes(port)
    if inodes is None:
        return None
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None if not os.path.isdir("/proc/self/fd") else False
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return True
    return False


def _listening_inodes(port: int) -> set[str] | None:
    """Socket inodes listening on ``port`` (IPv4 and IPv6); None without /proc/net."""
    inodes: set[str] = set()
    found_table = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as handle:
                lines = handle.readlines()[1:]
        except OSError:
            continue
        found_table = True
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(parts[9])
    return inodes if found_table else None


# -- temp directories owned by a pid ------------------------------------------------------------


def trial_dir() -> Path:
    """A new temp directory named with this process's pid (so a later sweep can tell its owner)."""
    return Path(tempfile.mkdtemp(prefix=f"{TRIAL_PREFIX}{os.getpid()}-"))


def owner_pid(name: str) -> int | None:
    if not name.startswith(TRIAL_PREFIX):
        return None
    head = name[len(TRIAL_PREFIX) :].split("-", 1)[0]
    return int(head) if head.isdigit() else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_temp_dirs(directory: str | Path | None = None) -> list[Path]:
    """Remove ``streamchaos-trial-<pid>-*`` directories whose owner pid is dead; leave the others
    (a live run's, or an old name without a pid) alone. Returns what was removed."""
    base = Path(directory or tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(base.iterdir())
    except OSError:
        return removed
    for entry in entries:
        pid = owner_pid(entry.name)
        if pid is None or pid == os.getpid() or pid_alive(pid):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
        except OSError:
            continue
    return removed


# -- the watchdog -------------------------------------------------------------------------------


class Watchdog:
    """The run's watchdog process (see the module docstring). Thread-safe; every method is a no-op
    once the watchdog could not start or has been closed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None

    def start(self) -> Watchdog:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "harness.processes", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            cwd=Path(__file__).resolve().parents[1],  # the checkout, where ``-m harness...`` resolves
        )
        return self

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def _send(self, line: str) -> None:
        with self._lock:
            process = self._process
            if process is None or process.stdin is None or process.stdin.closed:
                return
            try:
                process.stdin.write(line.encode("utf-8", "surrogateescape") + b"\n")
                process.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass

    def group(self, pgid: int) -> None:
        self._send(f"+group {pgid}")

    def ungroup(self, pgid: int) -> None:
        self._send(f"-group {pgid}")

    def directory(self, path: Path) -> None:
        self._send(f"+dir {path}")

    def undirectory(self, path: Path) -> None:
        self._send(f"-dir {path}")

    def close(self, timeout_s: float = 5.0) -> None:
        """Close the pipe (the watchdog cleans what is still registered) and wait for it."""
        with self._lock:
            process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.stdin:
                process.stdin.close()
        except OSError:
            pass
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout_s)


def _watch(parent: int, stream) -> None:
    """The watchdog's loop: read registrations until EOF, then clean up what is registered."""
    groups: dict[int, None] = {}
    directories: dict[str, None] = {}
    for raw in stream:
        line = raw.decode("utf-8", "surrogateescape").rstrip("\n")
        op, _, value = line.partition(" ")
        if op in ("+group", "-group") and value.lstrip("-").isdigit():
            pgid = int(value)
            if pgid <= 1:
                continue
            if op == "+group":
                groups[pgid] = None
            else:
                groups.pop(pgid, None)
        elif op == "+dir" and value:
            directories[value] = None
        elif op == "-dir":
            directories.pop(value, None)
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + WATCHDOG_GRACE_S
    left = list(groups)
    while left and time.monotonic() < deadline:
        left = [pgid for pgid in left if _group_alive(pgid)]
        if left:
            time.sleep(0.05)
    for pgid in left:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for path in directories:
        if owner_pid(Path(path).name) == parent:  # only the dead harness's own directories
            shutil.rmtree(path, ignore_errors=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


if __name__ == "__main__":  # python -m harness.processes PARENT_PID (the watchdog)
    for _sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(_sig, signal.SIG_IGN)
    _watch(int(sys.argv[1]), sys.stdin.buffer)
