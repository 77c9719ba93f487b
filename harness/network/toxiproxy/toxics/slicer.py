"""slicer: chunks cut into small pieces, spaced in time (toxiproxy's ``slicer`` toxic)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from harness.network.toxiproxy.errors import ToxicValidationError
from harness.network.toxiproxy.toxics.base import MAX_INT64, MAX_US, Toxic, integer


@dataclass(frozen=True)
class SlicerToxic(Toxic):
    """Split chunks into pieces of ``average_size`` +/- ``size_variation`` bytes, ``delay`` us apart.

    ``average_size`` 0 makes toxiproxy recurse forever, ``size_variation >= average_size`` can make
    it slice out of range: both are rejected here (the server accepts them)."""

    kind: ClassVar[str] = "slicer"
    scaling: ClassVar[Mapping[str, str]] = {"delay": "duration"}
    average_size: int = 1
    size_variation: int = 0
    delay: int = 0

    def _check(self) -> None:
        integer(self.kind, "average_size", self.average_size, 1, MAX_INT64, "bytes")
        integer(self.kind, "size_variation", self.size_variation, 0, MAX_INT64, "bytes")
        if self.size_variation >= self.average_size:
            raise ToxicValidationError(
                f"{self.kind}.size_variation", f"must be smaller than average_size ({self.average_size}), not {self.size_variation}"
            )
        integer(self.kind, "delay", self.delay, 0, MAX_US, "microseconds")
