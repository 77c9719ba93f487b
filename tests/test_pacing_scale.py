"""Paced streams at scale: shared wake-ups are never early, and many paced streams on one HTTP/2
connection each keep one DATA frame per event, on schedule, while sharing socket writes."""

from __future__ import annotations

import time

import trio

from tests.wire import DataFrame, H2Probe
from simulator.transport.pacer import RESOLUTION, Pacer


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
