"""What is known about one request or connection when the plan decides: plain values, so a
decision is a pure function of (plan, facts) and can be unit-tested with no sockets."""

from __future__ import annotations

from dataclasses import dataclass


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
    on_connection: int = 1  # 1-based ordinal of the request among all its connection carried


@dataclass(frozen=True, slots=True)
class ConnectionFacts:
    trial: str  # "" when the connection is not on a trial's lane
    connection: int  # 1-based ordinal within the trial (or since the plan was loaded)
    elapsed_s: float
    phase: str  # "accept" | "tls"
