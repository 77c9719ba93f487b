"""The client's side of the paced benchmark: when each byte of a few streams *arrived*.

bench_paced.py measures lateness from the server's journal (when each event was handed to the
kernel). This probe, a separate process on the load generator's core, opens one h2c connection
with ``--streams`` paced streams and notes the monotonic time each DATA frame arrived (the clock
is the machine's, shared by every process), so the bench can set client receive times against the
same schedule. It reads with blocking recv, one frame batch at a time: it is never the one late.

    python benchmarks/paced_probe.py --host H --port P --path /v1/messages --body FILE --api-key K --streams 20 --out OUT.json
"""

from __future__ import annotations

import argparse
import json
import socket
import time
from pathlib import Path

import h2.config
import h2.connection
import h2.events


def probe(host: str, port: int, path: str, body: bytes, api_key: str, streams: int, timeout_s: float) -> list[dict]:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    conn.local_settings.initial_window_size = 1 << 30
    conn.initiate_connection()
    conn.increment_flow_control_window((1 << 30) - 65535)
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out: dict[int, dict] = {}
    for _ in range(streams):
        stream_id = conn.get_next_available_stream_id()
        headers = [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":authority", f"{host}:{port}".encode()),
            (b":path", path.encode()),
            (b"x-api-key", api_key.encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        conn.send_headers(stream_id, headers)
        conn.send_data(stream_id, body, end_stream=True)
        out[stream_id] = {"request_id": None, "arrivals": [], "end": None}
    sock.sendall(conn.data_to_send())
    deadline = time.monotonic() + timeout_s
    open_streams = set(out)
    sock.settimeout(1.0)
    while open_streams and time.monotonic() < deadline:
        try:
            data = sock.recv(1 << 20)
        except TimeoutError:
            continue
        now = time.monotonic()
        if not data:
            break
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                out[event.stream_id]["request_id"] = dict(event.headers).get(b"request-id", b"").decode()
            elif isinstance(event, h2.events.DataReceived):
                record = out[event.stream_id]
                total = (record["arrivals"][-1][1] if record["arrivals"] else 0) + len(event.data)
                record["arrivals"].append([now, total])
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                out[event.stream_id]["end"] = "reset" if isinstance(event, h2.events.StreamReset) else "ended"
                open_streams.discard(event.stream_id)
        pending = conn.data_to_send()
        if pending:
            sock.sendall(pending)
    sock.close()
    return list(out.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/v1/messages")
    parser.add_argument("--body", type=Path, required=True)
    parser.add_argument("--api-key", default="bench-paced")
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = probe(args.host, args.port, args.path, args.body.read_bytes(), args.api_key, args.streams, args.timeout)
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
