"""GitHub Actions job summaries: when ``GITHUB_STEP_SUMMARY`` names a file, ``run``, ``gate`` and
``merge`` append a Markdown section to it (GitHub renders the file on the run's page)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def target(env: Mapping[str, str] | None = None) -> Path | None:
    value = (os.environ if env is None else env).get("GITHUB_STEP_SUMMARY")
    return Path(value) if value else None


def append(markdown: str, env: Mapping[str, str] | None = None) -> bool:
    path = target(env)
    if path is None:
        return False
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(markdown.rstrip("\n") + "\n\n")
    return True


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _manifest_line(directory: Path) -> str:
    try:
        data = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    shard = data.get("shard", {})
    merged = data.get("merged_from")
    where = f"merged from {len(merged)} shards" if merged else f"shard {shard.get('index')}/{shard.get('count')}"
    digest = str(data.get("config_digest", ""))[:12]
    return f"run `{data.get('run_id')}`, {where}, configuration `{digest}`, streamchaos {data.get('streamchaos_version')}\n\n"


def results_markdown(title: str, directory: Path) -> str:
    from harness.drive import runner
    from harness.measure import metrics

    rows = metrics.summarize(runner.only_latest(runner.load_records(directory)))
    body = []
    for row in rows:
        if row.get("skipped"):
            body.append([row["scenario"], row["client"], "-", "-", f"skipped: {row['skipped']}", "", ""])
            continue
        low, high = row["recovery_ci"]
        body.append(
            [
                row["scenario"],
                row["client"],
                row["trials"],
                row["recovered"],
                f"{row['recovery_rate']:.0%} [{low:.0%}, {high:.0%}]",
                row["hangs"],
                row["data_loss"],
            ]
        )
    return (
        f"### {title}\n\n"
        + _manifest_line(directory)
        + table(("scenario", "client", "trials", "recovered", "rate [95% CI]", "hangs", "data loss"), body)
    )


def for_directory(title: str, directory: Path, env: Mapping[str, str] | None = None) -> bool:
    if target(env) is None:
        return False
    return append(results_markdown(title, directory), env)


def verdict_markdown(title: str, verdicts: Sequence[Any], directory: Path | None = None) -> str:
    body = []
    counts: dict[str, int] = {}
    for verdict in verdicts:
        state = getattr(verdict, "state", None) or ("skip" if verdict.skipped else "pass" if verdict.passed else "fail")
        counts[state] = counts.get(state, 0) + 1
        mark = {"pass": "✅ pass", "fail": "❌ fail", "inconclusive": "❔ inconclusive", "skip": "⏭ skipped"}.get(state, state)
        numbers = verdict.numbers or {}
        spent = numbers.get("trials", "")
        if numbers.get("max_trials") is not None:
            spent = f"{spent} of {numbers['max_trials']}"
        detail = f"skipped: {verdict.skipped}" if verdict.skipped else "; ".join(verdict.reasons)
        body.append([verdict.scenario, verdict.client, mark, spent, detail])
    line = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    head = f"### {title}\n\n" + (_manifest_line(directory) if directory else "") + f"{line}\n\n"
    return head + table(("scenario", "client", "verdict", "trials", "why"), body)


def for_verdicts(title: str, verdicts: Sequence[Any], directory: Path | None = None, env: Mapping[str, str] | None = None) -> bool:
    if target(env) is None:
        return False
    return append(verdict_markdown(title, verdicts, directory), env)
