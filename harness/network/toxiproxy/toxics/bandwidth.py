"""bandwidth: a rate cap; rate 0 is a lossless stall (toxiproxy's ``bandwidth`` toxic)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from harness.network.toxiproxy.toxics.base import MAX_RATE, Toxic, integer


@dataclass(frozen=True)
class BandwidthToxic(Toxic):
    """At most ``rate`` KB/s. Rate 0 is a lossless stall: nothing passes, not even the status
    line, until the toxic is removed (or updated), then every held byte goes through. Meanwhile
    the simulator has written the whole answer (toxiproxy reads and holds it), so its journal
    says ``complete`` for a reply the client has not seen a byte of."""

    kind: ClassVar[str] = "bandwidth"
    scaling: ClassVar[Mapping[str, str]] = {"rate": "rate"}
    rate: int = 0

    def _check(self) -> None:
        integer(self.kind, "rate", self.rate, 0, MAX_RATE, "KB/s")
