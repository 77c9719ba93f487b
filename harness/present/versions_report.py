"""Two additions to every summary (issue 14): the field check (each scenario's ``[field]`` row:
reproduced / different / not run) and the version matrix (a client's versions side by side, recovery
with its 95 % interval per version). Written into ``summary.json`` (keys ``field`` and ``matrix``,
and ``field`` on each row), appended to ``report.html``, and printed as two terminal tables."""

from __future__ import annotations

import dataclasses
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.clients.versions import version_key
from harness.measure.metrics import SummaryRow
from harness.present import fieldmatch


def extend(directory: Path, rows: list[SummaryRow], records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    names = list(dict.fromkeys(r["scenario"] for r in records))
    field = fieldmatch.evaluate(fieldmatch.load(directory, names), records)
    for index, row in enumerate(rows):  # the rows are frozen: each is replaced by one with its field checks
        rows[index] = dataclasses.replace(
            row,
            field=[
                {
                    "field_client": e.get("field_client"),
                    "field_version": e.get("field_version"),
                    "source": e.get("field_source"),
                    "literal": e.get("field_error") or e.get("field_behaviour"),
                    "status": e["status"],
                    "verdict": fieldmatch.verdict(e),
                }
                for e in field
                if e["scenario"] == row.scenario and e["client"] == row.client
            ],
        )
    return {"field": field, "matrix": matrix(rows)}


def matrix(rows: Sequence[SummaryRow]) -> list[dict[str, Any]]:
    """One table per client family run at two or more versions: scenarios down, versions across."""
    families: dict[str, list[str]] = {}
    for row in rows:
        base = fieldmatch.family(row["client"])  # claude-code-bun@V sits beside claude-code@V
        families.setdefault(base, [])
        if row["client"] not in families[base]:
            families[base].append(row["client"])
    tables = []
    for base, clients in families.items():
        if len(clients) < 2 or not any("@" in c for c in clients):
            continue
        clients.sort(key=lambda c: (version_key(c.split("@", 1)[1]) if "@" in c else (10**9,), c))
        scenarios = list(dict.fromkeys(r["scenario"] for r in rows if r["client"] in clients))
        lines = []
        for scenario in scenarios:
            cells = {}
            for client in clients:
                found = next((r for r in rows if r["scenario"] == scenario and r["client"] == client), None)
                cells[client] = _cell(found)
            lines.append({"scenario": scenario, "cells": cells})
        tables.append({"client": base, "columns": clients, "rows": lines})
    return tables


def _cell(row: SummaryRow | None) -> dict[str, Any]:
    if row is None:
        return {"text": "not run"}
    if row.get("skipped") and not row.get("trials"):
        return {"text": f"skipped: {row['skipped'][:40]}"}
    ci = row.get("recovery_ci") or [0, 1]
    rate = row.get("recovery_rate")
    return {
        "recovered": row["recovered"],
        "trials": row["trials"],
        "rate": rate,
        "ci": ci,
        "text": f"{row['recovered']}/{row['trials']} {rate:.0%} [{ci[0]:.0%}, {ci[1]:.0%}]" if rate is not None else "-",
    }


def finish(paths: Mapping[str, Path], extra: Mapping[str, Any]) -> None:
    """Add the two sections to summary.json and report.html (written by harness.present.report)."""
    summary = json.loads(paths["json"].read_text())
    summary.update(extra)
    paths["json"].write_text(json.dumps(summary, indent=2))
    page = paths["html"].read_text()
    sections = render_html(extra)
    if sections:
        marker = "</body></html>"
        page = page.replace(marker, sections + marker) if marker in page else page + sections
        paths["html"].write_text(page)


def render_html(extra: Mapping[str, Any]) -> str:
    e = html.escape
    out = []
    for table in extra.get("matrix", []):
        head = "".join(f"<th>{e(c)}</th>" for c in table["columns"])
        body = "".join(
            f"<tr><td>{e(line['scenario'])}</td>" + "".join(f"<td>{e(line['cells'][c]['text'])}</td>" for c in table["columns"]) + "</tr>"
            for line in table["rows"]
        )
        out.append(
            f"<h2>Versions side by side: {e(table['client'])} (recovered/trials, rate [95% CI])</h2>"
            f"<table><tr><th>scenario</th>{head}</tr>{body}</table>"
        )
    if extra.get("field"):
        body = "".join(
            f"<tr><td>{e(f['scenario'])}</td><td>{e(f['client'])}</td><td>{e(str(f.get('field_version') or ''))}</td>"
            f"<td><code>{e(f.get('field_error') or f.get('field_behaviour') or '')}</code></td><td>{e(f.get('field_source') or '')}</td>"
            f"<td>{e(fieldmatch.verdict(f))}</td></tr>"
            for f in extra["field"]
        )
        out.append(
            "<h2>Field reports: did the client print what the field saw?</h2><table><tr><th>scenario</th><th>client</th>"
            f"<th>field version</th><th>field's literal error or behaviour</th><th>source</th><th>field</th></tr>{body}</table>"
        )
    return "".join(out)


def print_tables(extra: Mapping[str, Any], console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    console.width = max(console.width, 150)
    for item in extra.get("matrix", []):
        table = Table(title=f"streamchaos: {item['client']} versions side by side (recovered/n, rate [95% CI])")
        table.add_column("scenario")
        for column in item["columns"]:
            table.add_column(column)
        for line in item["rows"]:
            table.add_row(line["scenario"], *(line["cells"][c]["text"] for c in item["columns"]))
        console.print(table)
    if extra.get("field"):
        table = Table(title="streamchaos: field reports (did the client print the field's literal error?)")
        for column in ("scenario", "client", "field version", "field", "field's literal"):
            table.add_column(column, overflow="fold")
        for f in extra["field"]:
            table.add_row(
                f["scenario"],
                f["client"],
                str(f.get("field_version") or ""),
                fieldmatch.verdict(f)[:160],
                (f.get("field_error") or f.get("field_behaviour") or "")[:90],
            )
        console.print(table)
