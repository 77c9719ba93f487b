"""Paced streaming at scale: N concurrent h2c streams at 50 events/s on one server core.

The simulator (``streamchaos serve --tokens-per-second 50``, pinned to core 0) answers N
concurrent streams opened at once by ``h2load`` (core 1; ``-c C -m N/C``). Every answer has
``WORDS`` one-token deltas, so after its first event each stream sends 50 events/s. A fault plan
resets a share of the streams (``rst_stream`` after ``CUT`` events, ``probability`` 0.5).

Measured from the server's own journal (``--journal FILE``; every write is noted with the time it
was handed to the kernel), per N:

- events/s delivered while all N streams run;
- lateness of each paced event against its schedule: the event's write time minus (the start of
  the stream's schedule, the request record's ``t_schedule`` + the event's offset in the
  simulator's own pacing schedule, ``event_delays``); p50 / p99 / max;
- server CPU (user+sys from /proc) per second and per 1000 events, and peak RSS (VmHWM);
- cut precision: every faulted stream has exactly ``CUT`` events out when the fault fired, and
  none after it.

Lateness is measured twice: the server's (bytes in the kernel, from the journal) for every event,
and the client's (bytes *received*) on ``PROBE`` of the N streams, which a separate probe process
(``paced_probe.py``, on the load core, beside h2load) opens on its own connection and times by the
machine's monotonic clock, against the same schedule. "Steady" is the server's lateness once every
stream has started (the start-up burst of N requests excluded). The load generator's CPU (h2load)
is printed too: a client short of CPU would show as client lateness the server does not have.
On a shared machine the figures depend on what else runs on core 0: the load average and core 0's
share taken by others are printed beside each row.

    .venv/bin/python benchmarks/bench_paced.py [--streams 100,300,1000] [--words 150] [--root DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from harness.measure.metrics import percentile  # noqa: E402
from harness.processes import stop  # noqa: E402
from simulator.api.router import MessagesApi, StreamReply, describe  # noqa: E402
from simulator.config import SimulatorConfig  # noqa: E402
from simulator.transport.schedule import Pacing, event_delays  # noqa: E402

RATE = 50.0
CUT = 100
PROBE = 20  # streams of the N whose arrival the client probe times
SERVER_CORE, LOAD_CORE = "0", "1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
API_KEY = "bench-paced"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def request_body(words: int) -> bytes:
    prompt = f"streamchaos paced benchmark\n@sc words={words} deltas={words}"
    return json.dumps(
        {"model": "claude-sonnet-4-6", "max_tokens": 4096, "stream": True, "messages": [{"role": "user", "content": prompt}]}, separators=(",", ":")
    ).encode()


def schedule(body: bytes) -> list[float]:
    """Each event's offset (seconds) from the start of its reply, as the simulator paces it."""
    api = MessagesApi(SimulatorConfig())
    headers = [(b"x-api-key", API_KEY.encode()), (b"content-type", b"application/json")]
    reply = api.handle(describe("POST", "/v1/messages", headers, body), body, api.new_request_id())
    assert isinstance(reply, StreamReply)
    offsets, total = [], 0.0
    for delay in event_delays(Pacing(0.0, RATE), reply.events):
        total += delay
        offsets.append(total)
    return offsets


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def core_busy(core: str) -> float:
    with open("/proc/stat") as handle:
        for line in handle:
            if line.startswith(f"cpu{core} "):
                values = [int(v) for v in line.split()[1:]]
                return (sum(values[:8]) - values[3] - values[4]) / CLK_TCK
    return 0.0


def run(streams: int, words: int, root: Path, workdir: Path, extra: list[str], profile: Path | None = None) -> dict:
    journal = workdir / f"journal-{streams}.jsonl"
    body_file = workdir / "body.json"
    body = request_body(words)
    body_file.write_bytes(body)
    offsets = schedule(body)
    python = [sys.executable] + (["-m", "cProfile", "-o", str(profile.with_suffix(f".{streams}.prof"))] if profile else [])
    command = [
        "taskset",
        "-c",
        SERVER_CORE,
        *python,
        "-m",
        "harness.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--tokens-per-second",
        str(RATE),
        "--journal",
        str(journal),
        *extra,
    ]
    with open(workdir / f"serve-{streams}.log", "wb") as serve_log:  # the server writes to its own copy
        server = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=serve_log, text=True, start_new_session=True)
    try:
        info = json.loads(server.stdout.readline())
        base, control = info["base_url"], info.get("control_url")
        plan = {"faults": [{"type": "rst_stream", "code": "CANCEL", "trigger": {"at": "events", "value": CUT}, "select": {"probability": 0.5}}]}
        request = urllib.request.Request(
            control + "/plan", data=json.dumps(plan).encode(), method="PUT", headers={"content-type": "application/json"}
        )
        urllib.request.urlopen(request, timeout=10).read()
        probed = min(PROBE, streams // 10)
        loaded = streams - probed
        clients = max(1, min(10, loaded // 100))
        load = [
            "taskset",
            "-c",
            LOAD_CORE,
            "h2load",
            "-n",
            str(loaded),
            "-c",
            str(clients),
            "-m",
            str(-(-loaded // clients)),
            "-d",
            str(body_file),
            "-H",
            f"x-api-key: {API_KEY}",
            "-H",
            "content-type: application/json",
            base + "/v1/messages",
        ]
        port = int(base.rsplit(":", 1)[1].split("/")[0])
        probe_out = workdir / f"probe-{streams}.json"
        probe = subprocess.Popen(
            [
                "taskset",
                "-c",
                LOAD_CORE,
                sys.executable,
                str(HERE / "paced_probe.py"),
                "--port",
                str(port),
                "--body",
                str(body_file),
                "--api-key",
                API_KEY,
                "--streams",
                str(probed),
                "--out",
                str(probe_out),
            ]
        )
        cpu0, busy0, t0 = cpu_seconds(server.pid), core_busy(SERVER_CORE), time.monotonic()
        load0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(load, capture_output=True, text=True, timeout=120)
        wall = time.monotonic() - t0
        load1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu, busy = cpu_seconds(server.pid) - cpu0, core_busy(SERVER_CORE) - busy0
        rss = peak_rss_mb(server.pid)
        summary = next((line.strip() for line in done.stdout.splitlines() if line.startswith("requests:")), done.stdout[-300:])
        probe.wait(timeout=120)
    finally:
        stop(server, grace_s=15)
    records = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    requests = [r for r in records if r.get("kind") == "request" and r.get("path") == "/v1/messages"]
    arrivals = {p["request_id"]: p["arrivals"] for p in json.loads(probe_out.read_text()) if p["request_id"]} if probe_out.exists() else {}
    lateness: list[tuple[float, float]] = []  # (when due, how late)
    client: list[float] = []
    events = faulted = exact = 0
    first, last = float("inf"), 0.0
    all_started = max((r.get("t_schedule", 0.0) for r in requests), default=0.0)
    for record in requests:
        writes = record["writes"]
        if not writes:
            continue
        events += record["events_out"]
        start = record.get("t_schedule", writes[0][2])  # where the simulator started the stream's schedule
        first, last = min(first, start), max(last, writes[-1][2])
        received = arrivals.get(record["request_id"])
        sent = 0
        for events_out, bytes_out, t in writes:
            arrived = _arrival(received, bytes_out) if received else None
            for index in range(sent, events_out):
                if index and offsets[index] > offsets[index - 1]:  # a paced event (it waited for its time)
                    due = start + offsets[index]
                    lateness.append((due, t - due))
                    if arrived is not None:
                        client.append(arrived - due)
            sent = events_out
        cuts = [f for f in record["faults"] if f.get("type") == "rst_stream" and "events_out" in f]
        if cuts:
            faulted += 1
            exact += all(f["events_out"] == CUT for f in cuts) and record["events_out"] == CUT
    span = max(1e-9, last - first)
    ms = [late * 1000 for _, late in lateness]
    steady = [late * 1000 for due, late in lateness if due > all_started]
    load_cpu = (load1.ru_utime - load0.ru_utime) + (load1.ru_stime - load0.ru_stime)
    row = {
        "streams": streams,
        "answers": len(requests),
        "events": events,
        "span_s": round(span, 3),
        "events_per_s": round(events / span, 1),
        "target_events_per_s": streams * RATE,
        "lateness_ms": _spread(ms),
        "steady_lateness_ms": _spread(steady),
        "client_lateness_ms": _spread([x * 1000 for x in client]),
        "cpu_s": round(cpu, 3),
        "cpu_per_s": round(cpu / wall, 3),
        "cpu_s_per_1000_events": round(1000 * cpu / max(1, events), 4),
        "peak_rss_mb": round(rss, 1),
        "faulted": faulted,
        "cuts_exact": exact,
        "h2load_cpu_per_s": round(load_cpu / wall, 3),
        "core0_other": round(max(0.0, busy - cpu) / wall, 3),
        "load_avg": os.getloadavg()[0],
        "h2load": summary,
    }
    return row


def _arrival(arrivals: list[list[float]], byte_count: int) -> float | None:
    """When the client had received ``byte_count`` bytes of the stream's body."""
    for t, total in arrivals:
        if total >= byte_count:
            return t
    return None


def _spread(ms: list[float]) -> dict:
    return {"p50": round(percentile(ms, 0.5), 3), "p99": round(percentile(ms, 0.99), 3), "max": round(max(ms), 3) if ms else None, "samples": len(ms)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", default="100,300,1000")
    parser.add_argument("--words", type=int, default=150, help="one-token deltas per answer (3 s at 50 events/s)")
    parser.add_argument("--root", type=Path, default=ROOT, help="the source tree to serve from (compare two versions)")
    parser.add_argument("--sim-args", default="", help="extra `streamchaos serve` arguments")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--profile", type=Path, default=None, help="run the server under cProfile, writing PROFILE.<streams>.prof")
    args = parser.parse_args(argv)
    if args.words <= CUT:
        raise SystemExit(f"--words must exceed the cut ({CUT})")
    rows = []
    with tempfile.TemporaryDirectory(prefix=f"bench-paced-{os.getpid()}-") as tmp:
        for streams in [int(s) for s in args.streams.split(",")]:
            log(f"paced: {streams} streams x {args.words} events at {RATE:.0f}/s (load avg {os.getloadavg()[0]:.1f})")
            row = run(streams, args.words, args.root.resolve(), Path(tmp), args.sim_args.split(), args.profile)
            rows.append(row)
            log(f"  {json.dumps(row)}")
    print(
        "| streams | events/s (target) | server lateness p50 / p99 / max ms | steady p99 ms | client lateness p50 / p99 / max ms "
        "| server CPU s/s | CPU s per 1000 events | peak RSS MB | cuts exact | h2load CPU s/s | core0 other | load avg |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        late, steady, client = r["lateness_ms"], r["steady_lateness_ms"], r["client_lateness_ms"]
        print(
            f"| {r['streams']} | {r['events_per_s']:,.0f} ({r['target_events_per_s']:,.0f}) "
            f"| {late['p50']:.2f} / {late['p99']:.2f} / {late['max']:.1f} "
            f"| {steady['p99']:.2f} | {client['p50']:.2f} / {client['p99']:.2f} / {client['max'] or float('nan'):.1f} "
            f"| {r['cpu_per_s']:.2f} | {r['cpu_s_per_1000_events']:.3f} | {r['peak_rss_mb']:.0f} | {r['cuts_exact']}/{r['faulted']} "
            f"| {r['h2load_cpu_per_s']:.2f} | {r['core0_other']:.0%} | {r['load_avg']:.1f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
