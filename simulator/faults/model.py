"""A fault plan: rules (a fault type from :mod:`.kinds`, its trigger and selector), a seed and an
optional finite capacity, and their validation.

Errors name the key path (``faults[2].trigger.after_events``) and what is wrong, so the scenario
loader can prefix the file name and a user can fix the file without reading code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from . import kinds  # noqa: F401  (importing the package registers every fault type)
from .base import Fault
from .capacity import Capacity
from .registry import FAULT_TYPES
from .validate import MAX_SECONDS, MAX_VALUE, PlanError, bounded, coerce, join, mapping, only, typed

# -- where and which ----------------------------------------------------------------------------

TRIGGER_KINDS = ("accept", "tls", "headers", "events", "bytes", "ms", "budget", "clock")


@dataclass(frozen=True, slots=True)
class Trigger:
    """Where the fault fires. ``events``/``bytes``/``ms`` take ``value``; ``block`` makes
    ``events`` count only the deltas of that block ("thinking", "text", "tool_use").
    ``budget`` fires after ``value`` byte-seconds divided by the request's body size.
    ``clock`` fires at ``value`` seconds after the plan was loaded on every selected reply in
    flight then, and at once on those that start before ``until`` (a cascade)."""

    at: str = "headers"
    value: float = 0
    block: str | None = None
    until: float | None = None

    def check(self, path: str) -> None:
        if self.at not in TRIGGER_KINDS:
            raise PlanError(f"{path}.at", f"must be one of {', '.join(TRIGGER_KINDS)}, not {self.at!r}")
        bounded(self.value, f"{path}.value", MAX_VALUE)
        if self.at in ("events", "bytes") and self.value != int(self.value):
            raise PlanError(f"{path}.value", f"must be a whole number of {self.at}")
        if self.until is not None:
            bounded(self.until, f"{path}.until", MAX_VALUE)
            if self.at != "clock":
                raise PlanError(f"{path}.until", "only applies to at = 'clock'")
            if self.until < self.value:
                raise PlanError(f"{path}.until", f"must not be before value ({self.value})")
        if self.block is not None:
            if self.at != "events":
                raise PlanError(f"{path}.block", "only applies to at = 'events'")
            if self.block not in ("thinking", "text", "tool_use"):
                raise PlanError(f"{path}.block", f"must be 'thinking', 'text' or 'tool_use', not {self.block!r}")

    @property
    def at_connection(self) -> bool:
        return self.at in ("accept", "tls")


@dataclass(frozen=True, slots=True)
class Selector:
    """Which requests (or connections) a rule hits. Numbers are 1-based ordinals within a trial;
    ``window_s`` is [start, end) seconds since the plan was loaded; ``probability`` is drawn per
    (trial, logical request, attempt); a ``doomed`` share of logical requests fails with
    ``doomed_probability`` on every attempt (1: always), the rest with ``probability``; ``idle_s``
    takes only requests that arrive on a connection idle for at least that long."""

    attempts: tuple[int, ...] | None = None
    connections: tuple[int, ...] | None = None
    requests: tuple[int, ...] | None = None
    window_s: tuple[float, float] | None = None
    probability: float = 1.0
    doomed: float = 0.0
    doomed_probability: float = 1.0
    idle_s: float | None = None
    streaming: bool | None = None
    path_prefix: str = "/v1/messages"

    def check(self, path: str) -> None:
        for name in ("attempts", "connections", "requests"):
            values = getattr(self, name)
            if values is not None and (not values or any(not isinstance(v, int) or v < 1 for v in values)):
                raise PlanError(f"{path}.{name}", "must be a non-empty list of whole numbers >= 1")
        if self.idle_s is not None:
            bounded(self.idle_s, f"{path}.idle_s")
        for name in ("probability", "doomed", "doomed_probability"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise PlanError(f"{path}.{name}", f"must be between 0 and 1, not {value}")
        if self.window_s is not None and (
            len(self.window_s) != 2 or not all(math.isfinite(v) for v in self.window_s) or self.window_s[0] > self.window_s[1] or self.window_s[0] < 0
        ):
            raise PlanError(f"{path}.window_s", f"must be [start, end] finite seconds with 0 <= start <= end, not {list(self.window_s)!r}")


@dataclass(frozen=True, slots=True)
class Rule:
    fault: Fault
    trigger: Trigger = Trigger()
    select: Selector = Selector()
    name: str = ""

    def check(self, path: str, transports: tuple[str, ...] | None = None) -> None:
        self.fault.check(path)
        self.trigger.check(f"{path}.trigger")
        self.select.check(f"{path}.select")
        if self.trigger.at_connection and not self.fault.connection_level:
            raise PlanError(
                f"{path}.trigger.at", f"{self.fault.kind} cannot fire at {self.trigger.at}: no request exists yet (use tcp_reset, fin or blackhole)"
            )
        if self.trigger.at_connection and (self.select.attempts or self.select.requests or self.select.streaming is not None):
            raise PlanError(f"{path}.select", f"at {self.trigger.at} there is no request yet: select by connections, window_s or probability")
        if self.fault.headers_only and self.trigger.at != "headers":
            raise PlanError(f"{path}.trigger.at", f"{self.fault.kind} fires at request headers only (at = 'headers')")
        if self.fault.h2_only and transports is not None and "h2" not in transports:
            raise PlanError(f"{path}.type", f"{self.fault.kind} needs HTTP/2 but the scenario's transports are {', '.join(transports)}")


@dataclass(frozen=True, slots=True)
class FaultPlan:
    rules: tuple[Rule, ...] = ()
    seed: int = 0
    capacity: Capacity | None = None  # finite capacity (see .capacity)

    def check(self, transports: tuple[str, ...] | None = None) -> FaultPlan:
        for index, rule in enumerate(self.rules):
            rule.check(f"faults[{index}]", transports)
        check_durations(self, MAX_SECONDS)
        return self

    # -- from plain data (JSON from the control API, TOML from a scenario) --------------------
    @classmethod
    def from_data(cls, data: Mapping[str, Any], path: str = "") -> FaultPlan:
        data = mapping(data, path or "plan")
        only(data, {"seed", "faults", "capacity"}, path)
        seed = typed(data.get("seed", 0), int, join(path, "seed"))
        raw_rules = data.get("faults", [])
        if not isinstance(raw_rules, list):
            raise PlanError(join(path, "faults"), "must be a list of tables")
        rules = tuple(rule_from_data(item, join(path, f"faults[{i}]")) for i, item in enumerate(raw_rules))
        capacity = None
        if data.get("capacity") is not None:
            capacity = Capacity.from_data(data["capacity"], join(path, "capacity"))
        return cls(rules, seed, capacity).check()

    def to_data(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seed": self.seed, "faults": [rule_to_data(rule) for rule in self.rules]}
        if self.capacity is not None:
            out["capacity"] = self.capacity.to_data()
        return out


def rule_from_data(data: Any, path: str) -> Rule:
    data = mapping(data, path)
    only(data, {"type", "name", "trigger", "select"} | _fault_keys(data.get("type")), path)
    kind = data.get("type")
    if kind not in FAULT_TYPES:
        raise PlanError(f"{path}.type", f"must be one of {', '.join(sorted(FAULT_TYPES))}, not {kind!r}")
    fault = FAULT_TYPES[kind].from_data(data, path)
    trigger = _dataclass_from(Trigger, data.get("trigger", {}), f"{path}.trigger")
    select = _dataclass_from(Selector, data.get("select", {}), f"{path}.select")
    return Rule(fault, trigger, select, name=typed(data.get("name", ""), str, f"{path}.name"))


def rule_to_data(rule: Rule) -> dict[str, Any]:
    out: dict[str, Any] = {"type": rule.fault.kind}
    if rule.name:
        out["name"] = rule.name
    for f in fields(rule.fault):
        value = getattr(rule.fault, f.name)
        out[f.name] = "inf" if isinstance(value, float) and math.isinf(value) else value
    out["trigger"] = {f.name: getattr(rule.trigger, f.name) for f in fields(Trigger) if getattr(rule.trigger, f.name) is not None}
    out["select"] = {f.name: (list(v) if isinstance(v, tuple) else v) for f in fields(Selector) if (v := getattr(rule.select, f.name)) is not None}
    return out


# -- small validators --------------------------------------------------------------------------


def _fault_keys(kind: Any) -> set[str]:
    cls = FAULT_TYPES.get(kind) if isinstance(kind, str) else None
    return cls.keys() if cls else set()


def _dataclass_from(cls: type, data: Any, path: str) -> Any:
    data = mapping(data, path)
    known = {f.name: f for f in fields(cls)}
    only(data, set(known), path)
    value = cls(**{name: coerce(data[name], known[name].type, f"{path}.{name}") for name in data})
    value.check(path)
    return value


def durations(rule: Rule) -> list[tuple[str, float]]:
    """Every duration of a rule, in seconds, with its key (relative to the rule): what ``scaled``
    multiplies by the time scale."""
    fault, trigger, select = rule.fault, rule.trigger, rule.select
    out: list[tuple[str, float]] = fault.durations()
    if trigger.at == "ms":
        out.append(("trigger.value", trigger.value / 1000))
    elif trigger.at == "clock":
        out.append(("trigger.value", trigger.value))
    if trigger.until is not None:
        out.append(("trigger.until", trigger.until))
    if select.window_s is not None:
        out.extend((f"select.window_s[{i}]", v) for i, v in enumerate(select.window_s))
    if select.idle_s is not None:
        out.append(("select.idle_s", select.idle_s))
    return out


def check_durations(plan: FaultPlan, limit: float) -> None:
    """Every duration of the plan finite and at most ``limit`` seconds (PlanError naming the key)."""
    for index, rule in enumerate(plan.rules):
        for key, value in durations(rule):
            if not math.isfinite(value) or value > limit:
                raise PlanError(f"faults[{index}].{key}", f"must be at most {limit:g} seconds, not {value:g}")


# -- time scale ---------------------------------------------------------------------------------


def scaled(plan: FaultPlan, factor: float) -> FaultPlan:
    """The same plan with every duration multiplied by ``factor`` (rates divided by it), so a
    90 s tool idle that runs as 3 s in CI keeps its shape against the faults' own timings."""
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor) or factor <= 0:
        raise PlanError("time_scale", f"must be a finite number > 0, not {factor!r}")
    if factor == 1:
        return plan

    def duration(value: float | None) -> float | None:
        return None if value is None else value * factor

    rules = []
    for rule in plan.rules:
        fault = rule.fault.scaled(factor)
        trigger = rule.trigger
        if trigger.at in ("ms", "budget", "clock"):
            trigger = replace(trigger, value=trigger.value * factor, until=duration(trigger.until))
        select = rule.select
        if select.window_s is not None:
            select = replace(select, window_s=(select.window_s[0] * factor, select.window_s[1] * factor))
        if select.idle_s is not None:
            select = replace(select, idle_s=select.idle_s * factor)
        rules.append(replace(rule, fault=fault, trigger=trigger, select=select))
    return FaultPlan(tuple(rules), plan.seed, None if plan.capacity is None else plan.capacity.scaled(factor))
