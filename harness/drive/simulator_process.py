"""Run ``streamchaos serve`` as a child process: started with a deadline, stopped by its pid."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness import processes

if TYPE_CHECKING:
    from harness.network.lab.trial import LabSession

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
JOURNAL_PAGE = 5000
MAX_JOURNAL_PAGES = 10_000


@dataclass
class SimulatorProcess:
    args: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None
    process: subprocess.Popen | None = None
    base_url: str = ""
    control_url: str = ""
    ca_file: str = ""
    control_token: str | None = None
    lab: LabSession | None = field(default=None, init=False, repr=False)  # set by the runner for lab scenarios
    _stderr: _Drain | None = field(default=None, init=False, repr=False)
    _stdout: _Drain | None = field(default=None, init=False, repr=False)

    def start(self) -> SimulatorProcess:
        command = [sys.executable, "-m", "harness.cli", "serve", *self.args]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            text=True,
            start_new_session=True,
            cwd=Path(__file__).resolve().parents[2],
            preexec_fn=processes.die_with_parent(signal.SIGTERM, outlives_thread=True),
        )
        # stderr is read all the time (a pipe nobody reads blocks the simulator once 64 KiB of
        # log fill it); the last STDERR_TAIL bytes are kept for error messages.
        self._stderr = _Drain(self.process.stderr).start()
        line = read_first_line(self.process, READY_TIMEOUT_S)
        if not line:
            self.stop()
            raise RuntimeError(f"streamchaos serve did not start: {self.stderr_tail()}")
        self._stdout = _Drain(self.process.stdout).start()  # anything printed after the ready line
        info = json.loads(line)
        self.base_url, self.control_url, self.ca_file = info["base_url"], info["control_url"], info["ca_file"]
        self.control_token = info.get("control_token")
        return self

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def journal(self, key: str | None = None, wait_closed: bool = True, timeout_s: float = 5.0) -> list[dict]:
        """The journal slice for ``key``; by default wait (bounded) until its records are closed."""
        deadline = time.monotonic() + timeout_s
        while True:
            records = self.journal_pages(key, timeout_s)
            if not wait_closed or not any(r.get("open") for r in records) or time.monotonic() > deadline:
                return records
            time.sleep(0.02)

    def journal_pages(self, key: str | None = None, timeout_s: float = 5.0) -> list[dict]:
        """Every record the simulator holds for ``key`` (all records without one), page by page."""
        records: list[dict] = []
        since = 0
        for _ in range(MAX_JOURNAL_PAGES):
            query = {"since": since, "limit": JOURNAL_PAGE, **({"key": key} if key else {})}
            request = urllib.request.Request(f"{self.control_url}/journal?{urllib.parse.urlencode(query)}", headers=self.control_headers())
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                page = json.load(response)
            records += page["records"]
            if page.get("next") is None:
                break
            since = page["next"]
        return records

    def control_headers(self) -> dict[str, str]:
        """What every control API request carries: the token, when the simulator has one."""
        return {"authorization": f"Bearer {self.control_token}"} if self.control_token else {}

    def load_plan(self, plan: dict) -> dict:
        """PUT a fault plan (the JSON form of FaultPlan) to the control API."""
        return self._call("PUT", "/plan", plan)

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.control_url}{path}", data=data, method=method, headers={"content-type": "application/json", **self.control_headers()}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            raise ValueError(json.load(error)["error"]) from None

    def open_lane(self, trial: str, host: str | None = None) -> int:
        """A port of its own for one trial (accept-time faults count that trial's connections);
        ``host``: bound to that address (the network lab's host side) instead of the simulator's."""
        return int(self._call("POST", "/lanes", {"trial": trial, **({"host": host} if host else {})})["port"])

    def close_lane(self, port: int) -> None:
        self._call("DELETE", f"/lanes/{port}")

    def lane_url(self, port: int, tls: bool) -> str:
        return f"https://localhost:{port}" if tls else f"http://127.0.0.1:{port}"

    def stop(self) -> int | None:
        if self.process is None:
            return None
        processes.stop(self.process, grace_s=STOP_TIMEOUT_S)
        for drain in (self._stdout, self._stderr):
            if drain is not None:
                drain.join(STOP_TIMEOUT_S)
        for stream in (self.process.stdout, self.process.stderr):
            if stream:
                try:
                    stream.close()
                except (OSError, ValueError):
                    pass
        return self.process.returncode

    def stderr_tail(self) -> str:
        """The simulator's last STDERR_TAIL bytes of stderr (all of it is drained)."""
        if self._stderr is None:
            return ""
        if self.process is not None and self.process.poll() is not None:
            self._stderr.join(1.0)
        return self._stderr.text()

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


STDERR_TAIL = 64 * 1024


class _Drain:
    """Read a child's text stream to its end on a daemon thread, keeping the last STDERR_TAIL characters."""

    def __init__(self, stream) -> None:
        self._raw = getattr(stream, "buffer", stream)  # bytes, in whatever pieces arrive
        self._tail = ""
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="simulator-output", daemon=True)

    def start(self) -> _Drain:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while True:
                chunk = self._raw.read1(65536)
                if not chunk:
                    return
                if isinstance(chunk, bytes):
                    chunk = chunk.decode("utf-8", "replace")
                with self._lock:
                    self._tail = (self._tail + chunk)[-STDERR_TAIL:]
        except (OSError, ValueError):
            return

    def join(self, timeout_s: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def text(self) -> str:
        with self._lock:
            return self._tail


def read_first_line(process: subprocess.Popen, timeout_s: float) -> str:
    """First stdout line, or '' if the process exits or the deadline passes."""
    import selectors

    stdout = process.stdout
    if stdout is None:
        raise ValueError("read_first_line: the process was started without stdout=PIPE")
    selector = selectors.DefaultSelector()
    selector.register(stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if selector.select(timeout=0.1):
                return stdout.readline()
            if process.poll() is not None:
                return ""
        return ""
    finally:
        selector.close()
