"""Scenario files: TOML, versioned, validated once into frozen values.

A scenario is what a user writes, shares and cites in a bug report: the conversation the client
performs, the faults and their triggers, the toxiproxy timeline, the transport, a time scale, a
seed, a trial count, and what the field saw. Every error names the file, the key path and the fix.
Durations are real-world; ``time_scale`` shrinks them all consistently at run time, except in a
scenario with ``[network]`` (the network lab, harness/lab): kernel timers cannot be scaled, so such a
scenario must run at time_scale 1 and the runner refuses a ``--time-scale`` override for it.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import limits
from simulator.faults.model import FaultPlan, PlanError, check_durations, scaled

FORMAT_VERSION = 1
TRANSPORTS = ("http/1.1", "h2")
LIBRARY = Path(__file__).resolve().parent.parent / "scenarios"


def _installed_library() -> Path:
    """Issue 14: a checkout reads ``scenarios/`` (the source of truth); an installed wheel carries
    the same files as data under ``<prefix>/share/streamchaos/scenarios``."""
    import site
    import sys

    for prefix in (sys.prefix, site.getuserbase(), sys.base_prefix):
        candidate = Path(prefix) / "share" / "streamchaos" / "scenarios"
        if candidate.is_dir():
            return candidate
    return LIBRARY


if not LIBRARY.is_dir():
    LIBRARY = _installed_library()
TOXIC_ACTIONS = ("add", "update", "remove", "down", "up")
TOXIC_EVENTS = ("first_answer_complete", "connection_idle")
APIS = {"messages": "/v1/messages", "chat": "/v1/chat/completions", "responses": "/v1/responses"}  # a scenario's api: the path its clients post to


class ScenarioError(ValueError):
    def __init__(self, source: str, path: str, message: str) -> None:
        super().__init__(f"{source}: {path}: {message}" if path else f"{source}: {message}")
        self.source, self.path, self.message = source, path, message


@dataclass(frozen=True, slots=True)
class Turn:
    prompt: str = "Tell me about rivers."
    words: int = 60
    deltas: int | None = None
    thinking: bool = False
    thinking_words: int = 24
    stream: bool = True
    tool: str | None = None
    tool_input: Mapping[str, Any] | None = None
    idle_before_s: float = 0.0
    parallel: int = 1
    max_tokens: int = 4096
    context_kb: int = 0  # padding that makes the request large (the large-context shape)

    def max_events(self) -> int:
        """An upper bound on the events of this turn's answer (each delta carries >= 1 word)."""
        events = 2 + 2  # message_start, ping; message_delta, message_stop
        if self.thinking:
            events += self.thinking_words + 3  # start, deltas, signature, stop
        events += (8 if self.tool else max(self.words, self.deltas or 0)) + 2
        if self.tool:
            events += 2 + len(str(self.tool_input or {}))  # JSON pieces are >= 4 characters
        return events

    def directive(self) -> str:
        parts = [f"words={self.words}"]
        if self.deltas:
            parts.append(f"deltas={self.deltas}")
        if self.thinking:
            parts.append(f"thinking_words={self.thinking_words}")
        line = "@sc " + " ".join(parts)
        if self.tool:
            import json

            line += f" tool={self.tool} input={json.dumps(self.tool_input or {}, separators=(',', ':'))}"
        return line


@dataclass(frozen=True, slots=True)
class ToxicStep:
    """A change to the toxiproxy timeline: at a time, or when the journal shows an event."""

    action: str
    at_s: float | None = None
    on: str | None = None
    idle_s: float = 0.0
    toxic: Mapping[str, Any] = field(default_factory=dict)
    after: int | None = None  # index of an earlier step: fire delay_s after it
    delay_s: float = 0.0  # with ``on`` or ``after``


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    source: str
    title: str
    shape: str
    expect: str
    reproduces: tuple[str, ...]
    seed: int
    trials: int
    time_scale: float
    transports: tuple[str, ...]
    tls: bool
    concurrency: int
    model: str
    turns: tuple[Turn, ...]
    faults: FaultPlan
    toxics: tuple[ToxicStep, ...]
    field: Mapping[str, str]
    client_timeout_s: float | None
    deadline_s: float
    max_retries: int | None
    version: int = FORMAT_VERSION
    network: Any = None  # harness.network.lab.Network: the scenario runs its clients in the network lab
    field_rows: tuple = ()  # harness.present.fieldmatch.FieldRow: client, version, literal error or behaviour, source

    @property
    def needs_lab(self) -> bool:
        return self.network is not None

    api: str = "messages"  # "messages" | "chat" | "responses": which API the clients speak

    @property
    def needs_toxiproxy(self) -> bool:
        return bool(self.toxics)

    def plan(self, time_scale: float | None = None) -> FaultPlan:
        """The fault plan as the simulator runs it: durations scaled."""
        return scaled(self.faults, self.time_scale if time_scale is None else time_scale)

    def client_script(self, time_scale: float | None = None) -> dict[str, Any]:
        """STREAMCHAOS_SCRIPT for contract clients: prompts carry the answer-shape directives."""
        factor = self.time_scale if time_scale is None else time_scale
        turns = []
        for turn in self.turns:
            prompt = f"{turn.prompt}\n{context_padding(turn.context_kb)}{turn.directive()}"
            item: dict[str, Any] = {"prompt": prompt, "stream": turn.stream, "max_tokens": turn.max_tokens}
            if turn.thinking:
                item["thinking"] = True
            if turn.tool:
                item["tools"] = [{"name": turn.tool, "description": f"the {turn.tool} tool", "input_schema": {"type": "object"}}]
            if turn.idle_before_s:
                item["idle_before_s"] = round(turn.idle_before_s * factor, 6)
            if turn.parallel > 1:
                item["parallel"] = turn.parallel
            turns.append(item)
        plan: dict[str, Any] = {"model": self.model, "turns": turns, "scenario": self.name, "api": self.api}
        if self.client_timeout_s is not None:
            plan["timeout_s"] = round(self.client_timeout_s * factor, 6)
        if self.max_retries is not None:
            plan["max_retries"] = self.max_retries
        return plan

    def deadline(self, time_scale: float | None = None) -> float:
        return self.deadline_s * (self.time_scale if time_scale is None else time_scale)


def context_padding(kilobytes: int) -> str:
    """Deterministic filler text of about ``kilobytes`` KiB, ending with a newline."""
    if kilobytes <= 0:
        return ""
    line = "Context line: the quick brown fox jumps over the lazy dog while the stream keeps flowing.\n"
    return line * (kilobytes * 1024 // len(line) + 1)


# -- loading -------------------------------------------------------------------------------------

TOP_KEYS = {
    "version",
    "name",
    "title",
    "shape",
    "expect",
    "reproduces",
    "seed",
    "trials",
    "time_scale",
    "transports",
    "tls",
    "concurrency",
    "conversation",
    "faults",
    "toxics",
    "field",
    "client",
    "deadline_s",
    "network",
    "api",
}
CONVERSATION_KEYS = {"model", "turns", "turn"}
TURN_KEYS = set(Turn.__dataclass_fields__)
CLIENT_KEYS = {"timeout_s", "max_retries"}
TOXIC_KEYS = {"action", "at_s", "on", "idle_s", "toxic", "after", "delay_s"}


def load(path: Path | str) -> Scenario:
    path = Path(path)
    source = str(path)
    try:
        if path.is_dir():
            raise ScenarioError(source, "", "is a directory, not a scenario file (give a .toml file or a name from scenarios/)")
        with open(path, "rb") as handle:
            raw = handle.read(limits.MAX_FILE_BYTES + 1)
        if len(raw) > limits.MAX_FILE_BYTES:
            raise ScenarioError(source, "", f"larger than {limits.MAX_FILE_BYTES // 1024} KiB; a scenario file is at most that")
        data = tomllib.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise ScenarioError(source, "", "no such file") from None
    except OSError as error:
        raise ScenarioError(source, "", f"cannot read: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(source, "", f"not valid TOML: {error}") from None
    except UnicodeDecodeError as error:
        raise ScenarioError(source, "", f"not UTF-8 text: {error}") from None
    return from_data(data, source, default_name=path.stem)


def from_data(data: Mapping[str, Any], source: str, default_name: str = "") -> Scenario:
    v = _Validator(source)
    v.only(data, TOP_KEYS, "")
    version = v.get(data, "version", int, "", required=True)
    if version != FORMAT_VERSION:
        raise ScenarioError(source, "version", f"this streamchaos reads version {FORMAT_VERSION}, the file says {version}")
    transports = tuple(v.get(data, "transports", list, "", default=list(TRANSPORTS)))
    for index, transport in enumerate(transports):
        if transport not in TRANSPORTS:
            raise ScenarioError(source, f"transports[{index}]", f"must be one of {', '.join(TRANSPORTS)}, not {transport!r}")
    if not transports:
        raise ScenarioError(source, "transports", "must name at least one of http/1.1, h2")
    time_scale = v.number(data, "time_scale", "", default=1.0, minimum=0.0, exclusive=True, maximum=limits.MAX_TIME_SCALE)
    if time_scale < limits.MIN_TIME_SCALE:
        raise ScenarioError(source, "time_scale", f"must be at least {limits.MIN_TIME_SCALE:g}, not {time_scale:g}")
    turns, model = _conversation(v, data.get("conversation", {}))
    api = v.get(data, "api", str, "", default="messages")
    if api not in APIS:
        raise ScenarioError(source, "api", f"must be one of {', '.join(APIS)}, not {api!r}")
    try:
        faults = FaultPlan.from_data({"seed": v.get(data, "seed", int, "", default=0), "faults": _faults_for_api(data.get("faults", []), api)}).check(
            transports
        )
        check_durations(faults, limits.MAX_SECONDS)
    except PlanError as error:
        raise ScenarioError(source, error.path, error.message) from None
    _check_api(source, api, faults, turns)
    _check_reachable(source, faults, turns, slack=4 if api == "responses" else 0)
    client = v.table(data, "client", "")
    v.only(client, CLIENT_KEYS, "client")
    timeout = v.number(client, "timeout_s", "client", default=None, minimum=0.0, exclusive=True, maximum=limits.MAX_SECONDS)
    max_retries = v.get(client, "max_retries", int, "client", default=None)
    if max_retries is not None and not 0 <= max_retries <= 15:
        raise ScenarioError(source, "client.max_retries", "must be between 0 and 15")
    from harness.field_rows import FieldError  # issue 14: structured [[field]] rows
    from harness.field_rows import parse as parse_field

    try:
        field_rows, field_notes = parse_field(data.get("field", {}), source)
    except FieldError as error:
        raise ScenarioError(source, error.path, error.message) from None
    reproduces = v.get(data, "reproduces", list, "", default=[])
    if not all(isinstance(item, str) for item in reproduces):
        raise ScenarioError(source, "reproduces", "must be a list of strings (report references)")
    trials = v.get(data, "trials", int, "", default=20)
    concurrency = v.get(data, "concurrency", int, "", default=1)
    for key, value, most in (("trials", trials, limits.MAX_TRIALS), ("concurrency", concurrency, limits.MAX_CONCURRENCY)):
        if value < 1:
            raise ScenarioError(source, key, "must be at least 1")
        if value > most:
            raise ScenarioError(source, key, f"must be at most {most}, not {value}")
    default_deadline = 60.0 + sum(t.idle_before_s for t in turns)
    network = _network(v, data["network"]) if "network" in data else None
    if network is not None and time_scale != 1.0:
        raise ScenarioError(
            source,
            "time_scale",
            f"is {time_scale:g}, but a scenario with [network] runs in real time (kernel timers such as "
            "conntrack's timeout and TCP keepalive cannot be scaled); remove time_scale or set it to 1",
        )
    return Scenario(
        name=v.get(data, "name", str, "", default=default_name),
        source=source,
        title=v.get(data, "title", str, "", default=""),
        shape=v.get(data, "shape", str, "", default=""),
        expect=v.get(data, "expect", str, "", default=""),
        reproduces=tuple(reproduces),
        seed=faults.seed,
        trials=trials,
        time_scale=time_scale,
        transports=transports,
        tls=v.get(data, "tls", bool, "", default=True),
        concurrency=concurrency,
        model=model,
        turns=turns,
        faults=faults,
        toxics=_toxics(v, data.get("toxics", [])),
        field=dict(field_notes),
        client_timeout_s=timeout,
        deadline_s=v.number(data, "deadline_s", "", default=default_deadline, minimum=0.0, exclusive=True, maximum=limits.MAX_SECONDS),
        max_retries=max_retries,
        version=version,
        network=network,
        field_rows=field_rows,
        api=api,
    )


def _faults_for_api(items: Any, api: str) -> Any:
    """Rules of a chat or responses scenario select that API's path unless they name another."""
    if api == "messages" or not isinstance(items, list):
        return items
    out = []
    for item in items:
        if isinstance(item, Mapping) and isinstance(item.get("select", {}), Mapping) and "path_prefix" not in item.get("select", {}):
            item = {**item, "select": {**item.get("select", {}), "path_prefix": APIS[api]}}
        out.append(item)
    return out


def _check_api(source: str, api: str, faults: FaultPlan, turns: tuple[Turn, ...]) -> None:
    """Chat Completions and Responses answers have no thinking block."""
    if api == "messages":
        return
    for index, turn in enumerate(turns):
        if turn.thinking:
            raise ScenarioError(
                source,
                "conversation.thinking" if len(turns) == 1 else f"conversation.turn[{index}].thinking",
                f"the {api} API has no thinking block; remove thinking or use api = 'messages'",
            )
    for index, rule in enumerate(faults.rules):
        if rule.trigger.block == "thinking":
            raise ScenarioError(source, f"faults[{index}].trigger.block", f"the {api} API has no thinking block; count 'text' or 'tool_use' deltas")


def _conversation(v: _Validator, data: Any) -> tuple[tuple[Turn, ...], str]:
    data = v.mapping(data, "conversation")
    v.only(data, CONVERSATION_KEYS | TURN_KEYS, "conversation")
    model = v.get(data, "model", str, "conversation", default="claude-sonnet-4-6")
    defaults = {key: data[key] for key in TURN_KEYS if key in data}
    count = v.get(data, "turns", int, "conversation", default=1)
    if count < 1:
        raise ScenarioError(v.source, "conversation.turns", "must be at least 1")
    if count > limits.MAX_TURNS:
        raise ScenarioError(v.source, "conversation.turns", f"must be at most {limits.MAX_TURNS}, not {count}")
    overrides = v.get(data, "turn", list, "conversation", default=[])
    if len(overrides) > limits.MAX_TURNS:
        raise ScenarioError(v.source, "conversation.turn", f"at most {limits.MAX_TURNS} turns, not {len(overrides)}")
    if len(overrides) > count:
        count = len(overrides)
    turns = []
    for index in range(count):
        values = dict(defaults)
        if index < len(overrides):
            item = v.mapping(overrides[index], f"conversation.turn[{index}]")
            v.only(item, TURN_KEYS, f"conversation.turn[{index}]")
            values.update(item)
        turns.append(_turn(v, values, f"conversation.turn[{index}]" if index < len(overrides) else "conversation"))
    total_kb = sum(turn.context_kb for turn in turns)
    if total_kb > limits.MAX_CONTEXT_KB_TOTAL:
        raise ScenarioError(
            v.source,
            "conversation.context_kb",
            f"the turns' context_kb add up to {total_kb} KiB; at most {limits.MAX_CONTEXT_KB_TOTAL} (32 MiB) in all",
        )
    return tuple(turns), model


def _turn(v: _Validator, values: Mapping[str, Any], path: str) -> Turn:
    kinds = {
        "prompt": str,
        "words": int,
        "deltas": int,
        "thinking": bool,
        "thinking_words": int,
        "stream": bool,
        "tool": str,
        "tool_input": dict,
        "parallel": int,
        "max_tokens": int,
        "context_kb": int,
    }
    out: dict[str, Any] = {}
    for key, kind in kinds.items():
        if key in values:
            out[key] = v.get(values, key, kind, path)
    if "idle_before_s" in values:
        out["idle_before_s"] = v.number(values, "idle_before_s", path, minimum=0.0, maximum=limits.MAX_SECONDS)
    for key in ("words", "thinking_words", "parallel", "max_tokens"):
        if key in out and out[key] < 1:
            raise ScenarioError(v.source, f"{path}.{key}", "must be at least 1")
    for key, most in (
        ("words", limits.MAX_WORDS),
        ("thinking_words", limits.MAX_WORDS),
        ("deltas", limits.MAX_WORDS),
        ("max_tokens", limits.MAX_TOKENS),
    ):
        if key in out and out[key] > most:
            raise ScenarioError(v.source, f"{path}.{key}", f"must be at most {most}, not {out[key]}")
    if "deltas" in out and out["deltas"] < 0:
        raise ScenarioError(v.source, f"{path}.deltas", "must be at least 0")
    if len(out.get("prompt", "")) > limits.MAX_PROMPT_CHARS:
        raise ScenarioError(v.source, f"{path}.prompt", f"at most {limits.MAX_PROMPT_CHARS} characters (use context_kb for a large request)")
    if not 0 <= out.get("context_kb", 0) <= 32 * 1024:
        raise ScenarioError(v.source, f"{path}.context_kb", "must be between 0 and 32768 (32 MiB)")
    if out.get("parallel", 1) > 16:
        raise ScenarioError(v.source, f"{path}.parallel", "at most 16 parallel requests")
    if "tool_input" in out and "tool" not in out:
        raise ScenarioError(v.source, f"{path}.tool_input", "needs tool = NAME beside it")
    return _check_directives(v.source, Turn(**out), path)


def _check_directives(source: str, turn: Turn, path: str) -> Turn:
    """The simulator's own check of the ``@sc`` lines the turn's prompt will carry."""
    from simulator.api.request import directive_problem

    for text, where in ((turn.prompt, f"{path}.prompt"), (turn.directive(), path)):
        problem = directive_problem(text)
        if problem:
            raise ScenarioError(source, where, problem)
    return turn


def _check_reachable(source: str, faults: FaultPlan, turns: tuple[Turn, ...], slack: int = 0) -> None:
    """A trigger after more events than any answer of the conversation can have never fires."""
    most = max(turn.max_events() for turn in turns) + slack
    for index, rule in enumerate(faults.rules):
        trigger = rule.trigger
        if trigger.at != "events":
            continue
        if trigger.block is None and trigger.value > most:
            raise ScenarioError(
                source,
                f"faults[{index}].trigger.value",
                f"fires after {int(trigger.value)} events but the answers have at most {most}; raise conversation.words or lower the trigger",
            )
        if trigger.block == "thinking" and not any(t.thinking for t in turns):
            raise ScenarioError(source, f"faults[{index}].trigger.block", "no turn has thinking = true, so there is no thinking block")
        if trigger.block == "thinking":
            most_thinking = max(t.thinking_words for t in turns if t.thinking)
            if trigger.value > most_thinking:
                raise ScenarioError(
                    source,
                    f"faults[{index}].trigger.value",
                    f"fires after {int(trigger.value)} thinking deltas but thinking_words is {most_thinking}",
                )
        if trigger.block == "tool_use" and not any(t.tool for t in turns):
            raise ScenarioError(source, f"faults[{index}].trigger.block", "no turn uses a tool, so there is no tool_use block")


def _toxics(v: _Validator, items: Any) -> tuple[ToxicStep, ...]:
    if not isinstance(items, list):
        raise ScenarioError(v.source, "toxics", "must be a list of tables ([[toxics]])")
    if len(items) > limits.MAX_TOXIC_STEPS:
        raise ScenarioError(v.source, "toxics", f"at most {limits.MAX_TOXIC_STEPS} steps, not {len(items)}")
    steps = []
    for index, item in enumerate(items):
        path = f"toxics[{index}]"
        item = v.mapping(item, path)
        v.only(item, TOXIC_KEYS, path)
        action = v.get(item, "action", str, path, required=True)
        if action not in TOXIC_ACTIONS:
            raise ScenarioError(v.source, f"{path}.action", f"must be one of {', '.join(TOXIC_ACTIONS)}, not {action!r}")
        at_s = v.number(item, "at_s", path, default=None, minimum=0.0, maximum=limits.MAX_SECONDS)
        on = v.get(item, "on", str, path, default=None)
        after = v.get(item, "after", int, path, default=None)
        if sum(x is not None for x in (at_s, on, after)) != 1:
            raise ScenarioError(v.source, path, "give exactly one of at_s (seconds), on (a journal event) or after (an earlier step's index)")
        if after is not None and not 0 <= after < index:
            raise ScenarioError(v.source, f"{path}.after", f"must be the index of an earlier step (0..{index - 1})")
        if on is not None and on not in TOXIC_EVENTS:
            raise ScenarioError(v.source, f"{path}.on", f"must be one of {', '.join(TOXIC_EVENTS)}, not {on!r}")
        toxic = v.table(item, "toxic", path)
        if action in ("add", "update", "remove") and "name" not in toxic and action != "add":
            raise ScenarioError(v.source, f"{path}.toxic.name", f"{action} needs the name of the toxic")
        if action == "add":
            _check_toxic(v, toxic, f"{path}.toxic")
        steps.append(
            ToxicStep(
                action,
                at_s,
                on,
                v.number(item, "idle_s", path, default=0.0, minimum=0.0, maximum=limits.MAX_SECONDS),
                dict(toxic),
                after,
                v.number(item, "delay_s", path, default=0.0, minimum=0.0, maximum=limits.MAX_SECONDS),
            )
        )
    return tuple(steps)


NETWORK_KEYS = {"nat_idle_s", "on_evicted", "loss", "blackhole", "reset_after_bytes"}


def _network(v: _Validator, data: Any) -> Any:
    """``[network]``: the lab's NAT, loss, black holes and middlebox reset. All times are real
    seconds (see harness/network/lab/model.py)."""
    from harness.network.lab.model import ON_EVICTED, Blackhole, Network

    data = v.mapping(data, "network")
    v.only(data, NETWORK_KEYS, "network")
    nat_idle_s = v.number(data, "nat_idle_s", "network", default=None, minimum=1.0)
    on_evicted = v.get(data, "on_evicted", str, "network", default="drop")
    if on_evicted not in ON_EVICTED:
        raise ScenarioError(v.source, "network.on_evicted", f"must be one of {', '.join(ON_EVICTED)}, not {on_evicted!r}")
    if "on_evicted" in data and nat_idle_s is None:
        raise ScenarioError(v.source, "network.on_evicted", "needs nat_idle_s beside it (nothing is evicted without a NAT timeout)")
    loss = v.table(data, "loss", "network")
    v.only(loss, {"up", "down"}, "network.loss")
    rates = {}
    for direction in ("up", "down"):
        rate = v.number(loss, direction, "network.loss", default=0.0, minimum=0.0)
        if rate > 0.5:
            raise ScenarioError(v.source, f"network.loss.{direction}", f"must be between 0 and 0.5 (a probability per packet), not {rate}")
        rates[direction] = rate
    windows = v.get(data, "blackhole", list, "network", default=[])
    blackholes: list[Any] = []
    for index, item in enumerate(windows):
        path = f"network.blackhole[{index}]"
        item = v.mapping(item, path)
        v.only(item, {"at_s", "for_s"}, path)
        at_s = v.number(item, "at_s", path, minimum=0.0)
        for_s = v.number(item, "for_s", path, minimum=0.0, exclusive=True)
        if at_s is None or for_s is None:
            raise ScenarioError(v.source, path, "needs at_s and for_s (seconds after the client started, and how long)")
        if blackholes and at_s < blackholes[-1].end_s:
            raise ScenarioError(
                v.source, f"{path}.at_s", f"windows must be in order and not overlap; the previous one ends at {blackholes[-1].end_s:g} s"
            )
        blackholes.append(Blackhole(at_s, for_s))
    reset_after = v.get(data, "reset_after_bytes", int, "network", default=None)
    if reset_after is not None and reset_after < 1:
        raise ScenarioError(v.source, "network.reset_after_bytes", "must be at least 1")
    return Network(
        nat_idle_s=nat_idle_s,
        on_evicted=on_evicted,
        loss_up=rates["up"],
        loss_down=rates["down"],
        blackholes=tuple(blackholes),
        reset_after_bytes=reset_after,
    )


def _check_toxic(v: _Validator, toxic: Mapping[str, Any], path: str) -> None:
    try:
        from harness.network.toxiproxy import toxic_from_data
    except ImportError:  # pragma: no cover - the typed toxic layer ships with the harness
        return
    try:
        toxic_from_data(toxic)
    except ValueError as error:
        raise ScenarioError(v.source, path, str(error)) from None


class _Validator:
    def __init__(self, source: str) -> None:
        self.source = source

    def mapping(self, value: Any, path: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise ScenarioError(self.source, path, f"must be a table, not {type(value).__name__}")
        return value

    def table(self, data: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
        return self.mapping(data.get(key, {}), _join(path, key))

    def only(self, data: Mapping[str, Any], allowed: set[str], path: str) -> None:
        for key in data:
            if key not in allowed:
                close = _closest(key, allowed)
                hint = f"; did you mean {close!r}?" if close else f"; expected one of {', '.join(sorted(allowed))}"
                raise ScenarioError(self.source, _join(path, key), f"unknown key{hint}")

    def get(self, data: Mapping[str, Any], key: str, kind: type, path: str, default: Any = None, required: bool = False) -> Any:
        if key not in data:
            if required:
                raise ScenarioError(self.source, _join(path, key), "is required")
            return default
        value = data[key]
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ScenarioError(self.source, _join(path, key), f"must be a whole number, not {value!r}")
        if kind is not int and not isinstance(value, kind):
            raise ScenarioError(self.source, _join(path, key), f"must be a {_kind_name(kind)}, not {value!r}")
        return value

    def number(
        self,
        data: Mapping[str, Any],
        key: str,
        path: str,
        default: Any = None,
        minimum: float | None = None,
        exclusive: bool = False,
        maximum: float | None = None,
    ) -> Any:
        if key not in data:
            return default
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or math.isinf(value):
            raise ScenarioError(self.source, _join(path, key), f"must be a number, not {value!r}")
        if minimum is not None and (value < minimum or (exclusive and value == minimum)):
            raise ScenarioError(self.source, _join(path, key), f"must be {'>' if exclusive else '>='} {minimum:g}, not {value}")
        if maximum is not None and value > maximum:
            raise ScenarioError(self.source, _join(path, key), f"must be at most {maximum:g}, not {value}")
        return float(value)


def _kind_name(kind: type) -> str:
    return {str: "string", bool: "boolean (true/false)", list: "list", dict: "table"}.get(kind, kind.__name__)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _closest(key: str, allowed: set[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.75)
    return found[0] if found else None


# -- the library ---------------------------------------------------------------------------------


def library(directory: Path = LIBRARY) -> list[Path]:
    return sorted(directory.glob("*.toml"))


def find(name_or_path: str, directory: Path = LIBRARY) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        return candidate
    path = directory / f"{name_or_path}.toml"
    if not path.exists():
        names = ", ".join(p.stem for p in library(directory))
        raise ScenarioError(name_or_path, "", f"no scenario of that name in {directory} (have: {names})")
    return path
