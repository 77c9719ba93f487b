"""The toxiproxy server's lifecycle: started on a port it owns, stopped by its pid, never left behind.

Every pid started here is registered for an ``atexit`` and SIGTERM/SIGHUP cleanup, and (on Linux,
when started from the main thread) dies with the harness (PDEATHSIG), so not even a SIGKILLed
harness leaves a toxiproxy behind; the run's watchdog covers the other threads.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import processes
from harness.network.toxiproxy.api import HOST, HTTP_TIMEOUT_S, ProxyHandle, ToxiproxyClient, quote
from harness.network.toxiproxy.binary import find_binary
from harness.network.toxiproxy.errors import NotFound, ToxiproxyError, ToxiproxyStartError

READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
START_ATTEMPTS = 5


# -- every pid we start, whatever way the harness ends -------------------------------------------

_LIVE: dict[int, subprocess.Popen] = {}
_LIVE_LOCK = threading.RLock()  # re-entrant: the signal handler runs in the main thread, maybe inside a `with`
_ATEXIT_INSTALLED = False
_SIGNALS_INSTALLED = False
_PREVIOUS_HANDLERS: dict[int, Any] = {}


def _forget(pid: int) -> None:
    with _LIVE_LOCK:
        _LIVE.pop(pid, None)


def live_pids() -> list[int]:
    """Pids of toxiproxy servers this process started and has not stopped yet."""
    with _LIVE_LOCK:
        return [pid for pid, process in _LIVE.items() if process.poll() is None]


def stop_all(timeout_s: float = 2.0) -> None:
    """Stop every server this process started (the atexit hook)."""
    with _LIVE_LOCK:
        started = list(_LIVE.values())
        _LIVE.clear()
    for process in started:
        try:
            processes.stop(process, grace_s=timeout_s)
        except Exception:
            pass


def _on_signal(signum: int, frame: Any) -> None:
    stop_all(timeout_s=1.0)
    previous = _PREVIOUS_HANDLERS.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signum, signal.SIG_DFL)  # die of the same signal, as we would have without us
    os.kill(os.getpid(), signum)


def _install_hooks(signals: bool) -> None:
    """``atexit`` covers a normal exit, an uncaught exception and Ctrl-C (KeyboardInterrupt);
    SIGTERM/SIGHUP would kill Python without atexit, so they get a handler that stops our pids
    and then dies of the same signal (or calls the handler that was there before). Signal
    handlers can only be set from the main thread; PDEATHSIG covers SIGKILL."""
    global _ATEXIT_INSTALLED, _SIGNALS_INSTALLED
    if not _ATEXIT_INSTALLED:
        _ATEXIT_INSTALLED = True
        atexit.register(stop_all)
    if signals and not _SIGNALS_INSTALLED and threading.current_thread() is threading.main_thread():
        _SIGNALS_INSTALLED = True
        for signum in (signal.SIGTERM, signal.SIGHUP):
            current = signal.getsignal(signum)
            if current in (signal.SIG_DFL, None) or callable(current):
                _PREVIOUS_HANDLERS[signum] = current
                signal.signal(signum, _on_signal)


# -- the server ------------------------------------------------------------------------------


@dataclass
class StartAttempt:
    port: int
    pid: int
    outcome: str  # "ready" | "api port taken" | "exited" | "no answer"
    detail: str = ""


@dataclass
class ToxiproxyServer:
    """``toxiproxy-server -host 127.0.0.1 -port N`` as a child process, stopped by its pid.

    Ready means ``GET /version`` answered and the listening socket on N belongs to this very
    process (the "Starting Toxiproxy HTTP server" log line comes before the socket listens). The
    trap: when N is taken, toxiproxy logs "Server finished with error ... address already in use"
    and *keeps running without an API*, and if N is another toxiproxy's API port, ``/version``
    even answers, from the other server. Both are detected (the log line, and the socket's owner
    in /proc); the process is killed and the start retried on another free port.

    The server's log goes to a file, never to a pipe (it logs every API call and connection at
    the default level, and a pipe nobody reads would block it). The file is unlinked at once and
    read through the descriptor we keep (:meth:`log_text`), so no log is left behind even if the
    harness is SIGKILLed; ``keep_log=True`` keeps it at :attr:`log_path`. ``LOG_LEVEL`` defaults
    to info.
    """

    binary: str | Path | None = None
    host: str = HOST
    port: int | None = None  # first port to try (tests use it to exercise the port-taken trap)
    ready_timeout_s: float = READY_TIMEOUT_S
    stop_timeout_s: float = STOP_TIMEOUT_S
    http_timeout_s: float = HTTP_TIMEOUT_S
    attempts: int = START_ATTEMPTS
    log_level: str = "info"
    keep_log: bool = False
    install_signal_cleanup: bool = True
    process: subprocess.Popen | None = field(default=None, init=False)
    log_path: Path | None = field(default=None, init=False)  # only with keep_log
    version: str = field(default="", init=False)
    _log_fd: int | None = field(default=None, init=False, repr=False)
    history: list[StartAttempt] = field(default_factory=list, init=False)
    _client: ToxiproxyClient | None = field(default=None, init=False, repr=False)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def client(self) -> ToxiproxyClient:
        if self._client is None:
            raise ToxiproxyError("toxiproxy is not running")
        return self._client

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def create_proxy(self, name: str, upstream_port: int | None = None, upstream: str | None = None, listen: str = f"{HOST}:0") -> ProxyHandle:
        """A proxy to ``127.0.0.1:upstream_port`` (or ``upstream``) on a kernel-chosen port."""
        if (upstream_port is None) == (upstream is None):
            raise ValueError("give exactly one of upstream_port or upstream")
        return self.client.create_proxy(name, upstream or f"{HOST}:{upstream_port}", listen=listen)

    def delete_proxy(self, proxy: ProxyHandle | str) -> None:
        """Delete a proxy (closing its connections); one already gone is fine."""
        try:
            self.client.request("DELETE", f"/proxies/{quote(proxy if isinstance(proxy, str) else proxy.name)}")
        except NotFound:
            pass

    def log_text(self, limit: int = 1 << 20) -> str:
        """The server's output so far (its last ``limit`` bytes)."""
        if self._log_fd is None:
            return ""
        try:
            size = os.fstat(self._log_fd).st_size
            start = max(0, size - limit)
            return os.pread(self._log_fd, size - start, start).decode(errors="replace")
        except OSError:
            return ""

    # -- start -------------------------------------------------------------------------------
    def start(self) -> ToxiproxyServer:
        if self.alive():
            return self
        path = find_binary(self.binary)
        _install_hooks(self.install_signal_cleanup)
        first = self.port
        problems: list[str] = []
        for attempt in range(max(1, self.attempts)):
            port = first if (attempt == 0 and first) else processes.free_port(self.host)
            outcome = self._attempt(path, port)
            self.history.append(outcome)
            if outcome.outcome == "ready":
                return self
            problems.append(f"port {port}: {outcome.outcome} {outcome.detail}".strip())
        raise ToxiproxyStartError(f"toxiproxy-server ({path}) did not start after {self.attempts} attempts: " + "; ".join(problems))

    def _attempt(self, path: Path, port: int) -> StartAttempt:
        self._close_log()
        handle, log_name = tempfile.mkstemp(prefix=f"toxiproxy-{port}-", suffix=".log")
        if self.keep_log:
            self.log_path = Path(log_name)
        else:
            os.unlink(log_name)  # the child writes, we read, through descriptors: nothing to clean up
        self._log_fd = handle
        env = {k: v for k, v in os.environ.items() if k != "LOG_LEVEL"}
        if self.log_level:
            env["LOG_LEVEL"] = self.log_level
        process = subprocess.Popen(
            [str(path), "-host", self.host, "-port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=processes.die_with_parent(outlives_thread=True),
        )
        self.process, self.port = process, port
        with _LIVE_LOCK:
            _LIVE[process.pid] = process
        client = ToxiproxyClient(self.host, port, timeout_s=self.http_timeout_s)
        outcome, detail = self._wait_ready(client)
        if outcome == "ready":
            self._client = client
            return StartAttempt(port, process.pid, outcome, self.version)
        client.close()
        self._kill_current()
        return StartAttempt(port, process.pid, outcome, detail)

    def _wait_ready(self, client: ToxiproxyClient) -> tuple[str, str]:
        assert self.process is not None
        deadline = time.monotonic() + self.ready_timeout_s
        last = "no answer yet"
        while time.monotonic() < deadline:
            log = self.log_text()
            if "Server finished with error" in log or "address already in use" in log:
                return "api port taken", _last_error(log)
            if self.process.poll() is not None:
                return "exited", f"exit status {self.process.returncode}: {log.strip()[-300:]}"
            try:
                version = client.version(timeout_s=0.5)
            except ToxiproxyError as error:
                last = str(error)
                time.sleep(0.01)
                continue
            owner = processes.owns_listener(self.process.pid, self.port or 0)
            if owner is False:
                return "api port taken", f"GET /version answered ({version}) but from another process's socket"
            if owner is None:  # no /proc: give the listen error a moment to reach the log
                time.sleep(0.2)
                if "Server finished with error" in self.log_text():
                    return "api port taken", _last_error(self.log_text())
            self.version = version
            return "ready", version
        return "no answer", f"within {self.ready_timeout_s:g} s ({last})"

    # -- stop --------------------------------------------------------------------------------
    def _kill_current(self) -> int | None:
        process = self.process
        if process is None:
            return None
        code = processes.stop(process, grace_s=self.stop_timeout_s)
        _forget(process.pid)
        return code

    def _close_log(self) -> None:
        if self._log_fd is not None:
            os.close(self._log_fd)
            self._log_fd = None

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after ``stop_timeout_s``; the exit status (None if never started)."""
        if self._client is not None:
            self._client.close()
            self._client = None
        code = self._kill_current()
        self._close_log()
        return code

    def __enter__(self) -> ToxiproxyServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _last_error(log: str) -> str:
    for line in reversed(log.splitlines()):
        if '"level":"error"' in line:
            try:
                record = json.loads(line)
                return f"{record.get('message', '')}: {record.get('error', '')}"
            except ValueError:
                return line[-300:]
    return log.strip()[-300:]
