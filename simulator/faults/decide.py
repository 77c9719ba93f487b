"""Which rules fire: a pure function of the plan and the facts of one request or connection.

Draws come from a keyed hash, not a stateful generator, so a decision never depends on the order
in which concurrent trials happened to arrive: the same (seed, rule, trial, logical request,
attempt) always draws the same number.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .model import FaultPlan, IdleEviction, Rule


@dataclass(frozen=True, slots=True)
class RequestFacts:
    trial: str  # the trial's API key (or its lane)
    logical: str  # identifies the logical request: the conversation digest
    attempt: int  # 1-based: how many times this trial has sent this logical request
    connection: int  # 1-based ordinal, within the trial, of the connection carrying it
    request: int  # 1-based ordinal of the request within the trial
    elapsed_s: float  # since the plan was loaded
    streaming: bool
    path: str
    protocol: str  # "h2" | "http/1.1"
    idle_s: float = 0.0  # how long the connection sat idle before this request


@dataclass(frozen=True, slots=True)
class ConnectionFacts:
    trial: str  # "" when the connection is not on a trial's lane
    connection: int  # 1-based ordinal within the trial (or since the plan was loaded)
    elapsed_s: float
    phase: str  # "accept" | "tls"


def uniform(seed: int, *parts: object) -> float:
    """A number in [0, 1) fixed by its inputs."""
    digest = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def is_doomed(plan: FaultPlan, index: int, trial: str, logical: str) -> bool:
    rule = plan.rules[index]
    return rule.select.doomed > 0 and uniform(plan.seed, index, "doomed", trial, logical) < rule.select.doomed


def request_rules(plan: FaultPlan, facts: RequestFacts) -> tuple[int, ...]:
    """Indices of the rules that fire for this request, in plan order."""
    return tuple(i for i, rule in enumerate(plan.rules) if not rule.trigger.at_connection and _selects_request(plan, i, rule, facts))


def connection_rule(plan: FaultPlan, facts: ConnectionFacts) -> int | None:
    """The first rule that fires at this point of a connection's life, if any."""
    for index, rule in enumerate(plan.rules):
        if rule.trigger.at != facts.phase:
            continue
        select = rule.select
        if select.connections is not None and facts.connection not in select.connections:
            continue
        if not _in_window(rule, facts.elapsed_s):
            continue
        if select.probability < 1 and uniform(plan.seed, index, "conn", facts.trial, facts.connection) >= select.probability:
            continue
        return index
    return None


def _selects_request(plan: FaultPlan, index: int, rule: Rule, facts: RequestFacts) -> bool:
    select = rule.select
    if not facts.path.startswith(select.path_prefix):
        return False
    if select.streaming is not None and select.streaming != facts.streaming:
        return False
    if select.attempts is not None and facts.attempt not in select.attempts:
        return False
    if select.connections is not None and facts.connection not in select.connections:
        return False
    if select.requests is not None and facts.request not in select.requests:
        return False
    if not _in_window(rule, facts.elapsed_s):
        return False
    if isinstance(rule.fault, IdleEviction) and facts.idle_s < rule.fault.idle_s:
        return False
    if select.idle_s is not None and facts.idle_s < select.idle_s:
        return False
    if rule.trigger.at == "clock" and rule.trigger.until is not None and facts.elapsed_s >= rule.trigger.until:
        return False
    if is_doomed(plan, index, facts.trial, facts.logical):
        p = select.doomed_probability
        return p >= 1 or uniform(plan.seed, index, "doomed-attempt", facts.trial, facts.logical, facts.attempt) < p
    if select.probability >= 1:
        return True
    return uniform(plan.seed, index, "req", facts.trial, facts.logical, facts.attempt) < select.probability


def _in_window(rule: Rule, elapsed_s: float) -> bool:
    window = rule.select.window_s
    return window is None or window[0] <= elapsed_s < window[1]
