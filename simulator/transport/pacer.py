"""Shared wake-ups for paced streams: one sleeper per deadline bucket, not one timer per stream.

A paced reply sleeps before most of its events. With a thousand streams at 50 events/s, giving
each sleep its own trio cancel scope and deadline costs more than writing the event. Here every
waiting task is parked in the bucket of its deadline (``RESOLUTION`` wide, rounded *up*: a task
is never woken early, at most ``RESOLUTION`` late); one system task sleeps until the earliest
bucket and wakes everything in it at once. Streams due together therefore also run together,
and those sharing an HTTP/2 connection leave in one socket write (see ``H2Handler.flush``).
"""

from __future__ import annotations

import heapq
import math
import time

import trio

RESOLUTION = 0.0005  # seconds: the width of a bucket


class Pacer:
    def __init__(self) -> None:
        self._buckets: dict[int, list] = {}
        self._heap: list[int] = []
        self._scope: trio.CancelScope | None = None
        self._running = False

    async def sleep_until_monotonic(self, at: float) -> None:
        """Sleep until ``time.monotonic() >= at`` (checkpoint even when ``at`` has passed)."""
        delay = at - time.monotonic()
        if delay <= 0:
            await trio.lowlevel.checkpoint()
            return
        await self.sleep_until(trio.current_time() + delay)

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until trio's clock reaches ``deadline`` (rounded up to the bucket)."""
        key = math.ceil(deadline / RESOLUTION)
        task = trio.lowlevel.current_task()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = []
            heapq.heappush(self._heap, key)
            if not self._running:
                self._running = True
                trio.lowlevel.spawn_system_task(self._run, name="streamchaos-pacer")
            elif self._scope is not None and key * RESOLUTION < self._scope.deadline:
                self._scope.deadline = key * RESOLUTION
        entry = [task]
        bucket.append(entry)

        def abort(_raise_cancel) -> trio.lowlevel.Abort:
            entry[0] = None  # cancelled: nothing to wake (a stale heap key only wakes the sleeper once)
            if self._buckets.get(key) is bucket:
                bucket.remove(entry)
                if not bucket:
                    del self._buckets[key]
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    async def _run(self) -> None:
        try:
            while True:
                if not self._heap:
                    self._scope = trio.CancelScope()
                else:
                    self._scope = trio.CancelScope(deadline=self._heap[0] * RESOLUTION)
                with self._scope:
                    await trio.sleep_forever()
                now = trio.current_time()
                while self._heap and self._heap[0] * RESOLUTION <= now:
                    key = heapq.heappop(self._heap)
                    for entry in self._buckets.pop(key, ()):
                        if entry[0] is not None:
                            trio.lowlevel.reschedule(entry[0])
        finally:
            self._running = False
            self._scope = None
            # the run is ending: wake whoever still waits, so nothing sleeps forever
            for bucket in self._buckets.values():
                for entry in bucket:
                    if entry[0] is not None:
                        try:
                            trio.lowlevel.reschedule(entry[0])
                        except Exception:  # noqa: BLE001 - a task already gone
                            pass
            self._buckets.clear()
            self._heap.clear()


_PACER: trio.lowlevel.RunVar = trio.lowlevel.RunVar("streamchaos_pacer")


def pacer() -> Pacer:
    """The pacer of the current trio run."""
    try:
        return _PACER.get()
    except LookupError:
        value = Pacer()
        _PACER.set(value)
        return value
