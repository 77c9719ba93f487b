"""The servers under test: how each is started (pinned to the server core), checked for its port, stopped."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import workload

from harness import processes
from harness.drive.simulator_process import read_first_line

from .common import AIMOCK_VERSION, HERE, HOST, MOCKSERVER_VERSION, READY_TIMEOUT_S, ROOT, SERVER_CORE, STOP_TIMEOUT_S
from .tools import ensure_aimock, ensure_mockserver


def wait_port(port: int, process: subprocess.Popen, timeout_s: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} not open after {timeout_s:.0f}s")


@dataclass
class Running:
    process: subprocess.Popen
    urls: dict[str, str]  # protocol -> base URL
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        process = self.process
        processes.stop(process, grace_s=STOP_TIMEOUT_S)  # SIGTERM, then SIGKILL after the grace
        if process.stdout:
            process.stdout.close()


def spawn(command: list[str], log_path: Path, *, cwd: Path = ROOT, env: dict | None = None, stdout_pipe: bool = False) -> subprocess.Popen:
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, *command],
            cwd=cwd,
            env=env,
            start_new_session=True,
            stdout=subprocess.PIPE if stdout_pipe else log_file,
            stderr=log_file,
            text=stdout_pipe or None,
        )


def listening(process: subprocess.Popen, log_path: Path, port: int, protocol: str, ready=lambda: None) -> Running:
    """The started server, once its port is open and ``ready()`` passed; stopped if either fails."""
    running = Running(process, {}, log_path)
    try:
        wait_port(port, process)
        ready()
    except Exception:
        running.stop()
        raise
    running.urls[protocol] = f"{'https' if protocol == 'h2-tls' else 'http'}://{HOST}:{port}"
    return running


class Server:
    name = ""
    title = ""

    def unsupported(self, protocol: str) -> str | None:
        """A reason the protocol cannot be measured, known before starting (None: try it)."""
        return None

    def start(self, protocol: str, workdir: Path) -> Running:
        raise NotImplementedError

    def explain(self, protocol: str) -> str:
        """What is known about a failed check (appended to the observed failure)."""
        return ""


class Streamchaos(Server):
    name = "streamchaos"
    title = "streamchaos (trio+h2+h11)"

    def __init__(self, extra_args: list[str] | None = None, profile_dir: Path | None = None, name: str = "", title: str = "") -> None:
        self.extra_args = extra_args or []
        self.profile_dir = profile_dir
        self.name = name or self.name
        self.title = title or self.title

    def start(self, protocol: str, workdir: Path) -> Running:
        python = [sys.executable]
        if self.profile_dir is not None:
            python += ["-m", "cProfile", "-o", str(self.profile_dir / f"{self.name}-{protocol}.prof")]
        command = [*python, "-m", "harness.cli", "serve", "--host", HOST, *self.extra_args]
        if protocol == "h2-tls":
            command.append("--tls")
        log_path = workdir / f"{self.name}-{protocol}.log"
        process = spawn(command, log_path, stdout_pipe=True)
        line = read_first_line(process, READY_TIMEOUT_S)
        running = Running(process, {}, log_path)
        if not line:
            running.stop()
            raise RuntimeError(f"streamchaos serve did not start: {log_path.read_text()[-500:]}")
        port = int(json.loads(line)["base_url"].rsplit(":", 1)[1])
        scheme = "https" if protocol == "h2-tls" else "http"
        running.urls[protocol] = f"{scheme}://{HOST}:{port}"
        return running


class Hypercorn(Server):
    name = "hypercorn"
    title = "hypercorn 0.18 trio (ASGI ref)"

    def start(self, protocol: str, workdir: Path) -> Running:
        from simulator.service import DEFAULT_TLS_DIR
        from simulator.tls import ensure_certificates

        port = processes.free_port(HOST)
        hypercorn = str(Path(sys.executable).with_name("hypercorn"))
        command = [sys.executable, hypercorn] if not os.access(hypercorn, os.X_OK) else [hypercorn]
        command += ["--worker-class", "trio", "--workers", "0", "--log-level", "WARNING"]
        if protocol == "h2-tls":
            files = ensure_certificates(DEFAULT_TLS_DIR)
            command += ["--bind", f"{HOST}:{port}", "--certfile", str(files.cert_file), "--keyfile", str(files.key_file)]
        else:
            command += ["--bind", f"{HOST}:{port}"]
        command.append("hypercorn_app:app")
        log_path = workdir / f"hypercorn-{protocol}.log"
        return listening(spawn(command, log_path, cwd=HERE), log_path, port, protocol)


class Aimock(Server):
    name = "aimock"
    title = f"aimock {AIMOCK_VERSION} (node)"

    def __init__(self) -> None:
        self.cli, self.why_not = ensure_aimock()

    def unsupported(self, protocol: str) -> str | None:
        if self.cli is None:
            return f"not installed: {self.why_not}"
        if protocol != "h1":
            return "aimock serves plain HTTP/1.1 only (node http.createServer; no TLS, no HTTP/2)"
        return None

    def start(self, protocol: str, workdir: Path) -> Running:
        # aimock sends message_start, content_block_start, one delta per chunk, content_block_stop,
        # message_delta and message_stop: 95 deltas make 100 events. Same text, cut in 95 chunks.
        text = workload.reference_text()
        deltas = workload.EVENTS - 5
        chunk = -(-len(text) // deltas)
        text = text.ljust(chunk * deltas)[: chunk * deltas]
        fixtures = workdir / "aimock-fixtures.json"
        fixtures.write_text(json.dumps({"fixtures": [{"match": {"userMessage": "streamchaos benchmark"}, "response": {"content": text}}]}))
        port = processes.free_port(HOST)
        command = [
            "node",
            str(self.cli),
            "--host",
            HOST,
            "--port",
            str(port),
            "--fixtures",
            str(fixtures),
            "--chunk-size",
            str(chunk),
            "--log-level",
            "warn",
        ]
        log_path = workdir / f"aimock-{protocol}.log"
        env = {k: v for k, v in os.environ.items() if k != "AIMOCK_API_KEYS"}
        return listening(spawn(command, log_path, env=env), log_path, port, protocol)


class MockServer(Server):
    name = "mockserver"
    title = f"MockServer {MOCKSERVER_VERSION} (JVM)"

    def __init__(self) -> None:
        self.jar, self.why_not = ensure_mockserver()

    def unsupported(self, protocol: str) -> str | None:
        if self.jar is None:
            return f"not installed: {self.why_not}"
        return None  # try every protocol: the curl check says what it does

    def explain(self, protocol: str) -> str:
        if protocol == "h2c":
            return "MockServer speaks HTTP/2 only after TLS ALPN, not h2c with prior knowledge"
        if protocol == "h2-tls":
            return (
                "ALPN h2 is negotiated and a plain httpResponse works over h2, but an httpSseResponse "
                "stream on h2 ends without any frame (any closeConnection setting)"
            )
        return ""

    def start(self, protocol: str, workdir: Path) -> Running:
        port = processes.free_port(HOST)
        command = ["java", "-Dmockserver.logLevel=WARN", "-jar", str(self.jar), "-serverPort", str(port), "-logLevel", "WARN"]
        log_path = workdir / f"mockserver-{protocol}.log"
        return listening(spawn(command, log_path), log_path, port, protocol, ready=lambda: self._expect(port))

    @staticmethod
    def _expect(port: int) -> None:
        """One expectation: POST /v1/messages answers with the simulator's 100 events as SSE."""
        import urllib.request

        from simulator.sse import decode_all

        headers, events = workload.reference_reply()
        sse_events = []
        for name, data in events:
            (event,) = list(decode_all(data))
            sse_events.append({"event": name, "data": event.data})
        extra = {k.decode(): [v.decode()] for k, v in headers if k not in (b"content-type", b"cache-control")}
        expectation = {
            "httpRequest": {"method": "POST", "path": workload.PATH},
            "httpSseResponse": {"statusCode": 200, "headers": extra, "events": sse_events, "closeConnection": False},
        }
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            request = urllib.request.Request(
                f"http://{HOST}:{port}/mockserver/expectation",
                data=json.dumps(expectation).encode(),
                method="PUT",
                headers={"content-type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    if response.status in (200, 201):
                        return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
