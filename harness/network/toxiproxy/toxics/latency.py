"""latency: every chunk held a while (toxiproxy's ``latency`` toxic)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from harness.network.toxiproxy.toxics.base import MAX_MS, Toxic, integer


@dataclass(frozen=True)
class LatencyToxic(Toxic):
    """Each chunk is held ``latency`` ms (+/- up to ``jitter`` ms). Huge: a lossless stall."""

    kind: ClassVar[str] = "latency"
    scaling: ClassVar[Mapping[str, str]] = {"latency": "duration", "jitter": "duration"}
    latency: int = 0
    jitter: int = 0

    def _check(self) -> None:
        integer(self.kind, "latency", self.latency, 0, MAX_MS, "milliseconds")
        integer(self.kind, "jitter", self.jitter, 0, MAX_MS, "milliseconds")
