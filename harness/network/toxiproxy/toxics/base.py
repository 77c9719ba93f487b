"""What every toxic has: a name, a direction, a chance, and one validation on construction.

The server itself validates almost nothing (``latency: -5`` or ``slicer average_size: 0`` are
accepted with 200; the latter recurses forever in the proxy), so validation happens here, once,
when the frozen dataclass is built (:class:`ToxicValidationError` names the attribute)."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from harness.network.toxiproxy.errors import ToxicValidationError

MAX_INT64 = 2**63 - 1
MAX_MS = MAX_INT64 // 1_000_000  # ms * time.Millisecond must not overflow Go's int64 nanoseconds
MAX_US = MAX_INT64 // 1_000  # slicer delay is in microseconds
MAX_RATE = MAX_INT64 // 100  # bandwidth computes rate*100 (bytes per 100 ms)
STREAMS = ("upstream", "downstream")
NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,255}$")  # toxic and proxy names
COMMON = frozenset({"name", "stream", "toxicity"})


def integer(toxic: str, attribute: str, value: Any, low: int, high: int, unit: str) -> None:
    """Raise :class:`ToxicValidationError` unless ``value`` is an int in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ToxicValidationError(f"{toxic}.{attribute}", f"must be an integer ({unit}), not {value!r}")
    if not low <= value <= high:
        raise ToxicValidationError(f"{toxic}.{attribute}", f"must be between {low} and {high} ({unit}), not {value}")


@dataclass(frozen=True, kw_only=True)
class Toxic:
    """Common fields. ``name`` defaults, as in toxiproxy, to ``{kind}_{stream}``; ``stream`` is the
    direction (``downstream``: simulator -> client); ``toxicity`` the chance, drawn per connection
    (and again whenever the proxy's toxic list changes), that the toxic applies.

    ``kind`` is toxiproxy's toxic type (its JSON ``type``, written only by :meth:`to_api`);
    ``scaling`` says how each attribute follows a scenario's time scale: ``"duration"`` attributes
    are multiplied by it, ``"rate"`` attributes divided."""

    kind: ClassVar[str] = ""
    scaling: ClassVar[Mapping[str, str]] = {}
    name: str | None = None
    stream: str = "downstream"
    toxicity: float = 1.0

    def __post_init__(self) -> None:
        if self.name is not None and (not isinstance(self.name, str) or not NAME.match(self.name)):
            raise ToxicValidationError(f"{self.kind}.name", f"must be 1-255 of [A-Za-z0-9_.-], not {self.name!r}")
        if self.stream not in STREAMS:
            raise ToxicValidationError(f"{self.kind}.stream", f"must be 'upstream' or 'downstream', not {self.stream!r}")
        t = self.toxicity
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or not 0.0 <= t <= 1.0:
            raise ToxicValidationError(f"{self.kind}.toxicity", f"must be a number between 0 and 1, not {t!r}")
        self._check()
        if self.name is None:  # as the server names it, so a toxic read back compares equal
            object.__setattr__(self, "name", f"{self.kind}_{self.stream}")

    def _check(self) -> None:
        """Validate the kind's own attributes."""

    @property
    def toxic_name(self) -> str:
        return self.name or f"{self.kind}_{self.stream}"  # always ``name`` once constructed

    def attributes(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in COMMON}

    def to_api(self) -> dict[str, Any]:
        """The toxic as toxiproxy's API takes it (the one place its ``type`` field is written)."""
        return {"name": self.toxic_name, "type": self.kind, "stream": self.stream, "toxicity": self.toxicity, "attributes": self.attributes()}
