"""timeout: a black hole, closed after a while or never (toxiproxy's ``timeout`` toxic)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from harness.network.toxiproxy.toxics.base import MAX_MS, Toxic, integer


@dataclass(frozen=True)
class TimeoutToxic(Toxic):
    """Drop all data; close after ``timeout`` ms (0: never close).

    Not a NAT eviction: new connections are black-holed too, toxiproxy's kernel keeps ACKing (so
    client TCP keepalives never fire), and removing the toxic closes the held connections with
    FIN. A close from the other side still passes (a ``connection: close`` answer reaches the
    client as an EOF with no data). Use the simulator's ``idle_eviction`` fault for NAT
    behaviour."""

    kind: ClassVar[str] = "timeout"
    scaling: ClassVar[Mapping[str, str]] = {"timeout": "duration"}
    timeout: int = 0

    def _check(self) -> None:
        integer(self.kind, "timeout", self.timeout, 0, MAX_MS, "milliseconds")
