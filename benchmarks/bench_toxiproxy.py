"""What one toxiproxy hop costs, on 127.0.0.1, with no toxic on the proxy.

1. Latency added per hop: many small request round trips (``GET /v1/models`` on one raw HTTP/1.1
   keep-alive connection), direct to the simulator and through the proxy, interleaved in blocks
   so drift hits both alike; p50/p99 of each and the difference.
2. Throughput: 100-event streaming answers (``benchmarks/workload.py``) on a few concurrent
   keep-alive connections, bounded in count and time; answers/s direct and through the proxy.

Runs on its own: ``.venv/bin/python benchmarks/bench_toxiproxy.py [--requests 2000]``. It starts
the simulator and toxiproxy itself and stops both by pid.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.workload import API_KEY, EVENTS, PATH, request_body  # noqa: E402
from harness.drive.simulator_process import SimulatorProcess  # noqa: E402
from harness.measure.metrics import percentile  # noqa: E402
from harness.network.toxiproxy import ToxiproxyServer  # noqa: E402

HOST = "127.0.0.1"
MODELS = b"GET /v1/models HTTP/1.1\r\nhost: localhost\r\nx-api-key: bench\r\n\r\n"


class Conn:
    """A raw HTTP/1.1 keep-alive connection that reads content-length or chunked answers."""

    def __init__(self, port: int, timeout_s: float = 10.0) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(262144)
        if not chunk:
            raise ConnectionError("closed mid-answer")
        self.buffer += chunk

    def exchange(self, request: bytes) -> int:
        """Send, read one whole answer; its size in bytes."""
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lower = head.lower()
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"unexpected answer: {head[:80]!r}")
        if b"content-length:" in lower:
            length = int(lower.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            while len(self.buffer) < length:
                self._fill()
            self.buffer = self.buffer[length:]
            return len(head) + 4 + length
        end = self.buffer.find(b"\r\n0\r\n\r\n")
        while end < 0:
            self._fill()
            end = self.buffer.find(b"\r\n0\r\n\r\n")
        size = end + 7
        self.buffer = self.buffer[size:]
        return len(head) + 4 + size

    def close(self) -> None:
        self.sock.close()


def round_trips(ports: dict[str, int], total: int, block: int = 10, warmup: int = 200) -> dict[str, list[float]]:
    conns = {name: Conn(port) for name, port in ports.items()}
    times: dict[str, list[float]] = {name: [] for name in ports}
    try:
        for conn in conns.values():
            for _ in range(warmup):
                conn.exchange(MODELS)
        done = 0
        while done < total:
            n = min(block, total - done)
            for name, conn in conns.items():
                record = times[name]
                for _ in range(n):
                    started = time.perf_counter()
                    conn.exchange(MODELS)
                    record.append(time.perf_counter() - started)
            done += n
    finally:
        for conn in conns.values():
            conn.close()
    return times


def throughput(port: int, connections: int, per_connection: int, deadline_s: float) -> dict:
    body = request_body()
    request = (
        f"POST {PATH} HTTP/1.1\r\nhost: localhost\r\nx-api-key: {API_KEY}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body
    counts = [0] * connections
    sizes: set[int] = set()
    errors: list[str] = []
    start = threading.Barrier(connections + 1)
    stop_at = [0.0]

    def worker(index: int) -> None:
        conn = Conn(port)
        try:
            conn.exchange(request)  # warm
            start.wait()
            while counts[index] < per_connection and time.monotonic() < stop_at[0]:
                sizes.add(conn.exchange(request))
                counts[index] += 1
        except Exception as error:
            errors.append(f"{type(error).__name__}: {error}")
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(connections)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.monotonic() + deadline_s + 5
    start.wait()
    began = time.monotonic()
    stop_at[0] = began + deadline_s
    for thread in threads:
        thread.join(deadline_s + 30)
    elapsed = time.monotonic() - began
    answers = sum(counts)
    return {
        "answers": answers,
        "seconds": elapsed,
        "answers_per_s": answers / elapsed if elapsed else 0.0,
        "events_per_s": answers * EVENTS / elapsed if elapsed else 0.0,
        "answer_bytes": sorted(sizes),
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="round trips per path (default 2000)")
    parser.add_argument("--connections", type=int, default=4, help="concurrent streaming connections (default 4)")
    parser.add_argument("--answers", type=int, default=500, help="streaming answers per connection at most (default 500)")
    parser.add_argument("--seconds", type=float, default=5.0, help="time bound per throughput run (default 5)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)

    with SimulatorProcess(["--seed", "1"]) as sim, ToxiproxyServer() as toxi:
        proxy = toxi.client.create_proxy("bench", f"{HOST}:{sim.port}")
        print(f"toxiproxy {toxi.version} (pid {toxi.pid}, API :{toxi.port}), proxy :{proxy.port} -> simulator :{sim.port}", flush=True)

        times = round_trips({"direct": sim.port, "proxy": proxy.port}, args.requests)
        rows = {
            name: {"p50_us": percentile(v, 0.50) * 1e6, "p99_us": percentile(v, 0.99) * 1e6, "mean_us": statistics.fmean(v) * 1e6}
            for name, v in times.items()
        }
        added = {k: rows["proxy"][k] - rows["direct"][k] for k in ("p50_us", "p99_us", "mean_us")}
        print(f"\nLatency, {args.requests} GET /v1/models round trips per path on one keep-alive connection")
        print(f"  {'path':<8} {'p50 us':>9} {'p99 us':>9} {'mean us':>9}")
        for name, row in rows.items():
            print(f"  {name:<8} {row['p50_us']:9.1f} {row['p99_us']:9.1f} {row['mean_us']:9.1f}")
        print(f"  {'added':<8} {added['p50_us']:9.1f} {added['p99_us']:9.1f} {added['mean_us']:9.1f}   (per hop)")

        flows = {}
        for name, port in (("direct", sim.port), ("proxy", proxy.port)):
            flows[name] = throughput(port, args.connections, args.answers, args.seconds)
        print(
            f"\nThroughput, {EVENTS}-event streaming answers, {args.connections} keep-alive connections, "
            f"<= {args.answers} answers each, <= {args.seconds:g} s"
        )
        print(f"  {'path':<8} {'answers':>8} {'seconds':>8} {'answers/s':>10} {'events/s':>10}  bytes/answer")
        for name, flow in flows.items():
            print(
                f"  {name:<8} {flow['answers']:8d} {flow['seconds']:8.2f} {flow['answers_per_s']:10.1f} {flow['events_per_s']:10.0f}  "
                f"{','.join(map(str, flow['answer_bytes']))}{'  ERRORS: ' + '; '.join(flow['errors']) if flow['errors'] else ''}"
            )
        ratio = flows["proxy"]["answers_per_s"] / flows["direct"]["answers_per_s"] if flows["direct"]["answers_per_s"] else 0.0
        print(f"  proxy/direct: {ratio:.2f}")
        if args.json:
            print(json.dumps({"latency": rows, "added": added, "throughput": flows}, indent=1))
        failed = any(flow["errors"] for flow in flows.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
