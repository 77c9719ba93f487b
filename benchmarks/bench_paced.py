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

Lateness is the server's (bytes in the kernel), not the client's. On a shared machine the figures
depend on what else runs on core 0: the load average and core 0's share taken by others are
printed beside each row.

    .venv/bin/python benchmarks/bench_paced.py [--streams 100,300,1000] [--words 150] [--root DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from simulator.api.router import MessagesApi, StreamReply, describe  # noqa: E402
from simulator.config import SimulatorConfig  # noqa: E402
from simulator.transport.schedule import Pacing, event_delays  # noqa: E402

RATE = 50.0
CUT = 100
SERVER_CORE, LOAD_CORE = "0", "1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
API_KEY = "bench-paced"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def request_body(words: int) -> bytes:
    prompt = f"streamchaos paced benchmark\n@sc words={words} deltas={words}"
    return json.dumps({"model": "claude-sonnet-4-6", "max_tokens": 4096, "stream": True,
                       "messages": [{"role": "user", "content": prompt}]}, separators=(",", ":")).encode()


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


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(streams: int, words: int, root: Path, workdir: Path, extra: list[str], profile: Path | None = None) -> dict:
    journal = workdir / f"journal-{streams}.jsonl"
    body_file = workdir / "body.json"
    body = request_body(words)
    body_file.write_bytes(body)
    offsets = schedule(body)
    python = [sys.executable] + (["-m", "cProfile", "-o", str(profile.with_suffix(f".{streams}.prof"))] if profile else [])
    command = ["taskset", "-c", SERVER_CORE, *python, "-m", "harness.cli", "serve", "--host", "127.0.0.1",
               "--tokens-per-second", str(RATE), "--journal", str(journal), *extra]
    server = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=open(workdir / f"serve-{streams}.log", "wb"),
                              text=True, start_new_session=True)
    try:
        info = json.loads(server.stdout.readline())
        base, control = info["base_url"], info.get("control_url")
        plan = {"faults": [{"type": "rst_stream", "code": "CANCEL", "trigger": {"at": "events", "value": CUT},
                           "select": {"probability": 0.5}}]}
        request = urllib.request.Request(control + "/plan", data=json.dumps(plan).encode(), method="PUT",
                                         headers={"content-type": "application/json"})
        urllib.request.urlopen(request, timeout=10).read()
        clients = max(1, min(10, streams // 100))
        load = ["taskset", "-c", LOAD_CORE, "h2load", "-n", str(streams), "-c", str(clients), "-m", str(-(-streams // clients)),
                "-d", str(body_file), "-H", f"x-api-key: {API_KEY}", "-H", "content-type: application/json",
                base + "/v1/messages"]
        cpu0, busy0, t0 = cpu_seconds(server.pid), core_busy(SERVER_CORE), time.monotonic()
        done = subprocess.run(load, capture_output=True, text=True, timeout=120)
        wall = time.monotonic() - t0
        cpu, busy = cpu_seconds(server.pid) - cpu0, core_busy(SERVER_CORE) - busy0
        rss = peak_rss_mb(server.pid)
        summary = next((line.strip() for line in done.stdout.splitlines() if line.startswith("requests:")), done.stdout[-300:])
    finally:
        os.kill(server.pid, signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(server.pid, signal.SIGKILL)
            server.wait(5)
    records = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    requests = [r for r in records if r.get("kind") == "request" and r.get("path") == "/v1/messages"]
    lateness: list[float] = []
    events = faulted = exact = 0
    first, last = float("inf"), 0.0
    for record in requests:
        writes = record["writes"]
        if not writes:
            continue
        events += record["events_out"]
        start = record.get("t_schedule", writes[0][2])  # where the simulator started the stream's schedule
        first, last = min(first, start), max(last, writes[-1][2])
        sent = 0
        for events_out, _, t in writes:
            for index in range(sent, events_out):
                if index and offsets[index] > offsets[index - 1]:  # a paced event (it waited for its time)
                    lateness.append(t - (start + offsets[index]))
            sent = events_out
        cuts = [f for f in record["faults"] if f.get("type") == "rst_stream" and "events_out" in f]
        if cuts:
            faulted += 1
            exact += all(f["events_out"] == CUT for f in cuts) and record["events_out"] == CUT
    span = max(1e-9, last - first)
    ms = [x * 1000 for x in lateness]
    row = {
        "streams": streams, "answers": len(requests), "events": events, "span_s": round(span, 3),
        "events_per_s": round(events / span, 1), "target_events_per_s": streams * RATE,
        "lateness_ms": {"p50": round(percentile(ms, 0.5), 3), "p99": round(percentile(ms, 0.99), 3), "max": round(max(ms), 3) if ms else None,
                        "samples": len(ms)},
        "cpu_s": round(cpu, 3), "cpu_per_s": round(cpu / wall, 3), "cpu_s_per_1000_events": round(1000 * cpu / max(1, events), 4),
        "peak_rss_mb": round(rss, 1), "faulted": faulted, "cuts_exact": exact,
        "core0_other": round(max(0.0, busy - cpu) / wall, 3), "load_avg": os.getloadavg()[0], "h2load": summary,
    }
    return row


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
    print(f"| streams | events/s (target) | lateness p50 / p99 / max ms | server CPU s/s | CPU s per 1000 events | peak RSS MB | cuts exact | core0 other | load avg |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        late = r["lateness_ms"]
        print(f"| {r['streams']} | {r['events_per_s']:,.0f} ({r['target_events_per_s']:,.0f}) | {late['p50']:.2f} / {late['p99']:.2f} / {late['max']:.1f} "
              f"| {r['cpu_per_s']:.2f} | {r['cpu_s_per_1000_events']:.3f} | {r['peak_rss_mb']:.0f} | {r['cuts_exact']}/{r['faulted']} "
              f"| {r['core0_other']:.0%} | {r['load_avg']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
