"""The reply's schedule, sans-IO: which bytes go out, when, and where each fault fires.

The writer in :mod:`.exchange` only carries steps out (socket writes, sleeps, fault actions);
everything that decides them lives here, as plain functions of the reply's events, its cut points
and its pacing, so "exactly N events, then the reset" is asserted as a list of steps, without a
socket (tests/test_schedule.py), the way h2's ``H2Connection`` or mitmproxy's ``Playbook`` are
tested. The wire tests still check that the executor does what the steps say.

A schedule is a generator: it yields a step, and the executor sends back ``time.monotonic()``
once the step is done. Time enters only there, so a test drives it with a fake clock.

Each :class:`Write` piece is ``(bytes, events)``: one DATA frame (h2) or chunk (HTTP/1.1) and one
journal entry. Coalesced, a write is one piece holding every event batched since the last write;
frame per event, it holds one piece per event, all due at the same moment (one socket write).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..api.events import WireEvent

Piece = tuple[bytes, int]  # (bytes, events that end in them)


# -- the steps ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Write:
    """Write these pieces in one socket write; the journal notes each once all are in the kernel."""

    pieces: tuple[Piece, ...]


@dataclass(frozen=True, slots=True)
class Sleep:
    """Sleep until ``until`` (``time.monotonic()``). Pacing uses the shared pacer (rounded up to
    its bucket); ``exact``: a fault's own deadline or a split event's gap, on trio's timer."""

    until: float
    exact: bool = False


@dataclass(frozen=True, slots=True)
class Fire:
    """Carry out the fault; ``pieces`` go out first, as its action flushes them (a black hole stops
    answering before they leave). ``events_out``/``bytes_out``: the reply on the wire then."""

    firing: Any
    pieces: tuple[Piece, ...] = ()
    events_out: int = 0
    bytes_out: int = 0


@dataclass(frozen=True, slots=True)
class Mark:
    """Note a malformed-event fault in the journal (its bytes follow as ordinary writes)."""

    firing: Any


@dataclass(frozen=True, slots=True)
class Miss:
    """Note a chosen fault that this reply never reached, and why."""

    firing: Any
    why: str


Step = Write | Sleep | Fire | Mark | Miss


# -- inputs -------------------------------------------------------------------------------------


class Cutting(Protocol):
    """A firing as the schedule sees it: its rule's trigger and, for a split event, its fault."""

    rule: Any


@dataclass(frozen=True, slots=True)
class Pacing:
    ttft_s: float
    tokens_per_second: float | None
    jitter: float = 0.0


@dataclass(frozen=True, slots=True)
class Cuts:
    """Where each chosen fault fires in one reply: before event ``i``, at byte ``n``, at an
    instant (``time.monotonic()``), or on event ``i`` itself (a malformed event). ``misses``:
    those this reply cannot reach at all, noted before anything is written."""

    events: Mapping[int, tuple[Any, ...]] = field(default_factory=dict)
    bytes: tuple[tuple[int, Any], ...] = ()
    times: tuple[tuple[float, Any], ...] = ()
    garbles: Mapping[int, Any] = field(default_factory=dict)
    misses: tuple[tuple[Any, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.events or self.bytes or self.times or self.garbles)


def plan_cuts(
    events: Sequence[WireEvent], firings: Sequence[Cutting], corrupts: Callable[[Cutting], bool], t_headers: float, plan_t0: float, body_bytes: int
) -> Cuts:
    """The cut points of ``firings`` (faults that act at a point of the stream, in the plan's
    order). One that ``corrupts`` its event (a malformed event) is placed on the event counted
    to, not before it. ``ms`` counts from the request's headers, ``budget`` is byte-seconds over
    the request body's size, ``clock`` counts from the plan's load but never fires before the
    headers; ``headers`` (and connection triggers) are not the stream's to place."""
    by_event: dict[int, list[Any]] = {}
    by_byte: list[tuple[int, Any]] = []
    by_time: list[tuple[float, Any]] = []
    garbles: dict[int, Any] = {}
    misses: list[tuple[Any, str]] = []
    for firing in firings:
        trigger = firing.rule.trigger
        if trigger.at == "events":
            position = event_position(events, int(trigger.value), trigger.block)
            if position is None:
                misses.append((firing, f"the answer has no {trigger.block} block"))
            elif corrupts(firing):
                garbles[position] = firing
            else:
                by_event.setdefault(position, []).append(firing)
        elif trigger.at == "bytes":
            by_byte.append((int(trigger.value), firing))
        elif trigger.at in ("ms", "budget"):
            seconds = trigger.value / 1000 if trigger.at == "ms" else trigger.value / max(1, body_bytes)
            by_time.append((t_headers + seconds, firing))
        elif trigger.at == "clock":
            by_time.append((max(plan_t0 + trigger.value, t_headers), firing))
    by_byte.sort(key=lambda cut: cut[0])
    by_time.sort(key=lambda cut: cut[0])
    return Cuts({k: tuple(v) for k, v in by_event.items()}, tuple(by_byte), tuple(by_time), garbles, tuple(misses))


def event_position(events: Sequence[WireEvent], count: int, block: str | None) -> int | None:
    """The index before which a fault "after ``count`` events" fires; with ``block``, after
    ``count`` deltas of the first block of that type (0: right after its content_block_start)."""
    if block is None:
        return min(count, len(events))
    start = next((i for i, e in enumerate(events) if e.name == "content_block_start" and e.block == block), None)
    if start is None:
        return None
    if count == 0:
        return start + 1
    seen = 0
    for index in range(start + 1, len(events)):
        event = events[index]
        if event.block != block or event.name == "content_block_stop":
            return index
        if event.name == "content_block_delta":
            seen += 1
            if seen == count:
                return index + 1
    return len(events)


def event_delays(pacing: Pacing, events: Sequence[WireEvent]) -> list[float]:
    """Seconds to wait before each event: time to first token before the first content block,
    then one token interval per token of each delta."""
    delays = [0.0] * len(events)
    first_block = next((i for i, e in enumerate(events) if e.name == "content_block_start"), None)
    if first_block is not None:
        delays[first_block] = pacing.ttft_s
    if pacing.tokens_per_second:
        interval = 1.0 / pacing.tokens_per_second
        seen_delta = False
        for index, event in enumerate(events):
            if event.name == "content_block_delta":
                if seen_delta:
                    delays[index] += interval * max(1, event.tokens)
                seen_delta = True
    return delays


# -- the schedules ------------------------------------------------------------------------------


class _Batch:
    """What is due but not yet written, and what the reply has put on the wire so far."""

    __slots__ = ("bytes_out", "events", "events_out", "frames", "pieces", "size")

    def __init__(self, frames: bool) -> None:
        self.frames = frames
        self.pieces: list[Piece] = []
        self.size = self.events = self.events_out = self.bytes_out = 0

    def add(self, data: bytes, events: int) -> None:
        self.pieces.append((data, events))
        self.size += len(data)
        self.events += events

    def take(self) -> tuple[Piece, ...]:
        """The batch as it leaves: one piece per event, or all of it joined (coalesced)."""
        if not self.pieces:
            return ()
        if self.frames or len(self.pieces) == 1:
            out = tuple(self.pieces)
        else:
            out = ((b"".join(data for data, _ in self.pieces), self.events),)
        self.events_out += self.events
        self.bytes_out += self.size
        self.pieces, self.size, self.events = [], 0, 0
        return out

    def fire(self, firing: Any) -> Fire:
        pieces = self.take()
        return Fire(firing, pieces, self.events_out, self.bytes_out)


def reply_steps(
    events: Sequence[WireEvent], cuts: Cuts, delays: Sequence[float], *, frames: bool, coalesce_limit: int, now: float
) -> Generator[Step, float, None]:
    """The steps of a streamed reply. ``delays[i]``: seconds before event ``i`` (pacing), counted
    from the previous event's due time, or from the end of a fault that fired (a stall delays
    all that follows). A time cut fires at its instant while the reply sleeps, else before the
    first event written after it; a byte cut splits the event it falls in."""
    batch = _Batch(frames)
    if not cuts and not any(delays):  # nothing paces or cuts it: coalescing alone decides
        for event in events:
            batch.add(event.data, 1)
            if batch.size >= coalesce_limit:
                now = yield Write(batch.take())
        if batch.pieces:
            yield Write(batch.take())
        return
    event_cuts = {k: list(v) for k, v in cuts.events.items()}
    byte_cuts, time_cuts = list(cuts.bytes), list(cuts.times)
    due, reanchor, written = now, False, 0
    for index, event in enumerate(events):
        if reanchor:
            due, reanchor = now, False
        if delays[index] > 0:
            if batch.pieces:
                now = yield Write(batch.take())
            due += delays[index]
            while time_cuts and time_cuts[0][0] <= due:  # sleeping through a fault's instant
                at, firing = time_cuts.pop(0)
                yield Sleep(at, exact=True)
                now = yield batch.fire(firing)
                reanchor = True
            now = yield Sleep(due)
        while time_cuts and time_cuts[0][0] <= now:
            now = yield batch.fire(time_cuts.pop(0)[1])
            reanchor = True
        for firing in event_cuts.pop(index, ()):
            now = yield batch.fire(firing)
            reanchor = True
        data = event.data
        while byte_cuts and byte_cuts[0][0] < written + len(data):
            offset, firing = byte_cuts.pop(0)
            split = offset - written
            if split > 0:
                batch.add(data[:split], 0)
            data, written = data[split:], written + split
            now = yield batch.fire(firing)
            reanchor = True
        garbling = cuts.garbles.get(index)
        if garbling is not None:
            now = yield from _garbled(batch, data, garbling, now)
        else:
            batch.add(data, 1)
        written += len(data)
        if batch.size >= coalesce_limit:
            now = yield Write(batch.take())
    for firing in event_cuts.pop(len(events), ()):
        now = yield batch.fire(firing)
    for offset, firing in byte_cuts:
        if offset == written:
            now = yield batch.fire(firing)
        else:
            yield Miss(firing, "the answer had fewer bytes")
    if batch.pieces:
        yield Write(batch.take())
    for _, firing in time_cuts:
        yield Miss(firing, "the answer ended first")
    for remaining in event_cuts.values():
        for firing in remaining:
            yield Miss(firing, "the answer had fewer events")


def _garbled(batch: _Batch, data: bytes, firing: Any, now: float) -> Generator[Step, float, float]:
    """A malformed event: noted (after what is due is written, frame per event), then written as
    its fault's pieces, ``gap_s`` apart; the event counts once, with its last piece."""
    if batch.frames and batch.pieces:
        now = yield Write(batch.take())
    now = yield Mark(firing)
    fault = firing.rule.fault
    pieces = fault.pieces(data)
    for number, piece in enumerate(pieces):
        if number:
            if batch.pieces:
                now = yield Write(batch.take())
            now = yield Sleep(now + fault.gap_s, exact=True)
        batch.add(piece, 1 if number == len(pieces) - 1 else 0)
    return now


def body_steps(body: bytes, byte_cuts: Sequence[tuple[int, Any]]) -> Generator[Step, float, None]:
    """A JSON body cut at byte offsets (each below the body's length, in order): the bytes before
    each cut, then the fault; the rest, if the reply survives, in one write."""
    batch = _Batch(frames=False)
    sent = 0
    for offset, firing in byte_cuts:
        if offset > sent:
            batch.add(body[sent:offset], 0)
            sent = offset
        yield batch.fire(firing)
    batch.add(body[sent:], 0)
    yield Write(batch.take())


def run(steps: Generator[Step, float, None], now: float = 0.0, cost: Mapping[int, float] | None = None) -> list[Step]:
    """All steps of a schedule against a fake clock: a sleep ends at its deadline, and the step at
    position ``i`` takes ``cost[i]`` seconds (a stall, a slow write). For tests and reasoning."""
    out: list[Step] = []
    cost = cost or {}
    try:
        step = next(steps)
        while True:
            out.append(step)
            if isinstance(step, Sleep):
                now = max(now, step.until)
            now += cost.get(len(out) - 1, 0.0)
            step = steps.send(now)
    except StopIteration:
        return out
