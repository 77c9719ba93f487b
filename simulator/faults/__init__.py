"""Faults as data: one small frozen type per failure shape, where it fires, and which requests.

A :class:`~simulator.faults.model.FaultPlan` is validated once; the decisions it makes are a pure
function of (plan, trial, logical request, attempt, connection) — see :mod:`.decide` — so a run can
be replayed and unit-tested with no sockets. The transports only execute what was decided.
"""

from .model import (  # noqa: F401
    FAULT_TYPES, Blackhole, Fin, FaultPlan, Goaway, HttpError, IdleEviction, MalformedSse, PlanError, RstStream, Rule,
    Selector, SseError, Slow, Stall, TcpReset, Trigger, TruncatedClean,
)
