"""The journal's memory is bounded by bytes, its reads are paged, its file rotates, and the
control API refuses what would exhaust or crash it (issue 11)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from harness.drive import simulator_process
from harness.drive.simulator_process import SimulatorProcess
from simulator.journal import PAGE_RECORDS, PAGE_RECORDS_MAX
from tests.keepalive_client import KeepAlive, messages_body


def control(sim: SimulatorProcess, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(sim.control_url + path, data=body, method=method, headers={**sim.control_headers(), **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def fill(sim: SimulatorProcess, count: int, key: str = "sk-fill", words: int = 40) -> None:
    with KeepAlive("127.0.0.1", sim.port) as conn:
        for number in range(count):
            assert (
                conn.request("POST", "/v1/messages", messages_body(f"record {number}\n@sc words={words}", max_tokens=words + 10), key=key).status
                == 200
            )


def test_memory_is_bounded_by_bytes_oldest_first_and_the_file_keeps_everything(tmp_path):
    journal = tmp_path / "journal.jsonl"
    with SimulatorProcess(["--journal", str(journal), "--journal-memory-mb", "0.25"]) as sim:
        fill(sim, 300, words=200)  # about 2.5 KB a record: 300 of them are 3x the budget
        _, health = control(sim, "GET", "/health")
        stats = health["journal"]
        assert stats["bytes"] <= 0.25 * 1024 * 1024 and stats["evicted"] > 0 and stats["oldest_seq"] == stats["evicted"] + 1
        held = [r for r in sim.journal() if "seq" in r]  # committed ones (a connection may still be closing)
        assert [r["seq"] for r in held] == list(range(stats["oldest_seq"], stats["oldest_seq"] + len(held)))  # the newest, in order
        _, page = control(sim, "GET", "/journal?since=0&limit=1")
        assert page["records"][0]["seq"] == stats["oldest_seq"] and page["evicted"] == stats["evicted"]
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [r["seq"] for r in lines] == list(range(1, len(lines) + 1)) and sum(r["kind"] == "request" for r in lines) == 300


def test_journal_reads_are_paged_with_a_cursor_and_capped(monkeypatch):
    with SimulatorProcess([]) as sim:
        fill(sim, 1100, key="sk-page", words=5)  # 1,100 request records on one connection
        status, first = control(sim, "GET", "/journal")  # no key: a page, never everything
        assert status == 200 and len(first["records"]) == PAGE_RECORDS and first["next"] == first["records"][-1]["seq"]
        status, rest = control(sim, "GET", f"/journal?since={first['next']}")
        assert status == 200 and rest["next"] is None and {r["seq"] for r in first["records"]}.isdisjoint(r.get("seq") for r in rest["records"])
        status, keyed = control(sim, "GET", "/journal?key=sk-page&limit=600")
        assert status == 200 and len(keyed["records"]) == 600 and keyed["next"] is not None
        for bad, fragment in [
            ("key=", "key must not be empty"),
            ("limit=0", "limit must be between 1 and"),
            (f"limit={PAGE_RECORDS_MAX + 1}", "limit must be between 1 and"),
            ("since=abc", "since must be a whole number"),
            ("since=%C2%B2", "since must be a whole number"),
        ]:
            status, body = control(sim, "GET", f"/journal?{bad}")
            assert status == 400 and fragment in body["error"], (bad, body)
        # The harness's client pages through: every record once, in order.
        monkeypatch.setattr(simulator_process, "JOURNAL_PAGE", 97)
        records = [r for r in sim.journal("sk-page") if r["kind"] == "request"]
        assert len(records) == 1100 and [r["seq"] for r in records] == sorted({r["seq"] for r in records})


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:"))


def test_reset_frees_the_journal_and_the_answer_cache():
    """Measured: 41.6 MiB at start, 55.5 with 9.4 MiB of journal, 42.0 after the reset."""
    with SimulatorProcess([]) as sim:
        fill(sim, 300, words=5000)
        _, before = control(sim, "GET", "/health")
        filled = rss_mib(sim.process.pid)
        assert before["journal"]["bytes"] > 8_000_000
        assert control(sim, "POST", "/reset")[0] == 200
        _, after = control(sim, "GET", "/health")
        assert after["journal"]["bytes"] == 0 and after["journal"]["records"] == 0
        assert sim.journal() == []
        freed = filled - rss_mib(sim.process.pid)
        assert freed >= 0.5 * before["journal"]["bytes"] / 2**20, (filled, freed, before["journal"])  # given back to the system


def test_the_journal_file_rotates_past_its_size(tmp_path):
    journal = tmp_path / "j.jsonl"
    with SimulatorProcess(["--journal", str(journal), "--journal-max-mb", "0.05"]) as sim:  # 50 KiB segments
        fill(sim, 150, words=100)
        _, health = control(sim, "GET", "/health")
        assert health["journal"]["rotations"] >= 4
    segments = [journal] + [journal.with_name(f"j.jsonl.{n}") for n in range(1, 5)]
    assert all(path.exists() for path in segments) and not journal.with_name("j.jsonl.5").exists()
    assert all(path.stat().st_size <= 0.05 * 1024 * 1024 for path in segments)
    seqs = [json.loads(line)["seq"] for path in reversed(segments) for line in path.read_text().splitlines()]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) and seqs[-1] == 151  # the newest, contiguous (150 requests, 1 connection)


@pytest.mark.parametrize(
    "body, status, fragment",
    [
        (b"x" * (1024 * 1024 + 1), 413, "larger than 1048576 bytes"),
        (b'{"faults":[{"type":"tcp_reset","trigger":{"at":"events","value":Infinity}}]}', 400, "Infinity is not a number JSON allows"),
        (b'{"faults":[{"type":"tcp_reset","trigger":{"at":"events","value":NaN}}]}', 400, "NaN is not a number JSON allows"),
        (b'{"faults":[{"type":"tcp_reset","trigger":{"at":"events","value":1e999}}]}', 400, "out of range for a finite number"),
        (b'{"faults":' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "nested more than"),
        (b"not json", 400, "plan is not JSON"),
    ],
)
def test_control_bodies_are_capped_and_numbers_finite(sim_for_control, body, status, fragment):
    got, answer = control(sim_for_control, "PUT", "/plan", body, {"content-type": "application/json"})
    assert got == status and fragment in answer["error"], answer
    assert control(sim_for_control, "GET", "/health")[0] == 200


@pytest.fixture(scope="module")
def sim_for_control():
    with SimulatorProcess([]) as process:
        yield process


def test_every_control_failure_is_a_json_answer(sim_for_control):
    for method, path, body in [
        ("DELETE", "/lanes/abc", None),
        ("POST", "/lanes", b"[1]"),
        ("POST", "/lanes", b'{"trial": 5}'),
        ("GET", "/nope", None),
    ]:
        status, answer = control(sim_for_control, method, path, body)
        assert status in (400, 404) and answer["error"], (method, path, answer)
