"""Run ``streamchaos serve`` as a child process: started with a deadline, stopped by its pid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


@dataclass
class SimulatorProcess:
    args: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None
    process: subprocess.Popen | None = None
    base_url: str = ""
    control_url: str = ""
    ca_file: str = ""

    def start(self) -> "SimulatorProcess":
        command = [sys.executable, "-m", "harness.cli", "serve", *self.args]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env, text=True, start_new_session=True,
            cwd=Path(__file__).resolve().parent.parent, preexec_fn=_die_with_parent if _in_main_thread() else None,
        )
        line = read_first_line(self.process, READY_TIMEOUT_S)
        if not line:
            self.stop()
            raise RuntimeError(f"streamchaos serve did not start: {self.process.stderr.read() if self.process.stderr else ''}")
        info = json.loads(line)
        self.base_url, self.control_url, self.ca_file = info["base_url"], info["control_url"], info["ca_file"]
        return self

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def journal(self, key: str | None = None, wait_closed: bool = True, timeout_s: float = 5.0) -> list[dict]:
        """The journal slice for ``key``; by default wait (bounded) until its records are closed."""
        deadline = time.monotonic() + timeout_s
        query = f"?key={urllib.request.quote(key)}" if key else ""
        while True:
            with urllib.request.urlopen(f"{self.control_url}/journal{query}", timeout=timeout_s) as response:
                records = json.load(response)["records"]
            if not wait_closed or not any(r.get("open") for r in records) or time.monotonic() > deadline:
                return records
            time.sleep(0.02)

    def load_plan(self, plan: dict) -> dict:
        """PUT a fault plan (the JSON form of FaultPlan) to the control API."""
        return self._call("PUT", "/plan", plan)

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.control_url}{path}", data=data, method=method, headers={"content-type": "application/json"})
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
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(STOP_TIMEOUT_S)
        for stream in (self.process.stdout, self.process.stderr):
            if stream:
                stream.close()
        return self.process.returncode

    def __enter__(self) -> "SimulatorProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def read_first_line(process: subprocess.Popen, timeout_s: float) -> str:
    """First stdout line, or '' if the process exits or the deadline passes."""
    import selectors

    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if selector.select(timeout=0.1):
                return process.stdout.readline()
            if process.poll() is not None:
                return ""
        return ""
    finally:
        selector.close()


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _die_with_parent() -> None:
    """In the child: SIGTERM when the parent dies, however it dies (Linux PR_SET_PDEATHSIG).
    Only when started from the main thread: the signal follows the creating *thread*'s exit."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass
