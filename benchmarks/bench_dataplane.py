"""Data-plane throughput: 100-event streaming answers on h2c, HTTP/1.1 and h2+TLS.

For each server and protocol: start the server pinned to core 0 (``taskset -c 0``), check with curl
that one answer really is 100 SSE events (and measure the mean event size), warm up, then run
``h2load`` pinned to core 1 three times and keep the median run (by answers/s). Reported per cell:
answers/s, events/s, p50/p99 latency (from h2load's per-request ``--log-file``), the server's CPU
(user+sys seconds per 1000 answers, from /proc/<pid>/stat) and how busy core 0 was with other
processes during the run (this machine may be shared; a high value makes the cell noisy).

Servers:
  streamchaos      our simulator (``python -m harness.cli serve``), default coalescing (one write per answer here)
  streamchaos-fpe  the same with ``--frame-per-event``: one DATA frame / chunk per SSE event, like the hypercorn
                   reference (events due at the same moment share a socket write); compared with hypercorn
                   and with our coalesced path under "Per-event path"

Then the paced benchmark (``bench_paced.py``: N streams at 50 events/s) adds its rows (``--paced-streams``).
  hypercorn        hypercorn 0.18 trio worker + a plain ASGI app streaming the same bytes (benchmarks/hypercorn_app.py)
  aimock           @copilotkit/aimock from npm, an equivalent 100-event Anthropic answer (HTTP/1.1 only)
  mockserver       MockServer (Maven Central jar-with-dependencies), httpSseResponse with the same 100 events

A cell that cannot be measured says why (``n/a: ...``). A run with any failed request is marked
INVALID and not used for the targets.

    .venv/bin/python benchmarks/bench_dataplane.py [--quick] [--servers streamchaos,hypercorn] [--protocols h2c,h1]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / ".cache"
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(ROOT))

import workload  # noqa: E402
from harness.drive.simulator_process import read_first_line  # noqa: E402

PROTOCOLS = ("h2c", "h1", "h2-tls")
PROTOCOL_TITLES = {"h2c": "h2c", "h1": "HTTP/1.1", "h2-tls": "h2+TLS"}
SERVERS = ("streamchaos", "streamchaos-fpe", "hypercorn", "aimock", "mockserver")
SERVER_CORE = "0"
LOAD_CORE = "1"
HOST = "127.0.0.1"
AIMOCK_VERSION = "1.43.0"
# 7.x is published without its parent POM (org.mock-server:mockserver:pom), so it cannot be resolved.
MOCKSERVER_VERSION = "6.1.0"
TARGETS = {"h2c": 1200.0, "h1": 900.0}
TARGET_RATIO = 1.5
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- tools ---------------------------------------------------------------------------------------
def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_apt_tools() -> None:
    """h2load (nghttp2-client), curl and taskset (util-linux) come from Debian; install if missing."""
    wanted = {"h2load": "nghttp2-client", "curl": "curl", "taskset": "util-linux"}
    missing = sorted({package for tool, package in wanted.items() if shutil.which(tool) is None})
    if not missing:
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise SystemExit(f"missing tools {missing} and no root apt-get to install them")
    log(f"installing {' '.join(missing)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, timeout=600, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", *missing], check=True, timeout=600, env=env, stdout=subprocess.DEVNULL)
    for tool in wanted:
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} still missing after apt-get install")


def ensure_aimock() -> tuple[Path | None, str]:
    """The aimock CLI from npm into benchmarks/.cache/aimock; (path, '') or (None, why not)."""
    directory = CACHE / "aimock"
    cli = directory / "node_modules" / "@copilotkit" / "aimock" / "dist" / "cli.js"
    if cli.exists():
        return cli, ""
    if shutil.which("npm") is None or shutil.which("node") is None:
        return None, "node/npm not installed"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "package.json").write_text('{"name": "streamchaos-bench-aimock", "private": true}\n')
    log(f"installing @copilotkit/aimock@{AIMOCK_VERSION} from npm")
    try:
        result = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", f"@copilotkit/aimock@{AIMOCK_VERSION}"],
            cwd=directory, capture_output=True, text=True, timeout=600,
        )
    except subprocess.TimeoutExpired:
        return None, "npm install timed out"
    if result.returncode != 0 or not cli.exists():
        return None, f"npm install failed: {result.stderr.strip()[-300:]}"
    return cli, ""


def ensure_mockserver() -> tuple[Path | None, str]:
    """MockServer's jar-with-dependencies from Maven Central into benchmarks/.cache/mockserver."""
    directory = CACHE / "mockserver"
    jar = directory / f"mockserver-netty-{MOCKSERVER_VERSION}-jar-with-dependencies.jar"
    if jar.exists():
        return jar, ""
    if shutil.which("java") is None:
        return None, "java not installed"
    if shutil.which("mvn") is None:
        return None, "mvn not installed"
    directory.mkdir(parents=True, exist_ok=True)
    log(f"fetching org.mock-server:mockserver-netty:{MOCKSERVER_VERSION}:jar-with-dependencies with mvn")
    command = [
        "mvn", "-q", "-B", f"-Dmaven.repo.local={directory / 'm2'}",
        "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy",
        f"-Dartifact=org.mock-server:mockserver-netty:{MOCKSERVER_VERSION}:jar:jar-with-dependencies",
        f"-DoutputDirectory={directory}",
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        return None, "mvn dependency:copy timed out"
    if result.returncode != 0 or not jar.exists():
        return None, f"mvn dependency:copy failed: {(result.stdout + result.stderr).strip()[-300:]}"
    return jar, ""


# -- processes -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


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
        if process.poll() is None:
            try:
                os.kill(process.pid, signal.SIGTERM)
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(STOP_TIMEOUT_S)
            except ProcessLookupError:
                pass
        if process.stdout:
            process.stdout.close()


def spawn(command: list[str], log_path: Path, *, cwd: Path = ROOT, env: dict | None = None, stdout_pipe: bool = False) -> subprocess.Popen:
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, *command], cwd=cwd, env=env, start_new_session=True,
            stdout=subprocess.PIPE if stdout_pipe else log_file, stderr=log_file, text=stdout_pipe or None,
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

        port = free_port()
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
        port = free_port()
        command = ["node", str(self.cli), "--host", HOST, "--port", str(port), "--fixtures", str(fixtures),
                   "--chunk-size", str(chunk), "--log-level", "warn"]
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
            return ("ALPN h2 is negotiated and a plain httpResponse works over h2, but an httpSseResponse "
                    "stream on h2 ends without any frame (any closeConnection setting)")
        return ""

    def start(self, protocol: str, workdir: Path) -> Running:
        port = free_port()
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
                f"http://{HOST}:{port}/mockserver/expectation", data=json.dumps(expectation).encode(), method="PUT",
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


# -- checks and measurements -----------------------------------------------------------------------
@dataclass
class Check:
    ok: bool
    reason: str = ""
    events: int = 0
    body_bytes: int = 0
    mean_event_bytes: float = 0.0
    http_version: str = ""


def curl_check(url: str, protocol: str, body_file: Path, workdir: Path) -> Check:
    from simulator.sse import decode_all

    out = workdir / f"curl-{protocol}.out"
    command = ["curl", "-sS", "-X", "POST", "--max-time", "20", "-o", str(out), "-w", "%{http_code} %{http_version}",
               "-H", f"x-api-key: {workload.API_KEY}", "-H", "content-type: application/json", "--data-binary", f"@{body_file}"]
    command += {"h2c": ["--http2-prior-knowledge"], "h1": ["--http1.1"], "h2-tls": ["-k", "--http2"]}[protocol]
    command.append(url + workload.PATH)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return Check(False, "curl timed out (30 s)")
    if result.returncode != 0:
        return Check(False, f"curl exit {result.returncode}: {result.stderr.strip()[:160]}")
    status, _, version = result.stdout.partition(" ")
    body = out.read_bytes() if out.exists() else b""
    want_version = "1.1" if protocol == "h1" else "2"
    if version != want_version:
        return Check(False, f"answered over HTTP/{version}, not HTTP/{want_version}")
    if status != "200":
        return Check(False, f"status {status}: {body[:160]!r}")
    events = list(decode_all(body))
    check = Check(True, "", len(events), len(body), len(body) / max(1, len(events)), version)
    if len(events) != workload.EVENTS or events[-1].name != "message_stop":
        check.ok = False
        check.reason = f"{len(events)} events (want {workload.EVENTS}, last message_stop), {len(body)} B"
    return check


def proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15)


def core_busy_seconds(core: str) -> float:
    with open("/proc/stat") as handle:
        for line in handle:
            if line.startswith(f"cpu{core} "):
                values = [int(v) for v in line.split()[1:]]
                idle = values[3] + values[4]
                return (sum(values[:8]) - idle) / CLK_TCK
    return 0.0


def machine_busy(window_s: float = 1.0) -> float:
    """Fraction of all cores busy over ``window_s`` (our servers are idle while this is sampled)."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as handle:
            values = [int(v) for v in handle.readline().split()[1:]]
        return sum(values[:8]), values[3] + values[4]

    total0, idle0 = sample()
    time.sleep(window_s)
    total1, idle1 = sample()
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def wait_quiet(threshold: float, timeout_s: float) -> float:
    """Wait (bounded) until other processes leave the machine mostly idle; return the last busy fraction."""
    deadline = time.monotonic() + timeout_s
    busy = machine_busy()
    while busy > threshold and time.monotonic() < deadline:
        busy = machine_busy()
    return busy


@dataclass
class Run:
    answers_per_s: float
    events_per_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    cpu_s_per_1000: float
    cpu_util: float
    core0_other: float
    wall_s: float
    total: int
    succeeded: int
    failed: int
    errored: int
    timeout: int
    valid: bool
    note: str = ""
    protocol_seen: str = ""
    busy_before: float = 0.0
    answers_per_cpu_s: float = 0.0

    def __post_init__(self) -> None:
        self.answers_per_cpu_s = 1000.0 / self.cpu_s_per_1000 if self.cpu_s_per_1000 else 0.0


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))  # nearest rank
    return ordered[index]


def h2load(url: str, protocol: str, body_file: Path, requests: int, clients: int, server_pid: int, events: int,
           body_bytes: int, workdir: Path, tag: str) -> Run:
    log_file = workdir / f"h2load-{tag}.tsv"
    command = ["taskset", "-c", LOAD_CORE, "h2load", "-n", str(requests), "-c", str(clients), "-m", "1",
               "-d", str(body_file), "-H", f"x-api-key: {workload.API_KEY}", "-H", "content-type: application/json",
               "--log-file", str(log_file)]
    if protocol == "h1":
        command.append("--h1")
    command.append(url + workload.PATH)
    cpu_before, core_before, t0 = proc_cpu_seconds(server_pid), core_busy_seconds(SERVER_CORE), time.monotonic()
    timeout_s = max(120.0, requests / 20.0)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        output += f"\n[killed after {timeout_s:.0f}s]"
    wall = time.monotonic() - t0
    cpu = proc_cpu_seconds(server_pid) - cpu_before
    core_busy = core_busy_seconds(SERVER_CORE) - core_before
    (workdir / f"h2load-{tag}.txt").write_text(" ".join(command) + "\n\n" + output)
    return parse_h2load(output, log_file, protocol, requests, events, body_bytes, cpu, core_busy, wall)


def parse_h2load(output: str, log_file: Path, protocol: str, requests: int, events: int, body_bytes: int,
                 cpu: float, core_busy: float, wall: float) -> Run:
    def number(pattern: str, default: float = 0.0) -> float:
        match = re.search(pattern, output)
        return float(match.group(1)) if match else default

    rate = number(r"finished in [\d.]+\w*, ([\d.]+) req/s")
    counts = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", output)
    total, _, done, succeeded, failed, errored, timeouts = (int(v) for v in counts.groups()) if counts else (requests, 0, 0, 0, requests, 0, 0)
    status = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", output)
    statuses = [int(v) for v in status.groups()] if status else [0, 0, 0, 0]
    data = re.search(r"\((\d+)\) data", output)
    data_bytes = int(data.group(1)) if data else 0
    seen = re.search(r"Application protocol: (\S+)", output)
    protocol_seen = seen.group(1) if seen else "?"
    note = ""
    valid = succeeded == total == requests and errored == 0 and timeouts == 0
    if not valid and protocol == "h1" and done == total == requests and errored == timeouts == 0 and sum(statuses) == 0:
        # h2load reads the status code in llhttp's on_status callback, which never fires for a status
        # line without a reason phrase ("HTTP/1.1 200 " as h11 writes it): every answer then counts as
        # "failed" with no status. All answers finished; accept them if every body is complete.
        if body_bytes and abs(data_bytes - requests * body_bytes) <= 0.01 * requests * body_bytes:
            valid, succeeded, failed = True, total, 0
            note = "h1 status line has no reason phrase (h2load cannot see the status); all bodies complete by byte count"
        else:
            note = f"h1 bodies: {data_bytes} B for {requests} answers, want {requests * body_bytes}"
    want_protocol = {"h2c": "h2c", "h1": "http/1.1", "h2-tls": "h2"}[protocol]
    if protocol_seen != want_protocol:
        valid = False
        note = (note + "; " if note else "") + f"h2load spoke {protocol_seen}, not {want_protocol}"
    durations = []
    if log_file.exists():
        for line in log_file.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 3:
                durations.append(int(parts[2]) / 1000.0)
    return Run(
        answers_per_s=rate, events_per_s=rate * events,
        p50_ms=percentile(durations, 0.50), p99_ms=percentile(durations, 0.99),
        mean_ms=statistics.fmean(durations) if durations else float("nan"),
        cpu_s_per_1000=cpu / max(1, succeeded) * 1000, cpu_util=cpu / wall if wall else 0.0,
        core0_other=max(0.0, core_busy - cpu) / wall if wall else 0.0, wall_s=wall,
        total=total, succeeded=succeeded, failed=failed, errored=errored, timeout=timeouts,
        valid=valid, note=note, protocol_seen=protocol_seen,
    )


@dataclass
class Cell:
    server: str
    title: str
    protocol: str
    status: str  # "ok" | "invalid" | "n/a"
    reason: str = ""
    check: Check | None = None
    median: Run | None = None
    runs: list[Run] = field(default_factory=list)


def measure(server: Server, protocol: str, args: argparse.Namespace, workdir: Path, body_file: Path) -> Cell:
    cell = Cell(server.name, server.title, protocol, "n/a")
    why = server.unsupported(protocol)
    if why:
        cell.reason = why
        return cell
    try:
        running = server.start(protocol, workdir)
    except Exception as error:  # noqa: BLE001 - any start failure is reported, not raised
        cell.reason = f"did not start: {error}"[:300]
        return cell
    try:
        url = running.urls[protocol]
        check = curl_check(url, protocol, body_file, workdir / server.name)
        cell.check = check
        if not check.ok:
            cell.reason = f"curl check failed: {check.reason}"
            if server.explain(protocol):
                cell.reason += f" ({server.explain(protocol)})"
            return cell
        log(f"  {server.name} {protocol}: {check.events} events, {check.body_bytes} B ({check.mean_event_bytes:.1f} B/event); warm-up {args.warmup}")
        h2load(url, protocol, body_file, args.warmup, args.clients, running.pid, check.events, check.body_bytes,
               workdir / server.name, f"{protocol}-warmup")
        for index in range(args.repeats):
            for attempt in range(args.noise_retries + 1):
                busy = wait_quiet(args.quiet, args.quiet_wait)
                run = h2load(url, protocol, body_file, args.requests, args.clients, running.pid, check.events,
                             check.body_bytes, workdir / server.name, f"{protocol}-{index + 1}")
                run.busy_before = busy
                if run.core0_other <= args.max_noise or attempt == args.noise_retries:
                    break
                log(f"    run {index + 1}: {run.answers_per_s:8.1f} answers/s but other processes took {run.core0_other:.0%} of core 0: again")
            cell.runs.append(run)
            flag = "" if run.valid else f"  INVALID ({run.failed} failed, {run.errored} errored, {run.timeout} timeout) {run.note}"
            log(f"    run {index + 1}: {run.answers_per_s:8.1f} answers/s  p50 {run.p50_ms:6.1f} ms  p99 {run.p99_ms:6.1f} ms  "
                f"cpu {run.cpu_s_per_1000:5.2f} s/1000 ({run.answers_per_cpu_s:6.0f} answers/CPU-s)  core0-other {run.core0_other:4.0%}  "
                f"machine busy before {busy:4.0%}{flag}")
        valid = [r for r in cell.runs if r.valid]
        if len(valid) < len(cell.runs):
            cell.status = "invalid"
            bad = next(r for r in cell.runs if not r.valid)
            cell.reason = f"{len(cell.runs) - len(valid)}/{len(cell.runs)} runs had failed requests ({bad.failed} failed, {bad.errored} errored, {bad.timeout} timeout) {bad.note}".strip()
        else:
            cell.status = "ok"
            notes = {r.note for r in valid if r.note}
            cell.reason = "; ".join(sorted(notes))
        ordered = sorted(cell.runs, key=lambda r: r.answers_per_s)
        cell.median = ordered[len(ordered) // 2]
        if cell.median.core0_other > args.max_noise:
            noisy = f"noisy: other processes took {cell.median.core0_other:.0%} of core 0 during the median run"
            cell.reason = f"{cell.reason}; {noisy}" if cell.reason else noisy
        return cell
    finally:
        running.stop()


# -- output --------------------------------------------------------------------------------------
def table(cells: list[Cell]) -> str:
    reference = {c.protocol: c.median.answers_per_s for c in cells if c.server == "hypercorn" and c.status == "ok" and c.median}
    reference_cpu = {c.protocol: c.median.answers_per_cpu_s for c in cells if c.server == "hypercorn" and c.status == "ok" and c.median}
    header = ("server", "protocol", "answers/s", "events/s", "p50 ms", "p99 ms", "CPU s/1k ans", "ans/CPU-s", "CPU util",
              "core0 other", "B/event", "vs hypercorn", "status")
    rows = []
    for c in cells:
        if c.median is None:
            rows.append((c.title, PROTOCOL_TITLES[c.protocol], *["-"] * (len(header) - 3), f"n/a: {c.reason}"))
            continue
        m = c.median
        ratio = "-"
        if c.protocol in reference and c.server != "hypercorn":
            ratio = f"{m.answers_per_s / reference[c.protocol]:.2f}x ({m.answers_per_cpu_s / reference_cpu[c.protocol]:.2f}x cpu)"
        status = "ok" if c.status == "ok" else f"INVALID: {c.reason}"
        if c.status == "ok" and c.reason:
            status = "ok*"
        rows.append((
            c.title, PROTOCOL_TITLES[c.protocol], f"{m.answers_per_s:,.0f}", f"{m.events_per_s:,.0f}", f"{m.p50_ms:.1f}",
            f"{m.p99_ms:.1f}", f"{m.cpu_s_per_1000:.2f}", f"{m.answers_per_cpu_s:,.0f}", f"{m.cpu_util:.0%}", f"{m.core0_other:.0%}",
            f"{c.check.mean_event_bytes:.0f}" if c.check else "-", ratio, status,
        ))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, None, *rows]:
        if row is None:
            lines.append("-+-".join("-" * w for w in widths) + "-+-" + "-" * 6)
            continue
        lines.append(" | ".join(str(v).rjust(w) if i >= 2 else str(v).ljust(w) for i, (v, w) in enumerate(zip(row, widths))) + " | " + row[-1])
    return "\n".join(lines)


def targets(cells: list[Cell]) -> list[str]:
    by = {(c.server, c.protocol): c for c in cells}
    lines = []
    for protocol in PROTOCOLS:
        ours = by.get(("streamchaos", protocol))
        ref = by.get(("hypercorn", protocol))
        if ours is None or ours.status != "ok":
            if ours is not None:
                lines.append(f"  {PROTOCOL_TITLES[protocol]:9} streamchaos not measured validly: {ours.status} {ours.reason}")
            continue
        rate, capacity = ours.median.answers_per_s, ours.median.answers_per_cpu_s
        if protocol in TARGETS:
            want = TARGETS[protocol]
            lines.append(f"  {PROTOCOL_TITLES[protocol]:9} {rate:8,.0f} answers/s measured       >= {want:,.0f}  {'PASS' if rate >= want else 'FAIL'}"
                         f"   | {capacity:8,.0f} answers per CPU-second  {'PASS' if capacity >= want else 'FAIL'}")
        if ref is not None and ref.status == "ok":
            ratio = rate / ref.median.answers_per_s
            cpu_ratio = capacity / ref.median.answers_per_cpu_s
            lines.append(f"  {PROTOCOL_TITLES[protocol]:9} {ratio:8.2f}x hypercorn (answers/s) >= {TARGET_RATIO}x {'PASS' if ratio >= TARGET_RATIO else 'FAIL'}"
                         f"   | {cpu_ratio:8.2f}x hypercorn (per CPU-second)  {'PASS' if cpu_ratio >= TARGET_RATIO else 'FAIL'}")
    return lines


def per_event_lines(cells: list[Cell]) -> list[str]:
    """streamchaos --frame-per-event against hypercorn (one ASGI body per event) and against our own
    coalesced path, per protocol, in answers per CPU-second (the figure a loaded machine distorts least)."""
    by = {(c.server, c.protocol): c for c in cells if c.status == "ok" and c.median}
    lines = []
    for protocol in PROTOCOLS:
        fpe = by.get(("streamchaos-fpe", protocol))
        if fpe is None:
            continue
        parts = [f"  {PROTOCOL_TITLES[protocol]:9} frame-per-event {fpe.median.answers_per_cpu_s:8,.0f} answers/CPU-s"]
        ref = by.get(("hypercorn", protocol))
        if ref is not None:
            ratio = fpe.median.answers_per_cpu_s / ref.median.answers_per_cpu_s
            parts.append(f"{ratio:5.2f}x hypercorn (target >= {TARGET_RATIO}x {'PASS' if ratio >= TARGET_RATIO else 'FAIL'}; "
                         f"{fpe.median.answers_per_s / ref.median.answers_per_s:.2f}x in answers/s)")
        coalesced = by.get(("streamchaos", protocol))
        if coalesced is not None:
            parts.append(f"{fpe.median.answers_per_cpu_s / coalesced.median.answers_per_cpu_s:5.2f}x our coalesced path")
        lines.append(" | ".join(parts))
    return lines


def source_state() -> str:
    """The commit the simulator was run from, and whether simulator/ or harness/ had local changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "simulator", "harness"], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return f"{commit or 'unknown'}{' + local changes in ' + str(len(dirty.splitlines())) + ' file(s)' if dirty.strip() else ''}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 run of 1000 answers per cell after a 300-answer warm-up")
    parser.add_argument("--requests", type=int, default=None, help="answers per measured run (default 5000)")
    parser.add_argument("--clients", type=int, default=20, help="h2load connections (default 20)")
    parser.add_argument("--repeats", type=int, default=None, help="measured runs per cell; the median is reported (default 3)")
    parser.add_argument("--warmup", type=int, default=None, help="answers in the unmeasured warm-up run (default 2000)")
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"comma-separated subset of {','.join(SERVERS)}")
    parser.add_argument("--protocols", default=",".join(PROTOCOLS), help=f"comma-separated subset of {','.join(PROTOCOLS)}")
    parser.add_argument("--quiet", type=float, default=0.15, help="wait before each run until the machine is at most this busy (default 0.15)")
    parser.add_argument("--quiet-wait", type=float, default=60.0, help="...but at most this many seconds (default 60)")
    parser.add_argument("--max-noise", type=float, default=0.10, help="a run where other processes took more of core 0 is repeated (default 0.10)")
    parser.add_argument("--noise-retries", type=int, default=2, help="...at most this many times (default 2)")
    parser.add_argument("--sim-args", default="", help="extra arguments for `streamchaos serve` (e.g. '--frame-per-event')")
    parser.add_argument("--paced-streams", default="100,300,1000", help="then the paced benchmark (bench_paced.py) for these stream counts; '' skips it")
    parser.add_argument("--profile", type=Path, default=None, help="run streamchaos under cProfile, .prof files into this directory")
    parser.add_argument("--out", type=Path, default=None, help="directory for logs and the JSON result (default results/bench-<time>)")
    args = parser.parse_args(argv)
    args.requests = args.requests or (1000 if args.quick else 5000)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.warmup = args.warmup if args.warmup is not None else (300 if args.quick else 2000)
    servers = [s for s in args.servers.split(",") if s]
    protocols = [p for p in args.protocols.split(",") if p]
    for name in servers:
        if name not in SERVERS:
            parser.error(f"unknown server {name!r}")
    for name in protocols:
        if name not in PROTOCOLS:
            parser.error(f"unknown protocol {name!r}")
    if os.cpu_count() is None or os.cpu_count() < 2:
        log("warning: fewer than 2 cores; server and h2load share a core")

    ensure_apt_tools()
    out = args.out or ROOT / "results" / time.strftime("bench-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    body_file = out / "request.json"
    body_file.write_bytes(workload.request_body())

    factories = {
        "streamchaos": lambda: Streamchaos(args.sim_args.split(), args.profile.resolve() if args.profile else None),
        # One write per SSE event, as the hypercorn reference does (one http.response.body per event).
        "streamchaos-fpe": lambda: Streamchaos(
            [*args.sim_args.split(), "--frame-per-event"], args.profile.resolve() if args.profile else None,
            "streamchaos-fpe", "streamchaos --frame-per-event",
        ),
        "hypercorn": Hypercorn,
        "aimock": Aimock,
        "mockserver": MockServer,
    }
    cells: list[Cell] = []
    started = time.monotonic()
    source = source_state()
    log(f"h2load -n {args.requests} -c {args.clients} -m 1 on core {LOAD_CORE}; servers on core {SERVER_CORE}; "
        f"{args.repeats} run(s) per cell after a {args.warmup}-answer warm-up; logs in {out}")
    for name in servers:
        server = factories[name]()
        (out / name).mkdir(exist_ok=True)
        for protocol in protocols:
            log(f"{name} / {PROTOCOL_TITLES[protocol]}")
            cell = measure(server, protocol, args, out, body_file)
            if cell.status == "n/a":
                log(f"  n/a: {cell.reason}")
            cells.append(cell)

    loadavg = Path("/proc/loadavg").read_text().split()[:3]
    result = {
        "requests": args.requests, "clients": args.clients, "repeats": args.repeats, "warmup": args.warmup,
        "events_per_answer": workload.EVENTS, "loadavg_end": loadavg, "source": source, "seconds": round(time.monotonic() - started, 1),
        "cells": [asdict(c) for c in cells],
    }
    (out / "dataplane.json").write_text(json.dumps(result, indent=1, default=str))

    print()
    print(f"Data plane: {workload.EVENTS}-event streaming answers; h2load -n {args.requests} -c {args.clients} -m 1 "
          f"(median of {args.repeats}); server on core {SERVER_CORE}, h2load on core {LOAD_CORE}; streamchaos at {source}")
    print(table(cells))
    notes = [c for c in cells if c.status == "ok" and c.reason]
    for c in notes:
        print(f"  ok* {c.server} {PROTOCOL_TITLES[c.protocol]}: {c.reason}")
    print("CPU s/1k ans = server user+sys CPU seconds per 1000 answers (/proc/<pid>/stat); CPU util = server CPU / wall;")
    print("ans/CPU-s = answers per second of server CPU: what one dedicated core would give if the server is CPU-bound;")
    print("core0 other = CPU on the server's core used by other processes during the run (the machine may be shared: noise if high).")
    print(f"load average at the end: {' '.join(loadavg)}; results in {out}")
    lines = targets(cells)
    if lines:
        print("Targets (streamchaos, one core):")
        print("\n".join(lines))
    per_event = per_event_lines(cells)
    if per_event:
        print("Per-event path (one DATA frame / chunk per event), same run:")
        print("\n".join(per_event))
    if args.paced_streams:
        import bench_paced  # paced streams as their own rows: N streams at 50 events/s (see bench_paced.py)

        print()
        print("Paced: " + bench_paced.__doc__.split("\n\n")[0].split(": ", 1)[1])
        bench_paced.main(["--streams", args.paced_streams, "--json", str(out / "paced.json")])
    return 0 if all(c.status != "invalid" for c in cells) else 1


if __name__ == "__main__":
    sys.exit(main())
