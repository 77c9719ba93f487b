"""Finite capacity as data: a server that can serve ``limit`` requests at once, each for
``service_s``, with capacity dips, an optional queue, and optimistic-concurrency conflicts.

The plan's top-level ``capacity`` table::

    capacity = {limit = 10, service_s = 0.1, queue = 200, dips = [{window_s = [5, 8], limit = 2}]}

* ``limit``: requests in service at once; ``dips`` lower it during ``window_s`` (seconds since the
  plan was loaded; overlapping dips: the lowest limit wins; a dip to 0 is an outage).
* ``service_s``: how long each admitted request holds its slot before its answer is written
  (the answer's time to first byte); ``jitter`` spreads it by that share, drawn from the plan's
  seed and the admission ordinal, so a run replays.
* ``queue``: requests that find every slot busy wait, first in first out, up to this many
  (0: none wait); a waiter gets the over-capacity answer after ``queue_timeout_s``.
  The server does not notice an HTTP/1.1 client that left while its request waits or is served:
  the slot stays taken until the work is done (wasted work, what makes retry storms metastable).
  An HTTP/2 RST_STREAM cancels the exchange and frees the slot at once.
* ``overload``: what an over-capacity request gets at once: ``"529"`` (overloaded_error, with
  ``retry_after`` if set) or ``"conflict"`` (409). With ``"conflict"`` every request is also a
  write to one shared row under optimistic concurrency, as in Brooker's backoff study: it reads
  the row's version when admitted and commits when its service ends; if another write committed
  in between it gets 409 instead of its answer (first committer wins, so each overlapping group
  makes progress).

This module is the table, parsed and validated once; :mod:`simulator.capacity_gate` is the live
side that admits and releases requests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from .draw import uniform
from .validate import PlanError, count, is_number, join, mapping, non_negative, only, typed

OVERLOADS = ("529", "conflict")


@dataclass(frozen=True, slots=True)
class Dip:
    window_s: tuple[float, float]
    limit: int


@dataclass(frozen=True, slots=True)
class Capacity:
    limit: int
    service_s: float = 0.0
    jitter: float = 0.0
    queue: int = 0
    queue_timeout_s: float = math.inf
    overload: str = "529"
    retry_after: float | None = None
    dips: tuple[Dip, ...] = ()
    path_prefix: str = "/v1/messages"

    KEYS = ("limit", "service_s", "jitter", "queue", "queue_timeout_s", "overload", "retry_after", "dips", "path_prefix")

    def check(self, path: str = "capacity") -> Capacity:
        count(self.limit, f"{path}.limit", minimum=1)
        non_negative(self.service_s, f"{path}.service_s")
        if math.isinf(self.service_s):
            raise PlanError(f"{path}.service_s", "must be finite")
        if not is_number(self.jitter) or not 0 <= self.jitter <= 1:
            raise PlanError(f"{path}.jitter", f"must be between 0 and 1, not {self.jitter!r}")
        count(self.queue, f"{path}.queue", minimum=0)
        non_negative(self.queue_timeout_s, f"{path}.queue_timeout_s")
        if self.overload not in OVERLOADS:
            raise PlanError(f"{path}.overload", f"must be '529' or 'conflict', not {self.overload!r}")
        if self.retry_after is not None:
            non_negative(self.retry_after, f"{path}.retry_after")
            if self.overload != "529":
                raise PlanError(f"{path}.retry_after", "only applies to overload = '529'")
        for index, dip in enumerate(self.dips):
            where = f"{path}.dips[{index}]"
            window = dip.window_s
            if len(window) != 2 or not all(is_number(v) and math.isfinite(v) for v in window) or not 0 <= window[0] <= window[1]:
                raise PlanError(f"{where}.window_s", "must be [start, end] seconds with 0 <= start <= end")
            count(dip.limit, f"{where}.limit", minimum=0)
        return self

    def limit_at(self, elapsed_s: float) -> int:
        """The limit ``elapsed_s`` seconds after the plan was loaded."""
        limit = self.limit
        for dip in self.dips:
            if dip.window_s[0] <= elapsed_s < dip.window_s[1]:
                limit = min(limit, dip.limit)
        return limit

    def next_change(self, elapsed_s: float) -> float:
        """The first dip boundary after ``elapsed_s`` (inf: none)."""
        return min((edge for dip in self.dips for edge in dip.window_s if edge > elapsed_s), default=math.inf)

    def service_time(self, seed: int, ordinal: int) -> float:
        if not self.jitter:
            return self.service_s
        return self.service_s * (1 + self.jitter * (2 * uniform(seed, "capacity", ordinal) - 1))

    def scaled(self, factor: float) -> Capacity:
        """Every duration (and dip window) multiplied by ``factor``."""
        return replace(
            self,
            service_s=self.service_s * factor,
            queue_timeout_s=self.queue_timeout_s * factor,
            retry_after=None if self.retry_after is None else self.retry_after * factor,
            dips=tuple(Dip((d.window_s[0] * factor, d.window_s[1] * factor), d.limit) for d in self.dips),
        )

    # -- plain data ----------------------------------------------------------------------------------
    @classmethod
    def from_data(cls, data: Any, path: str = "capacity") -> Capacity:
        data = mapping(data, path)
        only(data, set(cls.KEYS), path)
        if "limit" not in data:
            raise PlanError(join(path, "limit"), "is required: requests in service at once")
        values: dict[str, Any] = {"limit": typed(data["limit"], int, join(path, "limit"))}
        for name in ("service_s", "jitter", "queue_timeout_s", "retry_after"):
            if name in data and not (name == "retry_after" and data[name] is None):
                values[name] = _number(data[name], join(path, name))
        if "queue" in data:
            values["queue"] = typed(data["queue"], int, join(path, "queue"))
        if "overload" in data:
            overload = data["overload"]
            values["overload"] = (
                str(overload) if isinstance(overload, int) and not isinstance(overload, bool) else typed(overload, str, join(path, "overload"))
            )
        if "path_prefix" in data:
            values["path_prefix"] = typed(data["path_prefix"], str, join(path, "path_prefix"))
        raw_dips = data.get("dips", [])
        if not isinstance(raw_dips, list):
            raise PlanError(join(path, "dips"), "must be a list of tables {window_s = [start, end], limit = N}")
        values["dips"] = tuple(_dip(item, f"{join(path, 'dips')}[{i}]") for i, item in enumerate(raw_dips))
        return cls(**values).check(path)

    def to_data(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "limit": self.limit,
            "service_s": self.service_s,
            "jitter": self.jitter,
            "queue": self.queue,
            "queue_timeout_s": "inf" if math.isinf(self.queue_timeout_s) else self.queue_timeout_s,
            "overload": self.overload,
            "path_prefix": self.path_prefix,
            "dips": [{"window_s": list(d.window_s), "limit": d.limit} for d in self.dips],
        }
        if self.retry_after is not None:
            out["retry_after"] = self.retry_after
        return out


def _dip(data: Any, path: str) -> Dip:
    data = mapping(data, path)
    only(data, {"window_s", "limit"}, path)
    for key in ("window_s", "limit"):
        if key not in data:
            raise PlanError(join(path, key), "is required")
    window = data["window_s"]
    if not isinstance(window, list) or len(window) != 2 or not all(is_number(v) for v in window):
        raise PlanError(join(path, "window_s"), f"must be a list of two numbers [start, end], not {window!r}")
    return Dip((float(window[0]), float(window[1])), typed(data["limit"], int, join(path, "limit")))


def _number(value: Any, path: str) -> float:
    if value in ("inf", "forever"):
        return math.inf
    if not is_number(value) or math.isnan(value):
        raise PlanError(path, f"must be a number, not {value!r}")
    return float(value)
