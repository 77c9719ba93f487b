"""Toxiproxy's v2.12 toxics: one module per kind (its frozen type, validation, scaling), one table.

A new kind is a module beside these and one entry in :data:`TOXIC_KINDS`. Scenario files and the
API both name a toxic's kind ``type`` (as the fault plan names a fault's); inside the code it is
``kind``, as for faults."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from harness.network.toxiproxy.errors import ToxicValidationError, ToxiproxyError
from harness.network.toxiproxy.toxics.bandwidth import BandwidthToxic
from harness.network.toxiproxy.toxics.base import COMMON, MAX_INT64, MAX_MS, MAX_RATE, MAX_US, NAME, STREAMS, Toxic
from harness.network.toxiproxy.toxics.latency import LatencyToxic
from harness.network.toxiproxy.toxics.limit_data import LimitDataToxic
from harness.network.toxiproxy.toxics.reset_peer import ResetPeerToxic
from harness.network.toxiproxy.toxics.slicer import SlicerToxic
from harness.network.toxiproxy.toxics.slow_close import SlowCloseToxic
from harness.network.toxiproxy.toxics.timeout import TimeoutToxic

TOXIC_KINDS: dict[str, type[Toxic]] = {
    cls.kind: cls for cls in (LatencyToxic, BandwidthToxic, SlowCloseToxic, TimeoutToxic, ResetPeerToxic, SlicerToxic, LimitDataToxic)
}


def toxic_from_data(data: Mapping[str, Any]) -> Toxic:
    """A toxic as a scenario file writes it: ``{"type": "latency", "latency": 100}`` (attributes
    flat, or under ``"attributes"``), with optional ``name``, ``stream``, ``toxicity``. Raises
    :class:`ToxicValidationError` (a ValueError) naming the key."""
    if not isinstance(data, Mapping):
        raise ToxicValidationError("toxic", f"must be a table, not {type(data).__name__}")
    kind = data.get("type")
    cls = TOXIC_KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ToxicValidationError("type", f"must be one of {', '.join(sorted(TOXIC_KINDS))}, not {kind!r}")
    nested = data.get("attributes", {})
    if not isinstance(nested, Mapping):
        raise ToxicValidationError(f"{kind}.attributes", f"must be a table, not {type(nested).__name__}")
    allowed = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in [*((k, v) for k, v in data.items() if k not in ("type", "attributes")), *nested.items()]:
        if key not in allowed:
            raise ToxicValidationError(f"{kind}.{key}", f"unknown attribute; {kind} has {', '.join(sorted(allowed))}")
        values[key] = value
    return cls(**values)


def toxic_from_api(data: Mapping[str, Any]) -> Toxic:
    """A toxic as the API lists it -> its dataclass (unknown attributes are ignored)."""
    cls = TOXIC_KINDS.get(data.get("type", ""))
    if cls is None:
        raise ToxiproxyError(f"unknown toxic type in API answer: {data!r}")
    names = {f.name for f in dataclasses.fields(cls)} - COMMON
    attributes = {k: v for k, v in (data.get("attributes") or {}).items() if k in names}
    return cls(name=data.get("name"), stream=data.get("stream", "downstream"), toxicity=data.get("toxicity", 1.0), **attributes)


def scaled_attributes(kind: str, attributes: Mapping[str, Any], factor: float) -> dict[str, Any]:
    """Attributes of a ``kind`` toxic with durations x ``factor`` and rates / ``factor`` (as the
    simulator's ``scaled`` does for fault plans); a nonzero value stays nonzero."""
    if not (isinstance(factor, (int, float)) and math.isfinite(factor) and factor > 0):
        raise ValueError(f"time scale must be a finite number > 0, not {factor!r}")
    out = dict(attributes)
    cls = TOXIC_KINDS.get(kind)
    for name, how in (cls.scaling if cls else {}).items():
        value = out.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            out[name] = max(1, round(value * factor if how == "duration" else value / factor))
    return out


def scaled_toxic(toxic: Toxic, factor: float) -> Toxic:
    """The same toxic with its durations scaled (see :func:`scaled_attributes`)."""
    if factor == 1:
        return toxic
    return dataclasses.replace(toxic, **scaled_attributes(toxic.kind, toxic.attributes(), factor))


__all__ = [
    "MAX_INT64",
    "MAX_MS",
    "MAX_RATE",
    "MAX_US",
    "NAME",
    "STREAMS",
    "TOXIC_KINDS",
    "BandwidthToxic",
    "LatencyToxic",
    "LimitDataToxic",
    "ResetPeerToxic",
    "SlicerToxic",
    "SlowCloseToxic",
    "TimeoutToxic",
    "Toxic",
    "scaled_attributes",
    "scaled_toxic",
    "toxic_from_api",
    "toxic_from_data",
]
