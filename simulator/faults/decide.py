"""Which rules fire: a pure function of the plan and the facts of one request or connection.

Draws come from :func:`.draw.uniform`, a keyed hash, so the same (seed, rule, trial, logical
request, attempt) always draws the same number, whatever order concurrent trials arrived in.
"""

from __future__ import annotations

from .draw import uniform
from .facts import ConnectionFacts, RequestFacts
from .model import FaultPlan, Rule

__all__ = ["ConnectionFacts", "RequestFacts", "connection_rule", "is_doomed", "request_rules", "uniform"]


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
    if not rule.fault.selects(facts):
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
