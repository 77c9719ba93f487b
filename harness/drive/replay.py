"""``streamchaos replay RUN_DIR --scenario S --client C --trial N``: one recorded trial again, with
the same decisions, and a reproducer bundle beside it.

Same decisions: the simulator draws every fault decision from (plan seed, rule, trial key, logical
request, attempt), so running the trial again under its original key, with the scenario's seed and
the time scale it ran at, fires the same faults at the same points (time-based triggers follow the
clock, as they did the first time).

The bundle (``<RUN_DIR>/replay-<scenario>-<client>-<trial>/`` unless ``--out``):

- ``trial.pcap``: its traffic, captured by tcpdump on loopback with a filter for the trial's lane
  port (a toxiproxy scenario captures the proxy-to-simulator leg);
- ``tls-keys.log``: the simulator's TLS secrets in SSLKEYLOGFILE format, so
  ``wireshark -r trial.pcap -o tls.keylog_file:tls-keys.log`` (or tshark) decrypts it;
- ``sse/attempt-<k>-<request_id>.sse``: the response body of each attempt as it went on the wire
  (decrypted from the capture with tshark), and ``wire.json`` with the events per attempt and
  where the RSTs fell;
- ``journal.jsonl``: the replay's journal slice, ``original-journal.jsonl`` the original's;
- ``record.json`` and ``original-record.json``; ``stdout.txt`` and ``stderr.txt`` in full;
- ``README.txt``: what is where and the commands to open it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import processes

CAPTURE_READY_S = 10.0
CAPTURE_STOP_S = 5.0
TSHARK_TIMEOUT_S = 60.0


class ReplayError(ValueError):
    pass


# -- capture -------------------------------------------------------------------------------------


@dataclass
class Capture:
    """tcpdump on loopback for one port, started and stopped by its pid."""

    path: Path
    port: int
    process: subprocess.Popen | None = None
    log: str = ""

    def start(self) -> Capture:
        tcpdump = shutil.which("tcpdump") or "/usr/bin/tcpdump"
        if not Path(tcpdump).exists():
            raise ReplayError("tcpdump not found (Debian package tcpdump; `make setup` installs it) - or pass --no-pcap")
        # -U: write each packet as it comes; -Z root: keep the rights to write the bundle.
        self.process = subprocess.Popen(
            [tcpdump, "-i", "lo", "--immediate-mode", "-U", "-s", "0", "-n", "-Z", "root", "-w", str(self.path), f"tcp port {self.port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        ready = threading.Event()
        lines: list[str] = []

        def read() -> None:
            assert self.process is not None and self.process.stderr is not None
            for line in self.process.stderr:
                lines.append(line)
                if "listening on" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True, name="tcpdump-stderr").start()
        if not ready.wait(CAPTURE_READY_S) or self.process.poll() is not None:
            self.stop()
            raise ReplayError(f"tcpdump did not start capturing: {''.join(lines).strip() or 'no output'}")
        self._lines = lines
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        time.sleep(0.2)  # the last packets (FIN/RST) reach the capture
        processes.stop(self.process, first=signal.SIGINT, grace_s=CAPTURE_STOP_S)  # SIGINT: tcpdump writes out its capture
        self.log = "".join(getattr(self, "_lines", []))


class _CapturingSimulator:
    """The simulator, with a capture of the lane the trial gets, from its opening to its close."""

    def __init__(self, simulator: Any, pcap: Path | None) -> None:
        self._simulator, self._pcap = simulator, pcap
        self.capture: Capture | None = None
        self.lane: int | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._simulator, name)

    def open_lane(self, trial: str) -> int:
        self.lane = self._simulator.open_lane(trial)
        if self._pcap is not None:
            try:
                self.capture = Capture(self._pcap, self.lane).start()
            except BaseException:
                self._simulator.close_lane(self.lane)
                raise
        return self.lane

    def close_lane(self, port: int) -> None:
        self._simulator.close_lane(port)


# -- the trial -----------------------------------------------------------------------------------


def find_record(directory: Path, scenario: str, client: str, trial: int) -> dict[str, Any]:
    from harness.drive.runner import load_records, only_latest

    if not (directory / "trials.jsonl").exists():
        raise ReplayError(f"{directory}: no trials.jsonl (not a streamchaos results directory)")
    records = only_latest(load_records(directory))
    for record in records:
        if record["scenario"] == scenario and record["client"] == client and record["trial"] == trial:
            if record.get("skipped"):
                raise ReplayError(f"{directory}: {scenario} / {client} trial {trial} was skipped ({record['skipped']}): nothing to replay")
            return record
    cells = sorted({f"{r['scenario']} / {r['client']}" for r in records})
    raise ReplayError(f"{directory}/trials.jsonl: no trial {trial} of {scenario} / {client}; recorded cells: {', '.join(cells[:20])}")


def replay(directory: Path, scenario_name: str, client_name: str, trial: int, out: Path | None = None, pcap: bool = True) -> dict[str, Any]:
    """Run the trial again; write the bundle; return a summary (paths, both outcomes, wire facts)."""
    from harness import scenario as scenarios
    from harness.clients.adapter import Launch
    from harness.clients.launch import run_client
    from harness.clients.registry import get
    from harness.drive.runner import expected_answers, transport_for
    from harness.drive.simulator_process import SimulatorProcess
    from harness.drive.trial import build
    from simulator.tls import KEYLOG_ENV

    directory = Path(directory).resolve()
    original = find_record(directory, scenario_name, client_name, trial)
    try:
        item = scenarios.load(scenarios.find(scenario_name))
    except scenarios.ScenarioError as error:
        raise ReplayError(str(error)) from None
    try:
        client = get(client_name)
    except KeyError as error:
        raise ReplayError(str(error.args[0])) from None
    out = Path(out) if out else directory / re.sub(r"[^A-Za-z0-9._@-]", "_", f"replay-{scenario_name}-{client_name}-{trial}")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    keylog = out / "tls-keys.log"
    time_scale = (original.get("extra") or {}).get("time_scale") or item.time_scale
    key = original["key"]
    run_id = original["run_id"]
    env = {**os.environ, KEYLOG_ENV: str(keylog)}
    toxiproxy = proxy = timeline = None
    workdir = Path(tempfile.mkdtemp(prefix="streamchaos-replay-"))
    try:
        with SimulatorProcess(["--seed", str(item.seed), "--journal", str(out / "journal-simulator.jsonl")], env=env) as process:
            simulator = _CapturingSimulator(process, out / "trial.pcap" if pcap else None)
            simulator.load_plan(item.plan(time_scale).to_data())
            if item.needs_toxiproxy:
                from harness.network.toxiproxy import ToxiproxyServer

                toxiproxy = ToxiproxyServer().start()
            tls, _ = transport_for(item, client)
            lane = simulator.open_lane(key)
            try:
                port = lane
                if toxiproxy is not None:
                    from harness.network.toxiproxy.timeline import start_timeline

                    proxy = toxiproxy.create_proxy(key, upstream_port=lane)
                    port = proxy.listen_port
                    timeline = start_timeline(toxiproxy, proxy, item.toxics, time_scale, process, key)
                base_url = process.lane_url(port, tls)
                deadline = item.deadline(time_scale)
                invocation = client.invocation(
                    Launch(base_url, key, process.ca_file if tls else None, item.client_script(time_scale), deadline, workdir, time_scale)
                )
                result = run_client(invocation.argv, invocation.env, deadline, cwd=invocation.cwd, stdin=invocation.stdin)
            finally:
                if timeline is not None:
                    timeline.stop()
                simulator.close_lane(lane)
                if proxy is not None and toxiproxy is not None:
                    toxiproxy.delete_proxy(proxy)
            journal = process.journal(key, wait_closed=True, timeout_s=5.0)
            if simulator.capture is not None:
                simulator.capture.stop()
    finally:
        if toxiproxy is not None:
            toxiproxy.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    record = build(run_id, item.name, client.name, trial, key, result, invocation.output, journal, expected_answers(item, client))
    record.extra.update({"tls": tls, "base_url": base_url, "time_scale": time_scale, "replay_of": str(directory)})
    _write_json(out / "record.json", record.to_json())
    _write_json(out / "original-record.json", original)
    _write_lines(out / "journal.jsonl", journal)
    _write_lines(out / "original-journal.jsonl", original_journal(directory, original))
    (out / "stdout.txt").write_text(result.stdout, encoding="utf-8")
    (out / "stderr.txt").write_text(result.stderr, encoding="utf-8")
    (out / "journal-simulator.jsonl").unlink(missing_ok=True)  # the slice above is the trial's part
    wire: dict[str, Any] = {"pcap": None}
    if pcap:
        wire = wire_facts(out / "trial.pcap", keylog if tls else None, lane, journal, out / "sse")
        _write_json(out / "wire.json", wire)
    summary = {
        "bundle": str(out),
        "original_outcome": original["outcome"],
        "replay_outcome": record.outcome,
        "lane": lane,
        "tls": tls,
        "attempts_original": [[a["events_out"] for a in g] for g in original.get("attempts", [])],
        "attempts_replay": [[a["events_out"] for a in g] for g in record.attempts],
        "wire": wire.get("attempts"),
    }
    (out / "README.txt").write_text(_readme(item.name, client.name, trial, key, summary, tls), encoding="utf-8")
    return summary


def original_journal(directory: Path, original: Mapping[str, Any]) -> list[dict[str, Any]]:
    path = directory / f"journal-{original['scenario']}.jsonl"
    key = original["key"]
    out: list[dict[str, Any]] = []
    if not path.exists():
        return out
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if key not in line:
                continue
            item = json.loads(line)
            keys = {item.get("key")} if item.get("kind") == "request" else set(item.get("keys") or ()) | {item.get("lane")}
            if key in keys:
                out.append(item)
    return out


# -- reading the capture back: tshark ------------------------------------------------------------


def tshark(*args: str) -> str:
    binary = shutil.which("tshark") or "/usr/bin/tshark"
    if not Path(binary).exists():
        raise ReplayError("tshark not found (Debian package tshark; `make setup` installs it)")
    done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=TSHARK_TIMEOUT_S)
    if done.returncode != 0:
        raise ReplayError(f"tshark {' '.join(args)}: {done.stderr.strip()[:500]}")
    return done.stdout


def _tls_options(keylog: Path | None) -> list[str]:
    return ["-o", f"tls.keylog_file:{keylog}"] if keylog else []


def follow(pcap: Path, keylog: Path | None, stream: int) -> tuple[bytes, bytes]:
    """(client bytes, server bytes) of one TCP stream, decrypted when a key log is given."""
    kind = "tls" if keylog else "tcp"
    text = tshark("-r", str(pcap), *_tls_options(keylog), "-q", "-z", f"follow,{kind},raw,{stream}")
    indented, flush = bytearray(), bytearray()
    started = False
    for line in text.splitlines():
        if line.startswith("Node 1:"):
            started = True
            continue
        if not started or line.startswith("====") or not line.strip():
            continue
        target = indented if line.startswith("\t") else flush
        try:
            target += bytes.fromhex(line.strip())
        except ValueError:
            continue
    # Which side is indented differs between tshark versions: the client is the side that
    # speaks first in HTTP (a method, or the h2 preface).
    if _looks_like_client(bytes(indented)) and not _looks_like_client(bytes(flush)):
        return bytes(indented), bytes(flush)
    return bytes(flush), bytes(indented)


def _looks_like_client(data: bytes) -> bool:
    return data.startswith((b"PRI * HTTP/2.0", b"POST ", b"GET ", b"HEAD ", b"PUT ", b"DELETE ", b"OPTIONS ", b"PATCH "))


def wire_facts(pcap: Path, keylog: Path | None, lane: int, journal: Sequence[Mapping[str, Any]], sse_dir: Path) -> dict[str, Any]:
    """Per attempt, the SSE the client received (events, names, the last one) and per TCP stream
    the RSTs and whether any server data followed them; transcripts written to ``sse_dir``."""
    sse_dir.mkdir(parents=True, exist_ok=True)
    streams: dict[int, int] = {}  # tcp.stream -> client port
    for line in tshark(
        "-r", str(pcap), "-Y", "tcp.flags.syn==1 && tcp.flags.ack==0", "-T", "fields", "-e", "tcp.stream", "-e", "tcp.srcport"
    ).splitlines():
        parts = line.split("\t")
        if len(parts) == 2 and parts[0]:
            streams[int(parts[0])] = int(parts[1])
    data_filter = f"tcp.srcport=={lane} && " + ("tls.app_data" if keylog else "tcp.len>0")
    last_data: dict[int, int] = {}
    for line in tshark(
        "-r", str(pcap), *_tls_options(keylog), "-Y", data_filter, "-T", "fields", "-e", "frame.number", "-e", "tcp.stream"
    ).splitlines():
        frame, tcp_stream = line.split("\t")
        last_data[int(tcp_stream)] = max(last_data.get(int(tcp_stream), 0), int(frame))
    resets: dict[int, list[dict[str, Any]]] = {}
    for line in tshark(
        "-r", str(pcap), "-Y", "tcp.flags.reset==1", "-T", "fields", "-e", "frame.number", "-e", "tcp.stream", "-e", "tcp.srcport"
    ).splitlines():
        frame, tcp_stream, source = line.split("\t")
        resets.setdefault(int(tcp_stream), []).append({"frame": int(frame), "from": "server" if int(source) == lane else "client"})
    connections = {r["conn"]: r for r in journal if r.get("kind") == "connection"}
    port_of_conn = {conn: int(str(r.get("peer", "")).rsplit(":", 1)[-1]) for conn, r in connections.items() if ":" in str(r.get("peer", ""))}
    stream_of_port = {port: stream for stream, port in streams.items()}
    requests = sorted((r for r in journal if r.get("kind") == "request"), key=lambda r: r["t_headers"])
    attempts = []
    bodies: dict[int, dict[Any, bytes]] = {}
    controls: dict[int, list[dict[str, Any]]] = {}
    for request in requests:
        stream = stream_of_port.get(port_of_conn.get(request["conn"], -1))
        item: dict[str, Any] = {
            "request_id": request["request_id"],
            "conn": request["conn"],
            "tcp_stream": stream,
            "journal_events_out": request.get("events_out"),
            "journal_end": request.get("end"),
        }
        if stream is not None:
            if stream not in bodies:
                _, server = follow(pcap, keylog, stream)
                bodies[stream] = split_responses(server, request.get("protocol") == "h2")
                controls[stream] = h2_control_frames(server) if request.get("protocol") == "h2" else []
            on_conn = [r for r in requests if r["conn"] == request["conn"]]
            body_key = request.get("stream_id") if request.get("protocol") == "h2" else on_conn.index(request)
            body = bodies[stream].get(body_key, b"")
            events = sse_events(body)
            item.update(
                {
                    "events": len(events),
                    "names": [n for n, _ in events],
                    "last": events[-1][1][:300] if events else None,
                    "resets": resets.get(stream, []),
                    "last_server_data_frame": last_data.get(stream),
                    "h2_frames": [f for f in controls[stream] if f.get("stream") in (None, request.get("stream_id"))],
                    "reset_after_last_data": any(r["from"] == "server" and r["frame"] > last_data.get(stream, 0) for r in resets.get(stream, [])),
                }
            )
            attempt_number = [r["conversation"] for r in requests[: requests.index(request) + 1]].count(request.get("conversation"))
            (sse_dir / f"attempt-{attempt_number}-{request['request_id']}.sse").write_bytes(body)
        attempts.append(item)
    return {"pcap": str(pcap), "keylog": str(keylog) if keylog else None, "lane": lane, "tcp_streams": len(streams), "attempts": attempts}


def split_responses(server: bytes, h2: bool) -> dict[Any, bytes]:
    """Response bodies the server sent on one connection: by h2 stream id, or by the order of
    HTTP/1.1 responses (0, 1, ...); chunked bodies de-chunked, cut ones kept as far as they got."""
    return _h2_bodies(server) if h2 else _h1_bodies(server)


def _h1_bodies(data: bytes) -> dict[Any, bytes]:
    bodies: dict[Any, bytes] = {}
    position, index = 0, 0
    while position < len(data):
        end = data.find(b"\r\n\r\n", position)
        if end < 0:
            break
        head = data[position:end].decode("latin-1").lower()
        position = end + 4
        body = bytearray()
        if "transfer-encoding: chunked" in head:
            while position < len(data):
                line_end = data.find(b"\r\n", position)
                if line_end < 0:
                    body += data[position:]
                    position = len(data)
                    break
                try:
                    size = int(data[position:line_end].split(b";")[0], 16)
                except ValueError:
                    position = len(data)
                    break
                position = line_end + 2
                if size == 0:
                    position = data.find(b"\r\n", position) + 2 if data.find(b"\r\n", position) >= 0 else len(data)
                    break
                body += data[position : position + size]
                position += size + 2
        else:
            match = re.search(r"content-length:\s*(\d+)", head)
            size = int(match.group(1)) if match else len(data) - position
            body += data[position : position + size]
            position += size
        bodies[index] = bytes(body)
        index += 1
    return bodies


def _h2_bodies(data: bytes) -> dict[Any, bytes]:
    bodies: dict[Any, bytes] = {}
    position = 0
    while position + 9 <= len(data):
        length = int.from_bytes(data[position : position + 3], "big")
        kind, flags = data[position + 3], data[position + 4]
        stream = int.from_bytes(data[position + 5 : position + 9], "big") & 0x7FFFFFFF
        payload = data[position + 9 : position + 9 + length]
        position += 9 + length
        if kind == 0:  # DATA
            if flags & 0x8 and payload:  # PADDED
                payload = payload[1 : len(payload) - payload[0]]
            bodies[stream] = bodies.get(stream, b"") + payload
        elif kind == 1:
            bodies.setdefault(stream, b"")
    return bodies


H2_CONTROL = {3: "RST_STREAM", 7: "GOAWAY"}


def h2_control_frames(data: bytes) -> list[dict[str, Any]]:
    """RST_STREAM and GOAWAY frames in one direction of an h2 connection, with their error codes."""
    out = []
    position = 0
    while position + 9 <= len(data):
        length = int.from_bytes(data[position : position + 3], "big")
        kind = data[position + 3]
        stream = int.from_bytes(data[position + 5 : position + 9], "big") & 0x7FFFFFFF
        payload = data[position + 9 : position + 9 + length]
        position += 9 + length
        if kind == 3 and len(payload) >= 4:
            out.append({"frame": "RST_STREAM", "stream": stream, "error_code": int.from_bytes(payload[:4], "big")})
        elif kind == 7 and len(payload) >= 8:
            out.append(
                {
                    "frame": "GOAWAY",
                    "last_stream_id": int.from_bytes(payload[:4], "big") & 0x7FFFFFFF,
                    "error_code": int.from_bytes(payload[4:8], "big"),
                }
            )
    return out


def sse_events(body: bytes) -> list[tuple[str, str]]:
    """(event name, data) of every whole event in a body (a cut last event is left out)."""
    events = []
    for block in body.replace(b"\r\n", b"\n").split(b"\n\n")[:-1]:
        name, data = "message", []
        for line in block.decode("utf-8", "replace").split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        if data or name != "message":
            events.append((name, "\n".join(data)))
    return events


# -- files ---------------------------------------------------------------------------------------


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2), encoding="utf-8")


def _write_lines(path: Path, items: Sequence[Mapping[str, Any]]) -> None:
    path.write_text("".join(json.dumps(i, separators=(",", ":")) + "\n" for i in items), encoding="utf-8")


def _readme(scenario: str, client: str, trial: int, key: str, summary: Mapping[str, Any], tls: bool) -> str:
    open_cmd = "wireshark -r trial.pcap" + (" -o tls.keylog_file:tls-keys.log" if tls else "")
    return f"""streamchaos replay of {scenario} / {client} trial {trial} (key {key})
original outcome: {summary["original_outcome"]}; replay outcome: {summary["replay_outcome"]}
events per attempt, original journal: {summary["attempts_original"]}; replay journal: {summary["attempts_replay"]}

trial.pcap            the trial's traffic (tcpdump on lo, tcp port {summary["lane"]}: the simulator lane)
tls-keys.log          TLS secrets, SSLKEYLOGFILE format{"" if tls else " (this trial ran in cleartext)"}
sse/                  the response body of each attempt, as the client received it
wire.json             per attempt: SSE events seen on the wire, RSTs and where they fell
journal.jsonl         the simulator's journal for this replay; original-journal.jsonl the run's
record.json           the replay's trial record; original-record.json the run's
stdout.txt stderr.txt the client's output in full

open it:  {open_cmd}
   or:    tshark -r trial.pcap {"-o tls.keylog_file:tls-keys.log " if tls else ""}-Y 'http || http2 || tcp.flags.reset==1'
"""


def command(args: Any) -> int:
    import sys

    try:
        summary = replay(args.directory, args.scenario, args.client, args.trial, args.out, pcap=not args.no_pcap)
    except ReplayError as error:
        print(f"streamchaos replay: {error}", file=sys.stderr)
        return 2
    print(f"replayed {args.scenario} / {args.client} trial {args.trial}: original {summary['original_outcome']}, replay {summary['replay_outcome']}")
    print(f"events per attempt: original {summary['attempts_original']}, replay {summary['attempts_replay']}")
    for attempt in summary.get("wire") or []:
        resets = (
            ", ".join(
                [f"RST from {r['from']} (frame {r['frame']})" for r in attempt.get("resets", [])]
                + [f"{f['frame']} error {f['error_code']}" for f in attempt.get("h2_frames", [])]
            )
            or "no RST"
        )
        print(f"  {attempt['request_id']}: {attempt.get('events', '?')} events on the wire (journal {attempt['journal_events_out']}), {resets}")
    print(f"bundle: {summary['bundle']}")
    return 0
