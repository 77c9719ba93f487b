"""Fault precision: is "RST after event 50" exactly 50 events, every time, idle and under load?
And how close does a 200 ms stall come to 200 ms?

    .venv/bin/python benchmarks/bench_faults.py [--trials 200] [--quick]

For each transport (HTTP/1.1, h2c, HTTP/1.1+TLS, h2+TLS) it runs N trials of a 100-event answer
with ``tcp_reset`` after event 50 and counts the trials whose client received exactly 50 events
and then a reset (TLS: a reset or an EOF, since Python's ssl reports RST as EOF). "Under load"
repeats it while a second process keeps the simulator busy with streaming requests. The stall
figure is the gap between the DATA frames around a 200 ms stall, minus 200 ms (h2c probe).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.drive.simulator_process import SimulatorProcess  # noqa: E402
from harness.measure.metrics import percentile  # noqa: E402
from tests.wire import DataFrame, H2Probe, h1_exchange, post  # noqa: E402

BODY = {"model": "m", "max_tokens": 4000, "stream": True, "messages": [{"role": "user", "content": "bench\n@sc deltas=94"}]}
CUT = 50

LOAD_SCRIPT = r"""
import socket, sys, time, json
port, seconds = int(sys.argv[1]), float(sys.argv[2])
body = json.dumps({"model": "m", "max_tokens": 4000, "stream": True, "messages": [{"role": "user", "content": "load\n@sc deltas=94"}]}).encode()
req = (f"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: load\r\ncontent-length: {len(body)}\r\n\r\n").encode() + body
end = time.monotonic() + seconds
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
done = 0
while time.monotonic() < end:
    for s in socks:
        s.sendall(req)
    for s in socks:
        data = b""
        while not data.endswith(b"0\r\n\r\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise SystemExit("load connection closed")
            data += chunk
        done += 1
print(done)
"""


def h1_trial(port: int, tls: bool, ca_file: str, key: str) -> tuple[int, str]:
    result = h1_exchange("127.0.0.1", port, post("/v1/messages", BODY, key=key), tls=tls, ca_file=ca_file)
    return len(result.events()), result.ended


def h2_trial(port: int, tls: bool, ca_file: str, key: str) -> tuple[int, str]:
    with H2Probe("127.0.0.1", port, tls=tls, ca_file=ca_file) as probe:
        stream = probe.request(body=BODY, key=key)
        probe.read_until(lambda p: False, timeout_s=5)
        return len(probe.events(stream)), probe.closed or "open"


def precision(sim: SimulatorProcess, trials: int) -> dict[str, tuple[int, int]]:
    sim.load_plan({"seed": 1, "faults": [{"type": "tcp_reset", "trigger": {"at": "events", "value": CUT}}]})
    results = {}
    for name, fn, tls in (("HTTP/1.1", h1_trial, False), ("h2c", h2_trial, False), ("HTTP/1.1+TLS", h1_trial, True), ("h2+TLS", h2_trial, True)):
        exact = 0
        for trial in range(trials):
            events, ended = fn(sim.port, tls, sim.ca_file, f"cut-{name}-{trial}")
            if events == CUT and (ended == "reset" or (tls and ended == "eof")):
                exact += 1
        results[name] = (exact, trials)
    return results


def stall_errors(sim: SimulatorProcess, trials: int, stall_s: float = 0.2) -> tuple[list[float], list[float]]:
    """(client-observed, server-side) errors in ms: the gap between the DATA frames a probe
    received around the stall, and the gap between the simulator's own writes (its journal)."""
    sim.load_plan({"seed": 1, "faults": [{"type": "stall", "seconds": stall_s, "trigger": {"at": "events", "value": 30}}]})
    client, server = [], []
    for trial in range(trials):
        key = f"stall-{trial}-{time.monotonic_ns()}"
        with H2Probe("127.0.0.1", sim.port) as probe:
            stream = probe.request(body=BODY, key=key)
            probe.read_until(lambda p: p.ended(stream), timeout_s=5)
            times = [f.t for f in probe.frames if isinstance(f.frame, DataFrame) and f.frame.data]
            gap = max(b - a for a, b in pairwise(times))
            client.append((gap - stall_s) * 1000)
        (record,) = [r for r in sim.journal(key) if r["kind"] == "request"]
        writes = [w[2] for w in record["writes"]]
        server.append((max(b - a for a, b in pairwise(writes)) - stall_s) * 1000)
    return client, server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="50 trials")
    args = parser.parse_args(argv)
    trials = 50 if args.quick else args.trials
    with SimulatorProcess(["--seed", "1"]) as sim:
        idle = precision(sim, trials)
        stalls_idle, server_idle = stall_errors(sim, max(50, trials // 2))
        load = subprocess.Popen(
            [sys.executable, "-c", LOAD_SCRIPT, str(sim.port), "3600"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
        try:
            time.sleep(0.5)
            loaded = precision(sim, trials)
            stalls_loaded, server_loaded = stall_errors(sim, max(50, trials // 2))
        finally:
            os.killpg(load.pid, signal.SIGTERM)
            load.wait(10)
    print(f"\ncut precision: tcp_reset after event {CUT} of 100 (exact = {CUT} events then the reset)")
    print(f"{'transport':<14} {'idle':>12} {'under load':>12}")
    for name in idle:
        print(f"{name:<14} {idle[name][0]:>5}/{idle[name][1]:<6} {loaded[name][0]:>5}/{loaded[name][1]:<6}")
    for label, errors in (
        ("idle, seen by the client", stalls_idle),
        ("idle, the simulator's writes", server_idle),
        ("under load, seen by the client", stalls_loaded),
        ("under load, the simulator's writes", server_loaded),
    ):
        print(
            f"stall 200 ms timing error, {label}: p50 {percentile(errors, 0.5):.2f} ms, p99 {percentile(errors, 0.99):.2f} ms, "
            f"max {max(errors):.2f} ms (n={len(errors)})"
        )
    summary = {
        "cut": {"idle": idle, "load": loaded},
        "stall_ms": {
            "idle_client_p50": percentile(stalls_idle, 0.5),
            "idle_client_p99": percentile(stalls_idle, 0.99),
            "idle_server_p50": percentile(server_idle, 0.5),
            "idle_server_p99": percentile(server_idle, 0.99),
            "load_client_p50": percentile(stalls_loaded, 0.5),
            "load_client_p99": percentile(stalls_loaded, 0.99),
        },
    }
    print(json.dumps(summary))
    exact = all(v[0] == v[1] for v in (*idle.values(), *loaded.values()))
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
