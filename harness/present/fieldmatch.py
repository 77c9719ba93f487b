"""What the field saw, checked against what the client printed.

A scenario's ``[field]`` rows are structured (the current format)::

    [[field]]
    client = "claude-code"        # a streamchaos client: every version and runtime of it is checked
    version = "2.1.143"           # the version the report names (optional)
    error = "API Error: The socket connection was closed unexpectedly. ..."   # the literal it printed
    # or, when the field saw a behaviour rather than a message:
    # behaviour = "spinner at 0 tokens forever"   with   outcome = "hung"   (the trial outcome that shows it)
    source = "shared/seeds/002"   # where the report is (optional)
    # match = "regex"             # optional: what counts as the literal, when the text varies

The older form, one string per client (``[field]`` then ``python-sdk = "..."``), still loads:
each string is a row whose literal is the string without a trailing "(note)".

Per row and per client of the run that the row names (``claude-code`` covers ``claude-code``,
``claude-code@V`` and ``claude-code-bun@V``): **reproduced** when some trial printed the literal,
**different** (with what it printed) when none did, **not run** when the run had no such client.
Printed text and literal are compared after collapsing white space and dropping quotes, backticks
and module prefixes (``httpx.ReadError`` is ``ReadError``); a literal whose words all appear in
order with at most three words added (Bun's ``ECONNRESET:`` before the message) counts as
reproduced, and the added words are reported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

# The rows' grammar lives with the scenario (harness.field_rows); re-exported for the report's readers.
from harness.field_rows import OUTCOMES as OUTCOMES
from harness.field_rows import ROW_KEYS as ROW_KEYS
from harness.field_rows import FieldError as FieldError
from harness.field_rows import FieldRow
from harness.field_rows import parse as parse

RUNTIME_VARIANTS = {"claude-code-bun": "claude-code"}
MAX_ADDED_WORDS = 3


# -- matching -------------------------------------------------------------------------------------


def family(client: str) -> str:
    base = client.split("@", 1)[0]
    return RUNTIME_VARIANTS.get(base, base)


def version_of(client: str) -> str | None:
    return client.split("@", 1)[1] if "@" in client else None


def normalize(text: str) -> str:
    text = re.sub(r"[`'\"“”‘’]", "", text)  # noqa: RUF001 - typographic quotes, on purpose
    text = re.sub(r"\b(?:[a-z_][a-z0-9_]*\.)+(?=[A-Z])", "", text)  # httpx.ReadError -> ReadError
    return re.sub(r"\s+", " ", text).strip()


def find_literal(row: FieldRow, printed: str) -> tuple[bool, list[str]]:
    """(found, words added inside it) for the row's literal in ``printed``."""
    if row.match:
        return bool(re.search(row.match, printed)), []
    literal, text = normalize(row.error or ""), normalize(printed)
    if not literal:
        return False, []
    if literal in text:
        return True, []
    words, have = literal.split(" "), text.split(" ")
    for start in (i for i, w in enumerate(have) if w == words[0]):
        added: list[str] = []
        k = 0
        for word in have[start:]:
            if k == len(words):
                break
            if word == words[k]:
                k += 1
            elif len(added) < MAX_ADDED_WORDS:
                added.append(word)
            else:
                break
        if k == len(words):
            return True, added
    return False, []


def printed_by(record: Mapping[str, Any]) -> str:
    return "\n".join(x for x in (record.get("error_line") or "", record.get("stdout_tail") or "", record.get("stderr_tail") or "") if x)


def check(row: FieldRow, client: str, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One row against one client's trials."""
    ran = [r for r in records if not r.get("skipped") and r.get("outcome") not in ("skipped", "error")]
    field_version = row.version.lstrip("v") if row.version else None
    same = field_version is not None and (version_of(client) or "").lstrip("v") == field_version
    result: dict[str, Any] = {"client": client, "client_version": version_of(client), "same_version": same, "trials": len(ran)}
    if not ran:
        return {**result, "status": "not run", "printed": ""}
    if row.error:
        for record in ran:
            found, added = find_literal(row, printed_by(record))
            if found:
                return {**result, "status": "reproduced", "printed": _line(record, row), "added": added, "trial": record.get("trial")}
        return {**result, "status": "different", "printed": _most_common_line(ran)}
    if row.outcome:
        hits = [r for r in ran if r.get("outcome") == row.outcome]
        if hits:
            return {
                **result,
                "status": "reproduced",
                "printed": f"outcome {row.outcome} in {len(hits)}/{len(ran)} trials",
                "trial": hits[0].get("trial"),
            }
        outcomes = sorted({str(r.get("outcome")) for r in ran})
        return {**result, "status": "different", "printed": f"outcome {', '.join(outcomes)} (field: {row.behaviour})"}
    return {**result, "status": "not checkable", "printed": "a behaviour without an outcome to compare"}


def _line(record: Mapping[str, Any], row: FieldRow) -> str:
    for line in printed_by(record).splitlines():
        if find_literal(row, line)[0]:
            return line.strip()[:300]
    return (record.get("error_line") or "").strip()[:300]


def _most_common_line(records: Sequence[Mapping[str, Any]]) -> str:
    """The error line most trials printed (and in how many), else the outcomes: what a reader
    should see beside the field's literal."""
    counts: dict[str, int] = {}
    for record in records:
        line = (record.get("error_line") or "").strip()
        if line:
            counts[line] = counts.get(line, 0) + 1
    outcomes: dict[str, int] = {}
    for record in records:
        outcomes[str(record.get("outcome"))] = outcomes.get(str(record.get("outcome")), 0) + 1
    seen = ", ".join(f"{name} {count}/{len(records)}" for name, count in sorted(outcomes.items()))
    if not counts:
        return f"no error printed (outcomes: {seen})"
    line, count = max(counts.items(), key=lambda kv: kv[1])
    return f"{line[:300]} ({count}/{len(records)} trials; outcomes: {seen})"


def evaluate(fields: Mapping[str, Sequence[FieldRow]], records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every field row of every scenario that ran, against each client of the run it names."""
    by_key: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for record in records:
        by_key.setdefault((record["scenario"], record["client"]), []).append(record)
    ran_scenarios = {scenario for scenario, _ in by_key}
    out = []
    for scenario, rows in fields.items():
        if scenario not in ran_scenarios:
            continue
        clients = [c for (s, c) in by_key if s == scenario]
        for row in rows:
            entry = {"scenario": scenario, **{f"field_{k}": v for k, v in row.to_data().items() if k != "legacy"}}
            matching = [c for c in clients if _covers(row.client, c)]
            if not matching:
                out.append({**entry, "client": row.client, "status": "not run", "printed": "", "trials": 0})
            for client in matching:
                out.append({**entry, **check(row, client, by_key[(scenario, client)])})
    return out


def _covers(field_client: str, run_client: str) -> bool:
    """A row about ``claude-code`` covers claude-code, claude-code@V and claude-code-bun@V; a row
    about ``python-sdk`` covers python-sdk and python-sdk@V (not python-sdk-h2)."""
    base = run_client.split("@", 1)[0]
    return base == field_client or RUNTIME_VARIANTS.get(base) == field_client


def verdict(entry: Mapping[str, Any]) -> str:
    """``reproduced`` / ``different: <printed>`` / ``not run``, as the table and report show it."""
    status = entry["status"]
    if status == "reproduced":
        added = entry.get("added")
        return "reproduced" + (f" (with {' '.join(added)!r} added)" if added else "")
    if status == "different":
        return f"different: {entry.get('printed', '')}"
    return status


# -- persistence beside the results ---------------------------------------------------------------


def save(directory: Path, scenarios: Iterable[Any]) -> None:
    """``field.json``: the field rows of the run's scenarios, so ``streamchaos report`` can check
    them again whether the scenarios came from the library or from files."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "field.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    for item in scenarios:
        known[item.name] = [row.to_data() for row in getattr(item, "field_rows", ())]
    path.write_text(json.dumps(known, indent=2))


def load(directory: Path, names: Iterable[str]) -> dict[str, tuple[FieldRow, ...]]:
    """The field rows for ``names``: from ``field.json`` if the run saved them, else the library."""
    path = directory / "field.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    out: dict[str, tuple[FieldRow, ...]] = {}
    for name in names:
        if name in saved:
            out[name] = tuple(FieldRow(**row) for row in saved[name])
            continue
        try:
            from harness import scenario

            out[name] = tuple(scenario.load(scenario.find(name)).field_rows)
        except Exception:
            out[name] = ()
    return out
