"""One measured run: the curl check that an answer is what it should be, then h2load on the load core."""

from __future__ import annotations

import re
import signal
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import workload

from harness.measure.metrics import percentile
from harness.processes import stop

from .common import LOAD_CORE, SERVER_CORE
from .machine import core_busy_seconds, proc_cpu_seconds


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
    command = [
        "curl",
        "-sS",
        "-X",
        "POST",
        "--max-time",
        "20",
        "-o",
        str(out),
        "-w",
        "%{http_code} %{http_version}",
        "-H",
        f"x-api-key: {workload.API_KEY}",
        "-H",
        "content-type: application/json",
        "--data-binary",
        f"@{body_file}",
    ]
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


def h2load(
    url: str, protocol: str, body_file: Path, requests: int, clients: int, server_pid: int, events: int, body_bytes: int, workdir: Path, tag: str
) -> Run:
    log_file = workdir / f"h2load-{tag}.tsv"
    command = [
        "taskset",
        "-c",
        LOAD_CORE,
        "h2load",
        "-n",
        str(requests),
        "-c",
        str(clients),
        "-m",
        "1",
        "-d",
        str(body_file),
        "-H",
        f"x-api-key: {workload.API_KEY}",
        "-H",
        "content-type: application/json",
        "--log-file",
        str(log_file),
    ]
    if protocol == "h1":
        command.append("--h1")
    command.append(url + workload.PATH)
    cpu_before, core_before, t0 = proc_cpu_seconds(server_pid), core_busy_seconds(SERVER_CORE), time.monotonic()
    timeout_s = max(120.0, requests / 20.0)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        stop(process, first=signal.SIGKILL)
        output, _ = process.communicate()
        output += f"\n[killed after {timeout_s:.0f}s]"
    wall = time.monotonic() - t0
    cpu = proc_cpu_seconds(server_pid) - cpu_before
    core_busy = core_busy_seconds(SERVER_CORE) - core_before
    (workdir / f"h2load-{tag}.txt").write_text(" ".join(command) + "\n\n" + output)
    return parse_h2load(output, log_file, protocol, requests, events, body_bytes, cpu, core_busy, wall)


def parse_h2load(
    output: str, log_file: Path, protocol: str, requests: int, events: int, body_bytes: int, cpu: float, core_busy: float, wall: float
) -> Run:
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
        answers_per_s=rate,
        events_per_s=rate * events,
        p50_ms=percentile(durations, 0.50),
        p99_ms=percentile(durations, 0.99),
        mean_ms=statistics.fmean(durations) if durations else float("nan"),
        cpu_s_per_1000=cpu / max(1, succeeded) * 1000,
        cpu_util=cpu / wall if wall else 0.0,
        core0_other=max(0.0, core_busy - cpu) / wall if wall else 0.0,
        wall_s=wall,
        total=total,
        succeeded=succeeded,
        failed=failed,
        errored=errored,
        timeout=timeouts,
        valid=valid,
        note=note,
        protocol_seen=protocol_seen,
    )
