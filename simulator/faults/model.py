"""The fault types, triggers and selectors, and their validation.

Errors name the key path (``faults[2].trigger.after_events``) and what is wrong, so the scenario
loader can prefix the file name and a user can fix the file without reading code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

if TYPE_CHECKING:
    from ..capacity import Capacity

H2_ERROR_CODES = {
    "NO_ERROR": 0, "PROTOCOL_ERROR": 1, "INTERNAL_ERROR": 2, "FLOW_CONTROL_ERROR": 3, "SETTINGS_TIMEOUT": 4,
    "STREAM_CLOSED": 5, "FRAME_SIZE_ERROR": 6, "REFUSED_STREAM": 7, "CANCEL": 8, "COMPRESSION_ERROR": 9,
    "CONNECT_ERROR": 10, "ENHANCE_YOUR_CALM": 11, "INADEQUATE_SECURITY": 12, "HTTP_1_1_REQUIRED": 13,
}


MAX_SECONDS = 1_000_000.0  # any duration of a plan as the simulator runs it (scaled): about 11.6 days
MAX_VALUE = 1e12  # a trigger's value (events, bytes, ms, byte-seconds, seconds)
MAX_RATE = 1e9  # tokens per second


class PlanError(ValueError):
    """A plan that cannot run: ``path`` is the key path, ``message`` says what is wrong."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


# -- the actions ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Fault:
    kind: ClassVar[str] = ""
    terminal: ClassVar[bool] = True  # ends the reply (or the connection)
    h2_only: ClassVar[bool] = False
    connection_level: ClassVar[bool] = False  # may fire at accept / after TLS

    def check(self, path: str) -> None:
        """Validate values; raise PlanError naming the key."""


@dataclass(frozen=True, slots=True)
class TcpReset(Fault):
    """RST of the whole connection, after the kernel has sent what was written."""

    kind: ClassVar[str] = "tcp_reset"
    connection_level: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class Fin(Fault):
    """A clean close mid-body: HTTP/1.1 without its last chunk; h2 without GOAWAY; over TLS with
    or without close_notify."""

    kind: ClassVar[str] = "fin"
    connection_level: ClassVar[bool] = True
    close_notify: bool = True


@dataclass(frozen=True, slots=True)
class RstStream(Fault):
    kind: ClassVar[str] = "rst_stream"
    h2_only: ClassVar[bool] = True
    code: str | int = "INTERNAL_ERROR"

    def check(self, path: str) -> None:
        _h2_code(self.code, f"{path}.code")

    @property
    def code_value(self) -> int:
        return _h2_code(self.code, "code")


@dataclass(frozen=True, slots=True)
class Goaway(Fault):
    """``last_stream_id``: a number, "current" (covers the stream in flight) or "previous" (the
    stream in flight is not covered, so a correct client retries it on a new connection)."""

    kind: ClassVar[str] = "goaway"
    h2_only: ClassVar[bool] = True
    last_stream_id: int | str = "current"
    code: str | int = "NO_ERROR"
    debug: str = ""
    graceful: bool = True
    grace_s: float = 30.0

    def check(self, path: str) -> None:
        _h2_code(self.code, f"{path}.code")
        if isinstance(self.last_stream_id, str) and self.last_stream_id not in ("current", "previous"):
            raise PlanError(f"{path}.last_stream_id", f"must be a number, 'current' or 'previous', not {self.last_stream_id!r}")
        if isinstance(self.last_stream_id, int) and not 0 <= self.last_stream_id < 2**31:
            raise PlanError(f"{path}.last_stream_id", "must be between 0 and 2^31-1")
        _bounded(self.grace_s, f"{path}.grace_s")

    @property
    def terminal(self) -> bool:  # type: ignore[override]
        return not (self.graceful and self.last_stream_id == "current")

    @property
    def code_value(self) -> int:
        return _h2_code(self.code, "code")


@dataclass(frozen=True, slots=True)
class Stall(Fault):
    """Stop sending for ``seconds`` (inf: until the client leaves); PINGs are still answered."""

    kind: ClassVar[str] = "stall"
    seconds: float = math.inf

    def check(self, path: str) -> None:
        if not (isinstance(self.seconds, float) and self.seconds == math.inf):
            _bounded(self.seconds, f"{path}.seconds")

    @property
    def terminal(self) -> bool:  # type: ignore[override]
        return math.isinf(self.seconds)


@dataclass(frozen=True, slots=True)
class Blackhole(Fault):
    """Read and discard everything, answer nothing (no PING ACK), never close."""

    kind: ClassVar[str] = "blackhole"
    connection_level: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class IdleEviction(Fault):
    """NAT emulation: a request on a connection that was idle for ``idle_s`` goes into a black
    hole (as a NAT that dropped the flow would); new connections work."""

    kind: ClassVar[str] = "idle_eviction"
    idle_s: float = 90.0

    def check(self, path: str) -> None:
        _positive(self.idle_s, f"{path}.idle_s")


@dataclass(frozen=True, slots=True)
class HttpError(Fault):
    kind: ClassVar[str] = "http_error"
    status: int = 529
    error_type: str = ""
    message: str = ""
    retry_after: float | None = None
    retry_after_ms: float | None = None
    should_retry: bool | None = None

    def check(self, path: str) -> None:
        if not 400 <= self.status <= 599:
            raise PlanError(f"{path}.status", f"must be an HTTP error status 400-599, not {self.status}")
        for name, most in (("retry_after", MAX_SECONDS), ("retry_after_ms", MAX_SECONDS * 1000)):
            value = getattr(self, name)
            if value is not None:
                _bounded(value, f"{path}.{name}", most)


@dataclass(frozen=True, slots=True)
class SseError(Fault):
    """``event: error`` on an HTTP 200 stream, then the stream ends."""

    kind: ClassVar[str] = "sse_error"
    error_type: str = "overloaded_error"
    message: str = "Overloaded"


@dataclass(frozen=True, slots=True)
class TruncatedClean(Fault):
    """The body ends cleanly (last chunk / END_STREAM) without ``message_stop``."""

    kind: ClassVar[str] = "truncated_clean"


@dataclass(frozen=True, slots=True)
class MalformedSse(Fault):
    """``garbled``: the event's JSON is corrupted; ``split``: the event is written in two pieces
    ``gap_s`` apart (legal, tests parser buffering); ``no_blank_line``: the terminator is lost."""

    kind: ClassVar[str] = "malformed_sse"
    terminal: ClassVar[bool] = False
    mode: str = "garbled"
    gap_s: float = 0.05

    def check(self, path: str) -> None:
        if self.mode not in ("garbled", "split", "no_blank_line"):
            raise PlanError(f"{path}.mode", f"must be 'garbled', 'split' or 'no_blank_line', not {self.mode!r}")
        _bounded(self.gap_s, f"{path}.gap_s")


@dataclass(frozen=True, slots=True)
class Slow(Fault):
    """Pacing for the selected replies: time to first token, tokens per second, jitter (a share
    of each interval, drawn from the plan's seed)."""

    kind: ClassVar[str] = "slow"
    terminal: ClassVar[bool] = False
    ttft_s: float = 0.0
    tokens_per_second: float | None = None
    jitter: float = 0.0

    def check(self, path: str) -> None:
        _bounded(self.ttft_s, f"{path}.ttft_s")
        if self.tokens_per_second is not None:
            _positive(self.tokens_per_second, f"{path}.tokens_per_second", MAX_RATE)
        if not 0 <= self.jitter <= 1:
            raise PlanError(f"{path}.jitter", f"must be between 0 and 1, not {self.jitter}")


FAULT_TYPES: dict[str, type[Fault]] = {
    cls.kind: cls for cls in (TcpReset, Fin, RstStream, Goaway, Stall, Blackhole, IdleEviction, HttpError, SseError, TruncatedClean, MalformedSse, Slow)
}

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
        _bounded(self.value, f"{path}.value", MAX_VALUE)
        if self.at in ("events", "bytes") and self.value != int(self.value):
            raise PlanError(f"{path}.value", f"must be a whole number of {self.at}")
        if self.until is not None:
            _bounded(self.until, f"{path}.until", MAX_VALUE)
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
            _bounded(self.idle_s, f"{path}.idle_s")
        for name in ("probability", "doomed", "doomed_probability"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise PlanError(f"{path}.{name}", f"must be between 0 and 1, not {value}")
        if self.window_s is not None and (len(self.window_s) != 2 or not all(math.isfinite(v) for v in self.window_s)
                                          or self.window_s[0] > self.window_s[1] or self.window_s[0] < 0):
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
            raise PlanError(f"{path}.trigger.at", f"{self.fault.kind} cannot fire at {self.trigger.at}: no request exists yet (use tcp_reset, fin or blackhole)")
        if self.trigger.at_connection and (self.select.attempts or self.select.requests or self.select.streaming is not None):
            raise PlanError(f"{path}.select", f"at {self.trigger.at} there is no request yet: select by connections, window_s or probability")
        if isinstance(self.fault, (HttpError, IdleEviction)) and self.trigger.at != "headers":
            raise PlanError(f"{path}.trigger.at", f"{self.fault.kind} fires at request headers only (at = 'headers')")
        if self.fault.h2_only and transports is not None and "h2" not in transports:
            raise PlanError(f"{path}.type", f"{self.fault.kind} needs HTTP/2 but the scenario's transports are {', '.join(transports)}")


@dataclass(frozen=True, slots=True)
class FaultPlan:
    rules: tuple[Rule, ...] = ()
    seed: int = 0
    capacity: "Capacity | None" = None  # finite capacity (simulator/capacity.py)

    def check(self, transports: tuple[str, ...] | None = None) -> "FaultPlan":
        for index, rule in enumerate(self.rules):
            rule.check(f"faults[{index}]", transports)
        check_durations(self, MAX_SECONDS)
        return self

    # -- from plain data (JSON from the control API, TOML from a scenario) --------------------
    @classmethod
    def from_data(cls, data: Mapping[str, Any], path: str = "") -> "FaultPlan":
        data = _mapping(data, path or "plan")
        _only(data, {"seed", "faults", "capacity"}, path)
        seed = _typed(data.get("seed", 0), int, _join(path, "seed"))
        raw_rules = data.get("faults", [])
        if not isinstance(raw_rules, list):
            raise PlanError(_join(path, "faults"), "must be a list of tables")
        rules = tuple(rule_from_data(item, _join(path, f"faults[{i}]")) for i, item in enumerate(raw_rules))
        capacity = None
        if data.get("capacity") is not None:
            from ..capacity import Capacity

            capacity = Capacity.from_data(data["capacity"], _join(path, "capacity"))
        return cls(rules, seed, capacity).check()

    def to_data(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seed": self.seed, "faults": [rule_to_data(rule) for rule in self.rules]}
        if self.capacity is not None:
            out["capacity"] = self.capacity.to_data()
        return out


def rule_from_data(data: Any, path: str) -> Rule:
    data = _mapping(data, path)
    _only(data, {"type", "name", "trigger", "select"} | _fault_keys(data.get("type")), path)
    kind = data.get("type")
    if kind not in FAULT_TYPES:
        raise PlanError(f"{path}.type", f"must be one of {', '.join(sorted(FAULT_TYPES))}, not {kind!r}")
    fault_cls = FAULT_TYPES[kind]
    values = {f.name: _coerce(data[f.name], f.type, f"{path}.{f.name}") for f in fields(fault_cls) if f.name in data}
    fault = fault_cls(**values)
    trigger = _dataclass_from(Trigger, data.get("trigger", {}), f"{path}.trigger")
    select = _dataclass_from(Selector, data.get("select", {}), f"{path}.select")
    return Rule(fault, trigger, select, name=_typed(data.get("name", ""), str, f"{path}.name"))


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
    return {f.name for f in fields(cls)} if cls else set()


def _dataclass_from(cls: type, data: Any, path: str) -> Any:
    data = _mapping(data, path)
    known = {f.name: f for f in fields(cls)}
    _only(data, set(known), path)
    value = cls(**{name: _coerce(data[name], known[name].type, f"{path}.{name}") for name in data})
    value.check(path)
    return value


def _coerce(value: Any, annotation: Any, path: str) -> Any:
    """Check a plain value against a field's annotation (given as a string)."""
    text = str(annotation)
    if "tuple[int" in text:
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise PlanError(path, f"must be a list of whole numbers, not {value!r}")
        return tuple(value)
    if "tuple[float" in text:
        if not isinstance(value, list) or not all(_is_number(v) for v in value):
            raise PlanError(path, f"must be a list of two numbers [start, end], not {value!r}")
        return tuple(float(v) for v in value)
    if value is None and "None" in text:
        return None
    if text.startswith("bool"):
        return _typed(value, bool, path)
    if text.startswith("int | str") or text.startswith("str | int"):
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise PlanError(path, f"must be a number or a name, not {value!r}")
        return value
    if text.startswith("int"):
        return _typed(value, int, path)
    if text.startswith("float"):
        if value in ("inf", "forever"):
            return math.inf
        if not _is_number(value):
            raise PlanError(path, f"must be a number, not {value!r}")
        return float(value)
    if text.startswith("str"):
        return _typed(value, str, path)
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _typed(value: Any, kind: type, path: str) -> Any:
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise PlanError(path, f"must be a whole number, not {value!r}")
    if not isinstance(value, kind):
        raise PlanError(path, f"must be a {kind.__name__}, not {value!r}")
    return value


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PlanError(path, f"must be a table of keys, not {type(value).__name__}")
    return value


def _only(data: Mapping[str, Any], allowed: set[str], path: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise PlanError(_join(path, unknown[0]), f"unknown key; expected one of {', '.join(sorted(allowed))}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _non_negative(value: float, path: str) -> None:
    """A number >= 0, inf allowed (capacity's "no timeout"); fault fields use :func:`_bounded`."""
    if not _is_number(value) or value < 0 or (isinstance(value, float) and math.isnan(value)):
        raise PlanError(path, f"must be a number >= 0, not {value!r}")


def _bounded(value: float, path: str, maximum: float = MAX_SECONDS) -> None:
    """A finite number in [0, maximum] (nan and inf are refused)."""
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        raise PlanError(path, f"must be a finite number >= 0, not {value!r}")
    if value > maximum:
        raise PlanError(path, f"must be at most {maximum:g}, not {value!r}")


def _positive(value: float, path: str, maximum: float = MAX_SECONDS) -> None:
    if not _is_number(value) or not math.isfinite(value) or not value > 0:
        raise PlanError(path, f"must be a finite number > 0, not {value!r}")
    if value > maximum:
        raise PlanError(path, f"must be at most {maximum:g}, not {value!r}")


def durations(rule: Rule) -> list[tuple[str, float]]:
    """Every duration of a rule, in seconds, with its key (relative to the rule): what ``scaled``
    multiplies by the time scale."""
    fault, trigger, select = rule.fault, rule.trigger, rule.select
    out: list[tuple[str, float]] = []
    for name in ("seconds", "idle_s", "grace_s", "gap_s", "ttft_s", "retry_after"):
        value = getattr(fault, name, None)
        if _is_number(value) and not (name == "seconds" and value == math.inf):
            out.append((name, value))
    if _is_number(getattr(fault, "retry_after_ms", None)):
        out.append(("retry_after_ms", fault.retry_after_ms / 1000))
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


def check_durations(plan: "FaultPlan", limit: float) -> None:
    """Every duration of the plan finite and at most ``limit`` seconds (PlanError naming the key)."""
    for index, rule in enumerate(plan.rules):
        for key, value in durations(rule):
            if not math.isfinite(value) or value > limit:
                raise PlanError(f"faults[{index}].{key}", f"must be at most {limit:g} seconds, not {value:g}")


def _h2_code(code: str | int, path: str) -> int:
    if isinstance(code, str):
        if code not in H2_ERROR_CODES:
            raise PlanError(path, f"unknown HTTP/2 error code {code!r}; one of {', '.join(H2_ERROR_CODES)}")
        return H2_ERROR_CODES[code]
    if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code < 2**32:
        raise PlanError(path, f"must be an HTTP/2 error code name or a number 0..2^32-1, not {code!r}")
    return code


# -- time scale ---------------------------------------------------------------------------------

def scaled(plan: FaultPlan, factor: float) -> FaultPlan:
    """The same plan with every duration multiplied by ``factor`` (rates divided by it), so a
    90 s tool idle that runs as 3 s in CI keeps its shape against the faults' own timings."""
    from dataclasses import replace

    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor) or factor <= 0:
        raise PlanError("time_scale", f"must be a finite number > 0, not {factor!r}")
    if factor == 1:
        return plan

    def duration(value: float | None) -> float | None:
        return None if value is None else value * factor

    rules = []
    for rule in plan.rules:
        fault = rule.fault
        if isinstance(fault, Stall):
            fault = replace(fault, seconds=duration(fault.seconds))
        elif isinstance(fault, IdleEviction):
            fault = replace(fault, idle_s=duration(fault.idle_s))
        elif isinstance(fault, Goaway):
            fault = replace(fault, grace_s=duration(fault.grace_s))
        elif isinstance(fault, MalformedSse):
            fault = replace(fault, gap_s=duration(fault.gap_s))
        elif isinstance(fault, Slow):
            rate = None if fault.tokens_per_second is None else fault.tokens_per_second / factor
            fault = replace(fault, ttft_s=duration(fault.ttft_s), tokens_per_second=rate)
        elif isinstance(fault, HttpError):
            fault = replace(fault, retry_after=duration(fault.retry_after), retry_after_ms=duration(fault.retry_after_ms))
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
