"""One trial's record: what the client said, what the server saw, and what that means.

The client's own account is taken only for what it printed; attempts, timing, backoff and faults
come from the simulator's journal. Integrity compares each printed answer with the answer the
simulator generated for that conversation (journaled with every request).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.clients.launch import ClientRun
from simulator import sse

OUTCOMES = ("recovered", "clean", "failed", "data_loss", "duplicated", "hung", "error")  # error: the harness could not run it


@dataclass(frozen=True)
class Attempt:
    request_id: str
    conn: int
    protocol: str | None
    status: int | None
    end: str
    t_start: float
    t_end: float
    events_out: int
    bytes_out: int
    faults: tuple[str, ...]
    retry_count: int | None

    @property
    def ok(self) -> bool:
        return self.end == "complete" and self.status == 200 and not self.faults_ended

    @property
    def faults_ended(self) -> bool:
        return self.end.startswith("fault:")


@dataclass(frozen=True)
class LogicalRequest:
    conversation: str
    attempts: tuple[Attempt, ...]
    answer_text: str
    answer_bytes: int  # bytes of one whole reply, for amplification

    @property
    def failed_first(self) -> bool:
        return not self.attempts[0].ok

    @property
    def succeeded(self) -> bool:
        return any(a.ok for a in self.attempts)


@dataclass
class TrialRecord:
    run_id: str
    scenario: str
    client: str
    trial: int
    key: str
    outcome: str
    exit_code: int | None
    hung: bool
    elapsed_s: float
    error_line: str | None
    answers_expected: int
    answers_intact: int
    integrity: list[str]
    faults_fired: int
    attempts: list[list[dict[str, Any]]]  # per logical request, its attempts
    backoff_ms: list[float]
    time_to_recover_ms: float | None
    bytes_out: int
    bytes_needed: int
    events_out: int
    connections: int
    stdout_tail: str = ""
    stderr_tail: str = ""
    skipped: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def recovered(self) -> bool:
        return self.outcome in ("recovered", "clean")


def printed_answers(run: ClientRun, output: str) -> list[str]:
    """The answers the client printed, in order."""
    if output == "sse":
        events = sse.Decoder().feed(run.stdout.encode())
        text = "".join(_delta_text(e) for e in events if e.name == "content_block_delta")
        complete = any(e.name == "message_stop" for e in events)
        return [text] if run.exit_code == 0 and complete else ([text] if text else [])
    answers: list[str] = []
    for turn in run.turns:
        if "error" in turn:
            continue
        said = turn.get("text")
        if isinstance(said, str):
            answers.append(said)
    return answers


def _delta_text(event: sse.Event) -> str:
    try:
        delta = event.json().get("delta", {})
    except ValueError:
        return ""
    return delta.get("text", "") if isinstance(delta, dict) else ""


def logical_requests(records: Iterable[dict[str, Any]]) -> list[LogicalRequest]:
    """Group the journal's message requests by conversation, attempts in time order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in sorted((r for r in records if r["kind"] == "request" and r.get("conversation")), key=lambda r: r["t_headers"]):
        groups.setdefault(record["conversation"], []).append(record)
    out = []
    for conversation, items in groups.items():
        attempts = tuple(
            Attempt(
                request_id=r["request_id"],
                conn=r["conn"],
                protocol=r.get("protocol"),
                status=r.get("status"),
                end=r.get("end", "open"),
                t_start=r["t_headers"],
                t_end=r.get("t_end", r["t_headers"]),
                events_out=r.get("events_out", 0),
                bytes_out=r.get("bytes_out", 0),
                faults=tuple(f["type"] for f in r.get("faults", []) if "not_reached" not in f and "skipped" not in f),
                retry_count=r.get("retry_count"),
            )
            for r in items
        )
        answer: dict[str, Any] = next((r["answer"] for r in items if r.get("answer")), {})
        whole = max((r.get("bytes_out", 0) for r in items if r.get("end") == "complete"), default=0)
        out.append(LogicalRequest(conversation, attempts, answer.get("text", ""), whole))
    return out


def judge(answers: Sequence[str], expected: Sequence[str], expected_count: int) -> tuple[int, list[str]]:
    """How many printed answers are intact; a note for each that is not, or that is missing."""
    notes, intact = [], 0
    wanted = [text for text in expected if text]
    for index, text in enumerate(answers):
        if text in wanted:
            intact += 1
            continue
        if any(w.startswith(text) and len(text) < len(w) for w in wanted):
            notes.append(f"answer {index}: truncated ({len(text)} characters)")
        elif any(w and w in text and len(text) > len(w) for w in wanted):  # a repeat, or a restarted stream's kept prefix
            notes.append(f"answer {index}: duplicated text")
        else:
            notes.append(f"answer {index}: corrupted (matches no generated answer)")
    if len(answers) < expected_count:
        notes.append(f"{expected_count - len(answers)} answer(s) missing")
    return intact, notes


def classify(run: ClientRun, intact: int, expected_count: int, notes: list[str]) -> str:
    if run.hung:
        return "hung"
    if any("duplicated" in note for note in notes) and run.exit_code == 0:
        return "duplicated"
    if run.exit_code == 0:
        return "recovered" if intact >= expected_count and not notes else "data_loss"
    return "failed"


def backoffs_ms(groups: Sequence[LogicalRequest]) -> list[float]:
    """Server-measured gap between the end of a failed attempt and the start of the next.

    An attempt the client abandoned silently (a black hole, a stall) ends, for the server, only
    when the connection closes, which can be after the retry began: that gap is unknown to the
    server and left out rather than reported as a negative backoff."""
    gaps = []
    for group in groups:
        for previous, current in zip(group.attempts, group.attempts[1:]):
            gap = current.t_start - previous.t_end
            if gap >= 0:
                gaps.append(round(gap * 1000, 3))
    return gaps


def time_to_recover_ms(groups: Sequence[LogicalRequest], fault_times: Sequence[float]) -> float | None:
    """From the first fault to the end of the attempt that finally succeeded (the last such)."""
    if not fault_times:
        return None
    recovered = [a.t_end for g in groups if g.failed_first for a in g.attempts if a.ok]
    if not recovered:
        return None
    return round((max(recovered) - min(fault_times)) * 1000, 3)


def build(
    run_id: str, scenario: str, client: str, trial: int, key: str, run: ClientRun, output: str, records: list[dict[str, Any]], expected_count: int
) -> TrialRecord:
    groups = logical_requests(records)
    answers = printed_answers(run, output)
    intact, notes = judge(answers, [g.answer_text for g in groups], expected_count)
    outcome = classify(run, intact, expected_count, notes)
    fault_times = [f["t"] for r in records for f in r.get("faults", []) if "t" in f and "not_reached" not in f and "skipped" not in f]
    if outcome == "recovered" and not fault_times:
        outcome = "clean"  # nothing fired: nothing to recover from
    bytes_out = sum(r.get("bytes_out", 0) for r in records if r["kind"] == "request")
    return TrialRecord(
        run_id=run_id,
        scenario=scenario,
        client=client,
        trial=trial,
        key=key,
        outcome=outcome,
        exit_code=run.exit_code,
        hung=run.hung,
        elapsed_s=round(run.elapsed_s, 4),
        error_line=run.error_line,
        answers_expected=expected_count,
        answers_intact=intact,
        integrity=notes,
        faults_fired=len(fault_times),
        attempts=[
            [
                {
                    "ok": a.ok,
                    "end": a.end,
                    "status": a.status,
                    "conn": a.conn,
                    "protocol": a.protocol,
                    "t_start": a.t_start,
                    "t_end": a.t_end,
                    "events_out": a.events_out,
                    "bytes_out": a.bytes_out,
                    "faults": list(a.faults),
                    "retry_count": a.retry_count,
                }
                for a in g.attempts
            ]
            for g in groups
        ],
        backoff_ms=backoffs_ms(groups),
        time_to_recover_ms=time_to_recover_ms(groups, fault_times),
        bytes_out=bytes_out,
        bytes_needed=sum(g.answer_bytes for g in groups),
        events_out=sum(r.get("events_out", 0) for r in records if r["kind"] == "request"),
        connections=len([r for r in records if r["kind"] == "connection"]),
        stdout_tail=run.stdout[-800:],
        stderr_tail=run.stderr[-800:],
    )
