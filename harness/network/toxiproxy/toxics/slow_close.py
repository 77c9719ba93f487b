"""slow_close: the close delayed (toxiproxy's ``slow_close`` toxic)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from harness.network.toxiproxy.toxics.base import MAX_MS, Toxic, integer


@dataclass(frozen=True)
class SlowCloseToxic(Toxic):
    """Delay the close (after the peer's EOF) by ``delay`` ms."""

    kind: ClassVar[str] = "slow_close"
    scaling: ClassVar[Mapping[str, str]] = {"delay": "duration"}
    delay: int = 0

    def _check(self) -> None:
        integer(self.kind, "delay", self.delay, 0, MAX_MS, "milliseconds")
