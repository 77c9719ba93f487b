"""A scenario's ``[field]`` rows: what users reported seeing, as data (see harness.present.fieldmatch
for the format and for checking a run against them). The grammar sits here, beside the scenario that
loads it, so that the scenario does not import the report's matching code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

ROW_KEYS = {"client", "version", "error", "behaviour", "outcome", "source", "match", "note"}
OUTCOMES = ("recovered", "clean", "failed", "hung", "data_loss", "duplicated")


class FieldError(ValueError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path, self.message = path, message


@dataclass(frozen=True)
class FieldRow:
    client: str
    version: str | None = None
    error: str | None = None
    behaviour: str | None = None
    outcome: str | None = None
    source: str | None = None
    match: str | None = None
    note: str | None = None
    legacy: bool = False

    @property
    def text(self) -> str:
        return self.error or self.behaviour or ""

    def to_data(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, False)}


def parse(value: Any, source: str = "") -> tuple[tuple[FieldRow, ...], dict[str, str]]:
    """``[field]`` as loaded from TOML: the rows, and the client -> text view older code shows.
    Raises FieldError(path, message) for a malformed row."""
    rows: list[FieldRow] = []
    if isinstance(value, Mapping):  # the older form
        for key, text in value.items():
            if not isinstance(text, str):
                raise FieldError(f"field.{key}", "must be a string: what the field saw with this client")
            literal = re.sub(r"\s+\([^()]+\)\s*$", "", text).strip() or text
            rows.append(FieldRow(client=key, error=literal, note=text if literal != text else None, legacy=True))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            path = f"field[{index}]"
            if not isinstance(item, Mapping):
                raise FieldError(path, "must be a table ([[field]] with client, error or behaviour, version, source)")
            unknown = sorted(set(item) - ROW_KEYS)
            if unknown:
                raise FieldError(f"{path}.{unknown[0]}", f"unknown key; expected one of {', '.join(sorted(ROW_KEYS))}")
            for key in ROW_KEYS:
                if key in item and not isinstance(item[key], str):
                    raise FieldError(f"{path}.{key}", f"must be a string, not {item[key]!r}")
            if not item.get("client"):
                raise FieldError(f"{path}.client", "is required: the streamchaos client the field report is about (e.g. claude-code)")
            if not (item.get("error") or item.get("behaviour")):
                raise FieldError(path, "give error (the literal the client printed) or behaviour (what it did)")
            if item.get("outcome") and item["outcome"] not in OUTCOMES:
                raise FieldError(f"{path}.outcome", f"must be one of {', '.join(OUTCOMES)}, not {item['outcome']!r}")
            if item.get("match"):
                try:
                    re.compile(item["match"])
                except re.error as error:
                    raise FieldError(f"{path}.match", f"not a regular expression: {error}") from None
            rows.append(FieldRow(**{k: item[k] for k in ROW_KEYS if k in item}))
    else:
        raise FieldError("field", 'must be a table (client = "what it printed") or [[field]] rows')
    view: dict[str, str] = {}
    for row in rows:
        key = row.client if row.legacy or row.version is None else f"{row.client}@{row.version}"
        view[key] = (view[key] + " | " if key in view else "") + (row.note or row.text)
    return tuple(rows), view
