"""Shared wake-ups for paced streams: one timer for every stream, and no task wake-up per event.

A paced reply sleeps before most of its events. With a thousand streams at 50 events/s, waking
each stream's task for each event (and again to gather its connection's write) costs more than
writing the event. Here every sleeper is parked in the bucket of its deadline (``RESOLUTION``
wide, rounded *up*: never woken early, at most ``RESOLUTION`` late); one system task sleeps until
the earliest bucket and serves everything in it at once.

A reply whose channel can frame without I/O (``frame_now``: HTTP/2 over plain TCP) hands the
pacer its schedule (:mod:`.schedule`) with :meth:`Pacer.drive`: at each tick the pacer advances
every due schedule itself, frames each due write on its connection, then writes each connection
once (events due together on one connection, several streams or a burst after a stall, leave in
one socket write, each keeping its own frames) and notes every write in the journal once it is in
the kernel. The reply's task stays parked, owning its stream, until its schedule needs it: a
fault, an exact sleep, a write that must wait (flow control, a full socket), or its end.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Generator
from typing import Any

import outcome
import trio

from .schedule import Sleep, Write

RESOLUTION = 0.0005  # seconds: the width of a bucket


class Handback:
    """What a driven reply's task does when it wakes: write ``pending`` out and note it (unless
    ``written``), then carry on with ``step`` (None: the schedule ended)."""

    __slots__ = ("pending", "step", "written")

    def __init__(self, pending: list, written: bool, step: Any) -> None:
        self.pending, self.written, self.step = pending, written, step


class _Driven:
    """One reply whose schedule the pacer runs while its task waits."""

    __slots__ = ("entry", "next", "pending", "sink", "steps", "task", "until")

    def __init__(self, task: Any, steps: Generator[Any, float, None], sink: Any, until: float) -> None:
        self.task, self.steps, self.sink, self.until = task, steps, sink, until
        self.pending: list = []  # pieces framed this tick, noted once their connection's write is done
        self.next: Any = None  # ("park", until) | ("back", step) | ("error", exception)
        self.entry: list = []  # its place in the pacer's buckets (see Pacer._wait)


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
        await self._wait(deadline, None)

    async def drive(self, until: float, steps: Generator[Any, float, None], sink: Any) -> Handback:
        """Run ``steps`` (a reply schedule paused at ``Sleep(until)``, monotonic) from ``until`` on,
        framing its writes through ``sink.frame_now``, until it needs its task again. The steps
        are :data:`.schedule.Step` values, dispatched on their exact type (``Any``: mypy does not
        narrow through ``kind``)."""
        entry = _Driven(trio.lowlevel.current_task(), steps, sink, until)
        return await self._wait(trio.current_time() + (until - time.monotonic()), entry)

    async def _wait(self, deadline: float, driven: _Driven | None) -> Any:
        # [task, driven, bucket key]: the one entry of this wait, parked again (same object) each
        # time the pacer moves a driven schedule to its next deadline
        entry: list[Any] = [trio.lowlevel.current_task(), driven, math.ceil(deadline / RESOLUTION)]
        if driven is not None:
            driven.entry = entry
        self._park(entry)

        def abort(_raise_cancel) -> trio.lowlevel.Abort:
            entry[0] = None  # cancelled: nothing to wake or advance (a stale heap key only wakes the sleeper once)
            bucket = self._buckets.get(entry[2])
            if bucket is not None:
                for index, other in enumerate(bucket):
                    if other is entry:
                        del bucket[index]
                        break
                if not bucket:
                    del self._buckets[entry[2]]
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort)

    def _park(self, entry: list) -> None:
        key = entry[2]
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = []
            heapq.heappush(self._heap, key)
            if not self._running:
                self._running = True
                trio.lowlevel.spawn_system_task(self._run, name="streamchaos-pacer")
            elif self._scope is not None and key * RESOLUTION < self._scope.deadline:
                self._scope.deadline = key * RESOLUTION
        bucket.append(entry)

    def tick_if_due(self) -> None:
        """Serve what is due now from the calling task. A burst of other work (a thousand requests
        arriving at once) runs as one long batch of trio tasks, and the pacer's own wake-up waits
        for the batch to end; request handling calls this between its steps instead."""
        if self._heap and self._heap[0] * RESOLUTION <= trio.current_time():
            self._tick()

    async def _run(self) -> None:
        try:
            while True:
                if not self._heap:
                    self._scope = trio.CancelScope()
                else:
                    self._scope = trio.CancelScope(deadline=self._heap[0] * RESOLUTION)
                with self._scope:
                    await trio.sleep_forever()
                self._tick()
        finally:
            self._running = False
            self._scope = None
            # the run is ending: wake whoever still waits, so nothing sleeps forever
            for bucket in self._buckets.values():
                for task, driven, _ in bucket:
                    if task is not None:
                        try:
                            trio.lowlevel.reschedule(task, outcome.Value(Handback([], True, Sleep(driven.until)) if driven else None))
                        except Exception:
                            pass
            self._buckets.clear()
            self._heap.clear()

    def _tick(self) -> None:
        """Wake or advance everything due; then one write per connection, and the journal notes."""
        now = trio.current_time()
        mono = time.monotonic()
        groups: dict[int, tuple[Any, list[_Driven]]] = {}
        done: list[_Driven] = []
        while self._heap and self._heap[0] * RESOLUTION <= now:
            key = heapq.heappop(self._heap)
            for task, driven, _ in self._buckets.pop(key, ()):
                if task is None:
                    continue
                if driven is None:
                    trio.lowlevel.reschedule(task)
                    continue
                flusher = self._advance(driven, mono)
                if flusher is None:
                    done.append(driven)
                else:
                    group = groups.get(id(flusher))
                    if group is None:
                        groups[id(flusher)] = (flusher, [driven])
                    else:
                        group[1].append(driven)
        for flusher, driven_here in groups.values():
            try:
                written = flusher.flush_now()
            except Exception as error:
                for driven in driven_here:
                    driven.next = ("error", error)
                done.extend(driven_here)
                continue
            if written:
                for driven in driven_here:
                    driven.sink.noted(driven.pending)
                    driven.pending = []
            else:  # the kernel did not take it all: each owner waits for the rest itself
                for driven in driven_here:
                    if driven.next[0] == "park":
                        driven.next = ("back", Sleep(driven.next[1]))
            done.extend(driven_here)
        offset = now - mono
        for driven in done:
            what, value = driven.next
            driven.next = None
            if what == "park":
                driven.until = value
                entry = driven.entry
                if entry[0] is not None:  # (always: nothing cancels a task during a tick)
                    entry[2] = math.ceil((value + offset) / RESOLUTION)
                    self._park(entry)
            elif what == "back":
                pending, driven.pending = driven.pending, []
                trio.lowlevel.reschedule(driven.task, outcome.Value(Handback(pending, not pending, value)))
            else:
                trio.lowlevel.reschedule(driven.task, outcome.Error(value))

    def _advance(self, driven: _Driven, mono: float) -> Any:
        """Run one schedule through what is due now; its connection's flusher if it framed any."""
        flusher = None
        steps, sink = driven.steps, driven.sink
        try:
            step = steps.send(mono)
            while True:
                kind = type(step)
                if kind is Write:
                    pieces = step.pieces
                    framed, out = sink.frame_now(pieces)
                    if framed:
                        flusher = out
                        driven.pending.extend(pieces[:framed])
                    if framed < len(pieces):  # flow control or a busy connection: its task writes the rest
                        driven.next = ("back", Write(pieces[framed:]))
                        break
                    step = steps.send(mono)
                elif kind is Sleep and not step.exact:
                    if step.until > mono:
                        driven.next = ("park", step.until)
                        break
                    step = steps.send(mono)  # already due (a late stream): on at once
                else:
                    driven.next = ("back", step)
                    break
        except StopIteration:
            driven.next = ("back", None)
        except Exception as error:
            driven.next = ("error", error)
        return flusher


_PACER: trio.lowlevel.RunVar = trio.lowlevel.RunVar("streamchaos_pacer")


def pacer() -> Pacer:
    """The pacer of the current trio run."""
    try:
        return _PACER.get()
    except LookupError:
        value = Pacer()
        _PACER.set(value)
        return value
