"""Checks every part of a plan shares: one error type, and small helpers that name the key path.

Errors name the key path (``faults[2].trigger.after_events``) and what is wrong, so the scenario
loader can prefix the file name and a user can fix the file without reading code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

MAX_SECONDS = 1_000_000.0  # any duration of a plan as the simulator runs it (scaled): about 11.6 days
MAX_VALUE = 1e12  # a trigger's value (events, bytes, ms, byte-seconds, seconds)
MAX_RATE = 1e9  # tokens per second

H2_ERROR_CODES = {
    "NO_ERROR": 0,
    "PROTOCOL_ERROR": 1,
    "INTERNAL_ERROR": 2,
    "FLOW_CONTROL_ERROR": 3,
    "SETTINGS_TIMEOUT": 4,
    "STREAM_CLOSED": 5,
    "FRAME_SIZE_ERROR": 6,
    "REFUSED_STREAM": 7,
    "CANCEL": 8,
    "COMPRESSION_ERROR": 9,
    "CONNECT_ERROR": 10,
    "ENHANCE_YOUR_CALM": 11,
    "INADEQUATE_SECURITY": 12,
    "HTTP_1_1_REQUIRED": 13,
}


class PlanError(ValueError):
    """A plan that cannot run: ``path`` is the key path, ``message`` says what is wrong."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def typed(value: Any, kind: type, path: str) -> Any:
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise PlanError(path, f"must be a whole number, not {value!r}")
    if not isinstance(value, kind):
        raise PlanError(path, f"must be a {kind.__name__}, not {value!r}")
    return value


def mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PlanError(path, f"must be a table of keys, not {type(value).__name__}")
    return value


def only(data: Mapping[str, Any], allowed: set[str], path: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise PlanError(join(path, unknown[0]), f"unknown key; expected one of {', '.join(sorted(allowed))}")


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def non_negative(value: float, path: str) -> None:
    """A number >= 0, inf allowed (capacity's "no timeout"); fault fields use :func:`bounded`."""
    if not is_number(value) or value < 0 or (isinstance(value, float) and math.isnan(value)):
        raise PlanError(path, f"must be a number >= 0, not {value!r}")


def bounded(value: float, path: str, maximum: float = MAX_SECONDS) -> None:
    """A finite number in [0, maximum] (nan and inf are refused)."""
    if not is_number(value) or not math.isfinite(value) or value < 0:
        raise PlanError(path, f"must be a finite number >= 0, not {value!r}")
    if value > maximum:
        raise PlanError(path, f"must be at most {maximum:g}, not {value!r}")


def positive(value: float, path: str, maximum: float = MAX_SECONDS) -> None:
    if not is_number(value) or not math.isfinite(value) or not value > 0:
        raise PlanError(path, f"must be a finite number > 0, not {value!r}")
    if value > maximum:
        raise PlanError(path, f"must be at most {maximum:g}, not {value!r}")


def count(value: Any, path: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PlanError(path, f"must be a whole number >= {minimum}, not {value!r}")


def h2_code(code: str | int, path: str) -> int:
    """An HTTP/2 error code given by name or number, as its number."""
    if isinstance(code, str):
        if code not in H2_ERROR_CODES:
            raise PlanError(path, f"unknown HTTP/2 error code {code!r}; one of {', '.join(H2_ERROR_CODES)}")
        return H2_ERROR_CODES[code]
    if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code < 2**32:
        raise PlanError(path, f"must be an HTTP/2 error code name or a number 0..2^32-1, not {code!r}")
    return code


def coerce(value: Any, annotation: Any, path: str) -> Any:
    """Check a plain value against a field's annotation (given as a string)."""
    text = str(annotation)
    if "tuple[int" in text:
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise PlanError(path, f"must be a list of whole numbers, not {value!r}")
        return tuple(value)
    if "tuple[float" in text:
        if not isinstance(value, list) or not all(is_number(v) for v in value):
            raise PlanError(path, f"must be a list of two numbers [start, end], not {value!r}")
        return tuple(float(v) for v in value)
    if value is None and "None" in text:
        return None
    if text.startswith("bool"):
        return typed(value, bool, path)
    if text.startswith("int | str") or text.startswith("str | int"):
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise PlanError(path, f"must be a number or a name, not {value!r}")
        return value
    if text.startswith("int"):
        return typed(value, int, path)
    if text.startswith("float"):
        if value in ("inf", "forever"):
            return math.inf
        if not is_number(value):
            raise PlanError(path, f"must be a number, not {value!r}")
        return float(value)
    if text.startswith("str"):
        return typed(value, str, path)
    return value
