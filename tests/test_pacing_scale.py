"""Paced streams at scale: shared wake-ups are never early; the pacer runs paced schedules itself,
one write per connection per due moment, noting each piece once it is written, and hands a reply
back to its task for a fault, a write the kernel did not take, or a cancel; many paced streams on
one HTTP/2 connection each keep one DATA frame per event, on schedule, while sharing socket writes."""

from __future__ import annotations

import time

import trio

from simulator.api.events import WireEvent
from simulator.transport.pacer import RESOLUTION, Pacer
from simulator.transport.schedule import Cuts, Fire, Sleep, Write, reply_steps
from tests.wire import DataFrame, H2Probe


def test_pacer_wakes_every_sleeper_at_or_after_its_deadline_and_cancels_cleanly():
    woke: dict[int, tuple[float, float]] = {}

    async def sleeper(pacer: Pacer, number: int, deadline: float) -> None:
        await pacer.sleep_until(deadline)
        woke[number] = (deadline, trio.current_time())

    async def main() -> None:
        pacer = Pacer()
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for number in range(300):  # many share a bucket: 30 distinct deadlines
                nursery.start_soon(sleeper, pacer, number, start + 0.01 + (number % 30) * 0.002)
            with trio.move_on_after(0.005) as scope:  # a cancelled sleeper leaves without waking others
                await pacer.sleep_until(start + 10)
            assert scope.cancelled_caught
        assert not pacer._buckets  # nothing left behind by the cancelled one

    trio.run(main)
    assert len(woke) == 300
    for deadline, at in woke.values():
        assert at >= deadline
        assert at - deadline < 0.5  # bounded (a loaded machine may be late, never early)
    assert RESOLUTION <= 0.001


def test_many_paced_streams_on_one_connection_keep_a_frame_per_event_on_schedule(start_simulator):
    sim = start_simulator("--tokens-per-second", "100", "--frame-per-event")
    body = {"model": "m", "max_tokens": 1000, "stream": True, "messages": [{"role": "user", "content": "pace\n@sc words=20 deltas=20"}]}
    with H2Probe("127.0.0.1", sim.port, timeout_s=20) as probe:
        t0 = time.monotonic()
        streams = [probe.request(body=body) for _ in range(40)]
        assert probe.read_until(lambda p: all(p.ended(s) for s in streams), timeout_s=20)
        for stream in streams:
            frames = [f for f in probe.frames if isinstance(f.frame, DataFrame) and f.frame.stream_id == stream and f.frame.data]
            events = probe.events(stream)
            assert len(events) == 26 and events[-1].name == "message_stop"
            assert len(frames) == len(events)  # one DATA frame per event, even when writes are shared
            deltas = [f for f in frames if b"content_block_delta" in f.frame.data]
            # 19 paced intervals of 10 ms after the first delta: never early (client clock, so a
            # little slack for when the request itself left)
            assert deltas[-1].t - deltas[0].t >= 0.19 - 0.005
            assert deltas[-1].t - t0 < 10


class _Connection:
    """A connection as the pacer sees it: frames queue here; ``flush_now`` is one socket write."""

    def __init__(self, takes: bool = True) -> None:
        self.queued: list[bytes] = []
        self.writes: list[list[bytes]] = []
        self.takes = takes

    def flush_now(self) -> bool:
        if self.queued and self.takes:
            self.writes.append(self.queued)
            self.queued = []
        return self.takes


class _Sink:
    """A reply's writer as the pacer sees it: frames on its connection, notes its journal."""

    def __init__(self, connection: _Connection) -> None:
        self.connection, self.log = connection, []

    def frame_now(self, pieces):
        self.connection.queued.extend(data for data, _ in pieces)
        return len(pieces), self.connection

    def noted(self, pieces) -> None:  # called once the pieces are in the kernel
        self.log.extend(pieces)


def _paced(count: int, interval: float, label: bytes):
    events = tuple(WireEvent("content_block_delta", "text", label + b"%d;" % i, 1) for i in range(count))
    return events, [0.0] + [interval] * (count - 1)


def test_the_pacer_writes_each_connection_once_per_tick_and_notes_every_piece_after_the_write():
    connection = _Connection()
    sinks = [_Sink(connection) for _ in range(50)]
    results: dict[int, list] = {}

    async def one(pacer: Pacer, number: int, start: float) -> None:
        events, delays = _paced(20, 0.005, b"r%d-" % number)
        steps = reply_steps(events, Cuts(), delays, frames=True, coalesce_limit=1 << 20, now=start)
        handed = []
        step = next(steps)
        assert step == Write(((events[0].data, 1),))
        sinks[number].log.append(step.pieces[0])  # the first write is the task's own
        step = steps.send(start)
        assert type(step) is Sleep
        back = await pacer.drive(step.until, steps, sinks[number])
        handed.append((back.pending, back.written, back.step))
        results[number] = handed
        assert sinks[number].log == [(e.data, 1) for e in events]  # every event, in order, each once

    async def main() -> None:
        pacer = Pacer()
        start = time.monotonic()
        async with trio.open_nursery() as nursery:
            for number in range(50):
                nursery.start_soon(one, pacer, number, start)

    trio.run(main)
    assert all(handed == [([], True, None)] for handed in results.values())  # woken once: at the end
    # 19 paced events x 50 streams, all due at the same 19 moments: one write per moment at most
    assert sum(len(write) for write in connection.writes) == 19 * 50
    assert len(connection.writes) <= 19


def test_a_driven_reply_hands_back_its_fault_and_a_write_the_kernel_did_not_take_and_cancels_cleanly():
    async def main() -> None:
        pacer = Pacer()
        start = time.monotonic()
        events, delays = _paced(6, 0.002, b"x")
        stall = object()  # a firing, as far as the schedule and the pacer care
        cuts = Cuts(events={4: (stall,)})
        sink = _Sink(_Connection())
        steps = reply_steps(events, cuts, delays, frames=False, coalesce_limit=1 << 20, now=start)
        assert next(steps) == Write(((events[0].data, 1),))
        step = steps.send(start)
        back = await pacer.drive(step.until, steps, sink)
        # events 1..3 written and noted by the pacer; the fault before event 4 comes back to its task
        assert sink.log == [(events[i].data, 1) for i in (1, 2, 3)]
        assert back.written and back.pending == [] and type(back.step) is Fire and back.step.firing is stall
        assert back.step.events_out == 4

        # a connection whose kernel buffer is full: the task gets the framed pieces to write itself
        full = _Sink(_Connection(takes=False))
        events, delays = _paced(3, 0.2, b"y")
        steps = reply_steps(events, Cuts(), delays, frames=False, coalesce_limit=1 << 20, now=time.monotonic())
        next(steps)
        step = steps.send(time.monotonic())
        back = await pacer.drive(step.until, steps, full)
        assert not back.written and back.pending == [(events[1].data, 1)] and type(back.step) is Sleep
        assert full.log == []

        # cancelled while the pacer holds its schedule (after it moved it to a later deadline)
        events, delays = _paced(50, 0.01, b"z")
        steps = reply_steps(events, Cuts(), delays, frames=False, coalesce_limit=1 << 20, now=time.monotonic())
        sink = _Sink(_Connection())
        next(steps)
        step = steps.send(time.monotonic())
        with trio.move_on_after(0.1) as scope:
            await pacer.drive(step.until, steps, sink)
        assert scope.cancelled_caught and len(sink.log) < 49
        written = len(sink.log)
        await trio.sleep(0.05)  # nothing of it is advanced or woken after the cancel
        assert len(sink.log) == written
        assert not pacer._buckets

    trio.run(main)


def test_frame_per_event_keeps_one_frame_per_event_when_the_connection_window_runs_out(start_simulator):
    sim = start_simulator("--frame-per-event")
    body = {"model": "m", "max_tokens": 1000, "stream": True, "messages": [{"role": "user", "content": "window\n@sc words=40 deltas=40"}]}
    with H2Probe("127.0.0.1", sim.port, timeout_s=20) as probe:
        streams = [probe.request(body=body) for _ in range(40)]  # ~40 x 5.5 KB: past the 64 KiB connection window
        time.sleep(0.5)  # read nothing yet: the server writes until the window is spent, then waits
        assert probe.read_until(lambda p: all(p.ended(s) for s in streams), timeout_s=20)
        for stream in streams:
            frames = [f for f in probe.frames if isinstance(f.frame, DataFrame) and f.frame.stream_id == stream and f.frame.data]
            events = probe.events(stream)
            assert events[-1].name == "message_stop"
            assert len(frames) == len(events)  # no event split across two frames at the window's edge
