"""A timeline of toxiproxy changes: add, change and remove toxics, take proxies down and up, at
times or on events the simulator's journal shows.

When a step fires (a :data:`When`; all times are ``time.monotonic()`` seconds, the journal's clock):

* :class:`At` -- ``seconds`` after the timeline started;
* :class:`AfterStep` -- ``seconds`` after another step (by label) was done;
* :class:`AfterFirstAnswer` -- once the trial's first answer completed: the first request record
  of ``key`` with ``end == "complete"`` (its ``t_end`` plus ``delay_s``);
* :class:`WhenIdle` -- once a connection that carried ``key`` has been idle ``idle_s``: open, no
  request in progress, ``idle_s`` since its last request ended (or since accept).

A timeline runs in one daemon thread with a bounded lifetime (``max_duration_s``) and a bounded
number of iterations; :meth:`ToxicTimeline.stop` ends it early. Steps fire in due order, one at a
time; each :class:`Fired` record says when it was due, when it fired and when the API call was
done, so a test can compare with the journal's times.

What a timeline cannot do, because toxiproxy cannot: aim at one connection (a toxic hits every
open and future connection of the proxy), or know which connections a toxic with toxicity < 1
hit (toxicity is drawn again whenever the toxic list changes, and the seed does nothing): read
that from the simulator's journal afterwards. A ``timeout`` toxic is not a NAT eviction (it
black-holes new connections too); for "the connection was idle T, now it is dead" use
:class:`WhenIdle` to *observe* idleness and the simulator's ``idle_eviction`` fault to emulate the
NAT.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.network.toxiproxy.api import ProxyHandle
from harness.network.toxiproxy.errors import ToxiproxyError
from harness.network.toxiproxy.toxics import Toxic, scaled_attributes, scaled_toxic, toxic_from_data

JournalSource = Callable[[str], list[dict]]
DEFAULT_MAX_DURATION_S = 60.0
POLL_S = 0.005
JOURNAL_POLL_S = 0.02


class TimelineError(ToxiproxyError):
    """One or more steps failed; ``fired`` holds every record."""

    def __init__(self, message: str, fired: list[Fired]) -> None:
        super().__init__(message)
        self.fired = fired


# -- when a step fires ---------------------------------------------------------------------------------


class _Context(Protocol):
    started: float

    def records(self, key: str) -> list[dict]: ...
    def done_at(self, label: str) -> float | None: ...


def _non_negative(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")


@dataclass(frozen=True)
class At:
    """``seconds`` after the timeline started."""

    seconds: float

    def __post_init__(self) -> None:
        _non_negative("At.seconds", self.seconds)

    def due(self, ctx: _Context) -> tuple[float | None, dict]:
        return ctx.started + self.seconds, {}


@dataclass(frozen=True)
class AfterStep:
    """``seconds`` after the step labelled ``label`` was done."""

    label: str
    seconds: float = 0.0

    def __post_init__(self) -> None:
        _non_negative("AfterStep.seconds", self.seconds)

    def due(self, ctx: _Context) -> tuple[float | None, dict]:
        done = ctx.done_at(self.label)
        return (None, {}) if done is None else (done + self.seconds, {})


@dataclass(frozen=True)
class AfterFirstAnswer:
    """``delay_s`` after the first request of ``key`` completed (journal ``end == "complete"``).

    "Complete" is the simulator's view: it handed the last byte to its kernel. Through toxiproxy
    the client may get it much later (a downstream ``latency`` or ``bandwidth`` toxic holds it,
    and toxiproxy reads the whole answer at once), so a step that takes the proxy down at that
    moment can cut the very answer it waits for. Give ``delay_s`` at least the downstream delay."""

    key: str
    delay_s: float = 0.0
    journal_key: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        _non_negative("AfterFirstAnswer.delay_s", self.delay_s)

    def due(self, ctx: _Context) -> tuple[float | None, dict]:
        done = [r for r in ctx.records(self.key) if r.get("kind") == "request" and r.get("end") == "complete" and r.get("t_end")]
        if not done:
            return None, {}
        first = min(done, key=lambda r: r["t_end"])
        return first["t_end"] + self.delay_s, {"request_id": first.get("request_id"), "conn": first.get("conn"), "t_end": first["t_end"]}


@dataclass(frozen=True)
class WhenIdle:
    """Once an open connection that carried ``key`` has had no request in progress for ``idle_s``.

    Idle since: the connection record's ``t_idle_since`` (set when its last request ended), else
    the latest ``t_end`` of its requests, else its ``t_accept``; busy while its ``active`` count
    is positive or one of its requests is open."""

    key: str
    idle_s: float
    journal_key: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        _non_negative("WhenIdle.idle_s", self.idle_s)

    def due(self, ctx: _Context) -> tuple[float | None, dict]:
        records = ctx.records(self.key)
        requests = [r for r in records if r.get("kind") == "request"]
        best: tuple[float, dict] | None = None
        for conn in records:
            if conn.get("kind") != "connection" or not conn.get("open"):
                continue
            mine = [r for r in requests if r.get("conn") == conn.get("conn")]
            if conn.get("active", 0) > 0 or any(r.get("open") for r in mine):
                continue
            ends = [r["t_end"] for r in mine if r.get("t_end") is not None]
            since = conn.get("t_idle_since") or (max(ends) if ends else None) or conn.get("t_accept")
            if since is None:
                continue
            due = since + self.idle_s
            if best is None or due < best[0]:
                best = (due, {"conn": conn.get("conn"), "idle_since": since})
        return (None, {}) if best is None else best


When = At | AfterStep | AfterFirstAnswer | WhenIdle  # when a step fires


# -- actions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddToxic:
    proxy: ProxyHandle
    toxic: Toxic

    def run(self) -> Any:
        return self.proxy.add_toxic(self.toxic)

    def describe(self) -> str:
        return f"add {self.toxic.toxic_name} to {self.proxy.name}"


@dataclass(frozen=True)
class UpdateToxic:
    proxy: ProxyHandle
    name: str
    toxicity: float | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def run(self) -> Any:
        return self.proxy.update_toxic(self.name, toxicity=self.toxicity, **dict(self.attributes))

    def describe(self) -> str:
        return f"update {self.name} on {self.proxy.name}: {dict(self.attributes)} toxicity={self.toxicity}"


@dataclass(frozen=True)
class RemoveToxic:
    proxy: ProxyHandle
    name: str

    def run(self) -> Any:
        return self.proxy.remove_toxic(self.name)

    def describe(self) -> str:
        return f"remove {self.name} from {self.proxy.name}"


@dataclass(frozen=True)
class Disable:
    """Proxy down: every connection closed, new ones refused."""

    proxy: ProxyHandle

    def run(self) -> Any:
        return self.proxy.disable()

    def describe(self) -> str:
        return f"disable {self.proxy.name}"


@dataclass(frozen=True)
class Enable:
    proxy: ProxyHandle

    def run(self) -> Any:
        return self.proxy.enable()

    def describe(self) -> str:
        return f"enable {self.proxy.name}"


@dataclass(frozen=True)
class Call:
    """Any other bounded action (it runs in the timeline's thread)."""

    fn: Callable[[], Any]
    description: str = "call"

    def run(self) -> Any:
        return self.fn()

    def describe(self) -> str:
        return self.description


Action = AddToxic | UpdateToxic | RemoveToxic | Disable | Enable | Call


@dataclass(frozen=True)
class Step:
    when: When
    action: Action
    label: str | None = None


def down_window(proxy: ProxyHandle, when: When, duration_s: float, label: str = "down") -> list[Step]:
    """The proxy down at ``when`` and up again ``duration_s`` after it went down."""
    _non_negative("duration_s", duration_s)
    return [Step(when, Disable(proxy), label), Step(AfterStep(label, duration_s), Enable(proxy), f"{label}:up")]


# -- the runner -------------------------------------------------------------------------------


@dataclass
class Fired:
    index: int
    label: str
    action: str
    due_at: float
    fired_at: float
    done_at: float
    trigger: dict = field(default_factory=dict)
    result: Any = None
    error: str | None = None

    @property
    def lateness_s(self) -> float:
        return self.fired_at - self.due_at


def _journal_source(journal: Any) -> JournalSource | None:
    if journal is None or callable(journal):
        return journal
    if hasattr(journal, "journal"):  # a SimulatorProcess
        return lambda key: journal.journal(key, wait_closed=False)
    raise TypeError(f"journal must be a SimulatorProcess, a callable key -> records, or None; not {type(journal).__name__}")


class ToxicTimeline:
    """Run ``steps`` in a daemon thread for at most ``max_duration_s``.

    ``with ToxicTimeline(steps, journal=sim) as timeline: ...`` starts it and, on exit, stops it
    (steps not yet due are dropped and listed in :attr:`pending`). :meth:`wait` blocks until every
    step ran (or the lifetime ended) and raises :class:`TimelineError` if a step failed."""

    def __init__(
        self,
        steps: Sequence[Step],
        journal: Any = None,
        max_duration_s: float = DEFAULT_MAX_DURATION_S,
        poll_s: float = POLL_S,
        journal_poll_s: float = JOURNAL_POLL_S,
        stop_on_error: bool = True,
    ) -> None:
        _non_negative("max_duration_s", max_duration_s)
        if not poll_s > 0 or not journal_poll_s > 0:
            raise ValueError("poll intervals must be > 0")
        self.steps = list(steps)
        labels = [s.label or f"step{i}" for i, s in enumerate(self.steps)]
        if len(set(labels)) != len(labels):
            raise ValueError(f"step labels must be unique: {labels}")
        self.labels = labels
        for step in self.steps:
            if isinstance(step.when, AfterStep) and step.when.label not in labels:
                raise ValueError(f"AfterStep refers to an unknown label {step.when.label!r}")
        self.journal = _journal_source(journal)
        if self.journal is None and any(getattr(s.when, "journal_key", False) for s in self.steps):
            raise ValueError("journal triggers (AfterFirstAnswer, WhenIdle) need a journal source")
        self.max_duration_s = max_duration_s
        self.poll_s = poll_s
        self.journal_poll_s = journal_poll_s
        self.stop_on_error = stop_on_error
        self.max_iterations = int(max_duration_s / poll_s) + 10 * len(self.steps) + 100
        self.started: float = 0.0
        self.fired: list[Fired] = []
        self.iterations = 0
        self.ended_because = ""
        self._done: dict[str, float] = {}
        self._cache: dict[str, tuple[float, list[dict]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- the context the triggers see ------------------------------------------------------------
    def records(self, key: str) -> list[dict]:
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is None or now - cached[0] >= self.journal_poll_s:
            assert self.journal is not None
            cached = (now, self.journal(key))
            self._cache[key] = cached
        return cached[1]

    def done_at(self, label: str) -> float | None:
        return self._done.get(label)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> ToxicTimeline:
        if self._thread is not None:
            raise RuntimeError("a timeline runs once")
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="toxic-timeline", daemon=True)
        self._thread.start()
        return self

    @property
    def pending(self) -> list[str]:
        with self._lock:
            fired = {f.index for f in self.fired}
        return [self.labels[i] for i in range(len(self.steps)) if i not in fired]

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout_s: float | None = None) -> list[Fired]:
        """Until every step ran or the lifetime ended; raise :class:`TimelineError` on failures."""
        if self._thread is None:
            raise RuntimeError("the timeline was not started")
        limit = self.max_duration_s + 30.0 if timeout_s is None else timeout_s
        self._thread.join(limit)
        if self._thread.is_alive():
            raise TimelineError(f"timeline still running after {limit:g} s", list(self.fired))
        self.raise_errors()
        return list(self.fired)

    def raise_errors(self) -> None:
        errors = [f for f in self.fired if f.error]
        if errors:
            raise TimelineError("; ".join(f"{f.label} ({f.action}): {f.error}" for f in errors), list(self.fired))

    def stop(self, timeout_s: float = 30.0) -> list[Fired]:
        """End the timeline now (an API call in progress finishes; it has its own timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        return list(self.fired)

    def __enter__(self) -> ToxicTimeline:
        return self.start()

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        self.stop()
        if exc_type is None:
            self.raise_errors()

    # -- the loop -------------------------------------------------------------------------------
    def _run(self) -> None:
        deadline = self.started + self.max_duration_s
        remaining = list(range(len(self.steps)))
        try:
            while remaining:
                self.iterations += 1
                if self._stop.is_set():
                    self.ended_because = "stopped"
                    return
                now = time.monotonic()
                if now >= deadline or self.iterations > self.max_iterations:
                    self.ended_because = "lifetime"
                    return
                due: list[tuple[float, int, dict]] = []
                next_due = deadline
                for index in remaining:
                    try:
                        when, info = self.steps[index].when.due(self)
                    except Exception as failure:
                        self._record(index, now, now, now, {}, None, f"trigger: {type(failure).__name__}: {failure}")
                        if self.stop_on_error:
                            self.ended_because = "error"
                            return
                        remaining.remove(index)
                        break
                    if when is None:
                        continue
                    if when <= now:
                        due.append((when, index, info))
                    else:
                        next_due = min(next_due, when)
                for when, index, info in sorted(due):
                    fired_at = time.monotonic()
                    result, error = None, None
                    try:
                        result = self.steps[index].action.run()
                    except Exception as failure:
                        error = f"{type(failure).__name__}: {failure}"
                    done_at = time.monotonic()
                    self._record(index, when, fired_at, done_at, info, result, error)
                    remaining.remove(index)
                    if error and self.stop_on_error:
                        self.ended_because = "error"
                        return
                if due:
                    continue  # done times changed: AfterStep triggers may be due now
                self._stop.wait(max(0.0, min(self.poll_s, next_due - time.monotonic())))
            self.ended_because = "done"
        finally:
            if not self.ended_because:
                self.ended_because = "crashed"

    def _record(self, index: int, due_at: float, fired_at: float, done_at: float, info: dict, result: Any, error: str | None) -> None:
        label = self.labels[index]
        with self._lock:
            self.fired.append(Fired(index, label, self.steps[index].action.describe(), due_at, fired_at, done_at, info, result, error))
        if error is None:
            self._done[label] = done_at


# -- scenario files -----------------------------------------------------------------------------

SCENARIO_EVENTS = ("first_answer_complete", "connection_idle")


def steps_from_scenario(proxy: ProxyHandle, toxic_steps: Sequence[Any], time_scale: float, key: str) -> list[Step]:
    """A scenario's ``[[toxics]]`` (``harness.scenario.ToxicStep``: ``action`` add/update/remove/
    down/up, ``at_s`` or ``on`` first_answer_complete/connection_idle with ``idle_s``, ``toxic``)
    as timeline steps for one trial (journal key ``key``). Times and toxic durations are scaled
    by ``time_scale`` (rates divided by it); an update's attributes are scaled by the kind of the
    toxic it names (its ``type`` key, else the last ``add`` of that name)."""
    steps: list[Step] = []
    kinds: dict[str, str] = {}
    for index, item in enumerate(toxic_steps):
        label = f"toxics[{index}]:{item.action}"
        delay = getattr(item, "delay_s", 0.0) * time_scale
        if item.at_s is not None:
            when: When = At(item.at_s * time_scale)
        elif getattr(item, "after", None) is not None:
            when = AfterStep(f"toxics[{item.after}]:{toxic_steps[item.after].action}", delay)
        elif item.on == "first_answer_complete":
            when = AfterFirstAnswer(key, delay)
        elif item.on == "connection_idle":
            when = WhenIdle(key, item.idle_s * time_scale)
        else:
            raise ValueError(f"{label}: needs at_s or on ({', '.join(SCENARIO_EVENTS)}), not on={item.on!r}")
        data = dict(item.toxic or {})
        if item.action == "add":
            toxic = scaled_toxic(toxic_from_data(data), time_scale)
            kinds[toxic.toxic_name] = toxic.kind
            action: Action = AddToxic(proxy, toxic)
        elif item.action == "update":
            name = data.pop("name")
            kind = data.pop("type", None) or kinds.get(name, "")
            toxicity = data.pop("toxicity", None)
            attributes = dict(data.pop("attributes", {}) or {}, **{k: v for k, v in data.items() if k != "stream"})
            action = UpdateToxic(proxy, name, toxicity, scaled_attributes(kind, attributes, time_scale))
        elif item.action == "remove":
            action = RemoveToxic(proxy, data["name"])
        elif item.action == "down":
            action = Disable(proxy)
        elif item.action == "up":
            action = Enable(proxy)
        else:
            raise ValueError(f"{label}: unknown action {item.action!r}")
        steps.append(Step(when, action, label))
    return steps


def start_timeline(
    toxiproxy: Any, proxy: ProxyHandle, toxic_steps: Sequence[Any], time_scale: float, simulator: Any, key: str, max_duration_s: float = 1800.0
) -> ToxicTimeline:
    """Build and start the timeline of one trial; the caller stops it (``timeline.stop()``).
    ``toxiproxy`` (the server) is accepted for symmetry; the proxy handle carries its client."""
    return ToxicTimeline(steps_from_scenario(proxy, toxic_steps, time_scale, key), journal=simulator, max_duration_s=max_duration_s).start()


__all__ = [
    "AddToxic",
    "AfterFirstAnswer",
    "AfterStep",
    "At",
    "Call",
    "Disable",
    "Enable",
    "Fired",
    "RemoveToxic",
    "Step",
    "TimelineError",
    "ToxicTimeline",
    "UpdateToxic",
    "When",
    "WhenIdle",
    "down_window",
    "start_timeline",
    "steps_from_scenario",
]
