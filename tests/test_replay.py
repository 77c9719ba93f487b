"""`streamchaos replay` of a failed reset_mid_thinking trial: the capture, opened with tshark and
the simulator's TLS key log, shows the same events and the RST at the same point as the original
trial's journal."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from harness import cli
from harness.drive import runner
from tests.support import require

pytestmark = pytest.mark.slow


def _tshark(tshark: str, *args: str) -> str:
    done = subprocess.run([tshark, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_replay_of_a_failed_reset_mid_thinking_trial(tmp_path):
    tshark = require("/usr/bin/tshark", "tshark (Debian package)")
    require("/usr/sbin/tcpdump" if Path("/usr/sbin/tcpdump").exists() else "tcpdump", "tcpdump (Debian package)")
    results = tmp_path / "results"
    assert (
        cli.main(
            [
                "run",
                "--scenarios",
                "reset_mid_thinking",
                "--clients",
                "python-sdk",
                "--trials",
                "1",
                "--results",
                str(results),
                "--run-id",
                "orig",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    directory = results / "orig"
    (original,) = runner.load_records(directory)
    assert original["outcome"] == "failed"  # the SDK never retries a stream that started
    journal = [json.loads(line) for line in (directory / "journal-reset_mid_thinking.jsonl").read_text().splitlines()]
    (first,) = [r for r in journal if r["kind"] == "request" and r["key"] == original["key"]]
    assert first["end"] == "fault:tcp_reset"
    events_before_rst = first["events_out"]

    bundle = tmp_path / "bundle"
    assert (
        cli.main(["replay", str(directory), "--scenario", "reset_mid_thinking", "--client", "python-sdk", "--trial", "0", "--out", str(bundle)]) == 0
    )
    for name in ("trial.pcap", "tls-keys.log", "journal.jsonl", "original-journal.jsonl", "record.json", "stdout.txt", "stderr.txt", "README.txt"):
        assert (bundle / name).exists(), name
    assert "CLIENT_HANDSHAKE_TRAFFIC_SECRET" in (bundle / "tls-keys.log").read_text() or "CLIENT_RANDOM" in (bundle / "tls-keys.log").read_text()
    replayed = json.loads((bundle / "record.json").read_text())
    assert replayed["key"] == original["key"] and replayed["outcome"] == "failed"
    lane = json.loads((bundle / "wire.json").read_text())["lane"]

    # Read the capture with tshark alone: decrypted, the server's side of the connection.
    keys = ["-o", f"tls.keylog_file:{bundle / 'tls-keys.log'}"]
    pcap = str(bundle / "trial.pcap")
    assert "POST /v1/messages" in _tshark(tshark, "-r", pcap, *keys, "-Y", "http.request")  # decrypted
    follow = _tshark(tshark, "-r", pcap, *keys, "-q", "-z", "follow,tls,raw,0")
    sides: dict[bool, bytearray] = {True: bytearray(), False: bytearray()}
    for line in follow.split("Node 1:", 1)[1].splitlines()[1:]:
        if line.strip() and not line.startswith("===="):
            sides[line.startswith("\t")] += bytes.fromhex(line.strip())
    server = next(bytes(v) for v in sides.values() if v.startswith(b"HTTP/1.1 200"))
    names = [line[len("event: ") :] for line in server.decode("utf-8", "replace").splitlines() if line.startswith("event: ")]
    assert len(names) == events_before_rst  # the same events as the original journal counted
    assert names[:3] == ["message_start", "ping", "content_block_start"] and names[3:].count("content_block_delta") == 20
    assert b'"thinking_delta"' in server and b"message_stop" not in server and b"text_delta" not in server

    # The RST: from the simulator's lane port, after the last record of application data it sent.
    data_frames = [
        int(f) for f in _tshark(tshark, "-r", pcap, *keys, "-Y", f"tls.app_data && tcp.srcport=={lane}", "-T", "fields", "-e", "frame.number").split()
    ]
    resets = _tshark(tshark, "-r", pcap, "-Y", "tcp.flags.reset==1", "-T", "fields", "-e", "frame.number", "-e", "tcp.srcport").split("\n")
    server_resets = [int(line.split("\t")[0]) for line in resets if line.strip() and int(line.split("\t")[1]) == lane]
    assert len(server_resets) == 1 and server_resets[0] > max(data_frames)
    assert not [f for f in data_frames if f > server_resets[0]]

    # The bundle says the same: its transcript of attempt 1 and its wire summary.
    (transcript,) = sorted((bundle / "sse").glob("attempt-1-*.sse"))
    assert transcript.read_bytes().count(b"event: ") == events_before_rst
    (attempt,) = json.loads((bundle / "wire.json").read_text())["attempts"]
    assert attempt["events"] == events_before_rst == attempt["journal_events_out"] and attempt["reset_after_last_data"]
