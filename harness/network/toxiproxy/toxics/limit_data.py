"""limit_data: exactly N bytes, then a close (toxiproxy's ``limit_data`` toxic)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from harness.network.toxiproxy.toxics.base import MAX_INT64, Toxic, integer


@dataclass(frozen=True)
class LimitDataToxic(Toxic):
    """Pass exactly ``bytes`` bytes (per connection and direction), then close. With the linger
    trick the close is an RST: exactly N bytes, then ECONNRESET."""

    kind: ClassVar[str] = "limit_data"
    scaling: ClassVar[Mapping[str, str]] = {}
    bytes: int = 0

    def _check(self) -> None:
        integer(self.kind, "bytes", self.bytes, 0, MAX_INT64, "bytes")
