"""``streamchaos merge DIR... --out DIR``: one results directory from the shards of a run.

Every shard's manifest must agree on the run id, the configuration digest, the streamchaos
version, the client versions and the shard count; every shard 1..N must be there exactly once,
every trial of the grid recorded by exactly one shard, and each shard must have recorded every
trial it was assigned. Anything else is refused, naming the shards and directories concerned.
The merged directory holds trials.jsonl (in grid order), the journals, summary.json/csv,
report.html, junit.xml and a manifest naming the shards it came from, so ``gate --from`` and
``report`` treat it like any run.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.drive.shards import MANIFEST_VERSION, ShardError, expand, read_manifest, write_manifest

if TYPE_CHECKING:
    from harness.measure.metrics import SummaryRow
    from harness.present.gate import Policy, Verdict


class MergeError(ValueError):
    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("cannot merge:\n  - " + "\n  - ".join(problems))
        self.problems = list(problems)


@dataclass
class ShardDir:
    path: Path
    manifest: dict[str, Any]
    records: list[dict[str, Any]]

    @property
    def label(self) -> str:
        shard = self.manifest["shard"]
        return f"shard {shard['index']}/{shard['count']} ({self.path})"


def load(directory: Path) -> ShardDir:
    from harness.drive.runner import load_records, only_latest

    if not (directory / "manifest.json").exists() and (directory / "latest" / "manifest.json").exists():
        directory = (directory / "latest").resolve()  # results/shard-I-of-N given: its latest run
    manifest = read_manifest(directory)
    return ShardDir(directory, manifest, only_latest(load_records(directory)))


def _differ(shards: Sequence[ShardDir], what: str, value: Any) -> str | None:
    groups: dict[str, list[str]] = {}
    for shard in shards:
        groups.setdefault(json.dumps(value(shard), sort_keys=True), []).append(shard.label)
    if len(groups) < 2:
        return None
    parts = [f"{json.loads(k)!r}: {', '.join(v)}" for k, v in groups.items()]
    return f"mixed {what}: " + "; ".join(parts)


def check(shards: Sequence[ShardDir]) -> list[str]:
    """Every problem that stops a merge, each naming the shards and directories concerned."""
    problems = []
    for what, value in (
        ("run ids", lambda s: s.manifest["run_id"]),
        ("configurations (digest)", lambda s: s.manifest["config_digest"][:16]),
        ("streamchaos versions", lambda s: s.manifest["streamchaos_version"]),
        ("shard counts", lambda s: s.manifest["shard"]["count"]),
    ):
        problem = _differ(shards, what, value)
        if problem:
            problems.append(problem)
    clients = sorted({name for s in shards for name in s.manifest["client_versions"]})
    for name in clients:
        problem = _differ(shards, f"versions of client {name}", lambda s, n=name: s.manifest["client_versions"].get(n))
        if problem:
            problems.append(problem)
    if problems:
        return problems  # the rest compares shards of one configuration

    count = shards[0].manifest["shard"]["count"]
    by_index: dict[int, list[ShardDir]] = {}
    for shard in shards:
        by_index.setdefault(shard.manifest["shard"]["index"], []).append(shard)
    for index, same in sorted(by_index.items()):
        if len(same) > 1:
            problems.append(f"shard {index}/{count} given {len(same)} times (run twice?): " + ", ".join(str(s.path) for s in same))
    missing = [i for i in range(1, count + 1) if i not in by_index]
    if missing:
        problems.append(
            "missing "
            + ", ".join(f"shard {i}/{count}" for i in missing)
            + f" (given: {', '.join(f'{i}/{count}' for i in sorted(by_index)) or 'none'})"
        )

    grid = {(s, c, i) for s, c, n in shards[0].manifest["grid"] for i in range(n)}
    owner: dict[tuple[str, str, int], ShardDir] = {}
    overlaps: dict[tuple[str, str], list[tuple[str, str, int]]] = {}
    distinct = [same[0] for _, same in sorted(by_index.items())]
    for shard in distinct:
        assigned = expand(shard.manifest.get("assigned", [])) if shard.manifest["shard"]["count"] > 1 else grid
        recorded = {(r["scenario"], r["client"], r["trial"]) for r in shard.records}
        stray = sorted(recorded - assigned)
        if stray:
            problems.append(f"{shard.label} recorded {len(stray)} trial(s) it was not assigned, e.g. {_trial(stray[0])}")
        absent = sorted(assigned - recorded)
        if absent:
            problems.append(
                f"{shard.label} is incomplete: {len(absent)} of {len(assigned)} assigned trials not recorded, "
                f"e.g. {_trial(absent[0])} (resume it with the same --run-id and --shard)"
            )
        for trial in sorted(recorded | assigned):
            other = owner.get(trial)
            if other is not None and other is not shard:
                overlaps.setdefault((other.label, shard.label), []).append(trial)
            else:
                owner[trial] = shard
    for (first, second), trials in overlaps.items():
        problems.append(f"overlapping shards: {first} and {second} both hold {len(trials)} trial(s), e.g. {_trial(trials[0])}")
    if not missing:
        uncovered = sorted(grid - set(owner))
        if uncovered:
            problems.append(f"{len(uncovered)} trial(s) of the grid are in no shard, e.g. {_trial(uncovered[0])}")
    return problems


def _trial(trial: tuple[str, str, int]) -> str:
    return f"{trial[0]} / {trial[1]} / trial {trial[2]}"


def merge(directories: Sequence[Path], out: Path) -> dict[str, Any]:
    """Check, then write the merged directory; returns its manifest."""
    if not directories:
        raise MergeError(["no shard directories given"])
    try:
        shards = [load(Path(d)) for d in directories]
    except ShardError as error:
        raise MergeError([str(error)]) from None
    problems = check(shards)
    if problems:
        raise MergeError(problems)
    out = Path(out)
    if (out / "trials.jsonl").exists():
        raise MergeError([f"{out} already holds trials.jsonl; merge into a new directory"])
    if any(out.resolve() == s.path.resolve() for s in shards):
        raise MergeError([f"--out {out} is one of the shards"])
    out.mkdir(parents=True, exist_ok=True)

    first = shards[0].manifest
    scenario_order = {s["name"]: n for n, s in enumerate(first.get("configuration", {}).get("scenarios", []))}
    client_order = {c["name"]: n for n, c in enumerate(first.get("configuration", {}).get("clients", []))}
    records = [r for s in shards for r in s.records]
    records.sort(
        key=lambda r: (
            scenario_order.get(r["scenario"], len(scenario_order)),
            r["scenario"],
            client_order.get(r["client"], len(client_order)),
            r["client"],
            r["trial"],
        )
    )
    tmp = out / "trials.jsonl.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, separators=(",", ":")) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, out / "trials.jsonl")

    journals: dict[str, list[Path]] = {}
    for shard in sorted(shards, key=lambda s: s.manifest["shard"]["index"]):
        for journal in sorted(shard.path.glob("journal-*.jsonl")):
            journals.setdefault(journal.name, []).append(journal)
    for name, parts in journals.items():
        with open(out / name, "wb") as target:
            for part in parts:
                with open(part, "rb") as source:
                    data = source.read()
                target.write(data if data.endswith(b"\n") or not data else data + b"\n")

    manifest = {key: value for key, value in first.items() if key not in ("assigned", "planned_cost_s")}
    manifest.update(
        {
            "manifest_version": MANIFEST_VERSION,
            "shard": {"index": 1, "count": 1},
            "merged_from": [
                {
                    "index": s.manifest["shard"]["index"],
                    "count": s.manifest["shard"]["count"],
                    "directory": str(s.path),
                    "trials": len(s.records),
                    "planned_cost_s": s.manifest.get("planned_cost_s"),
                }
                for s in sorted(shards, key=lambda s: s.manifest["shard"]["index"])
            ],
        }
    )
    write_manifest(out, manifest)
    return manifest


def write_reports(out: Path, manifest: dict[str, Any], policy: Policy) -> tuple[list[SummaryRow], list[Verdict]]:
    """summary.json/csv, report.html, junit.xml of the merged directory."""
    from harness.drive import runner
    from harness.measure import metrics
    from harness.present import gate, report

    records = runner.only_latest(runner.load_records(out))
    rows = metrics.summarize(records)
    meta = {
        "run_id": manifest["run_id"],
        "trials recorded": len([r for r in records if not r.get("skipped")]),
        "merged from": ", ".join(f"shard {m['index']}/{m['count']}" for m in manifest["merged_from"]),
        "configuration": manifest["config_digest"][:12],
    }
    report.write_all(out, rows, meta)
    verdicts = gate.evaluate(rows, policy)
    (out / "junit.xml").write_text(gate.junit_xml(verdicts))
    return rows, verdicts


def command(args: Any) -> int:
    from rich.console import Console

    from harness.present import gate, report_html, step_summary

    console = Console(stderr=True)
    try:
        policy = gate.load_policy(args.policy) if args.policy else gate.Policy()
    except gate.PolicyError as error:
        console.print(f"[red]streamchaos merge:[/red] {error}")
        return 2
    try:
        manifest = merge(args.directories, args.out)
    except MergeError as error:
        print(f"streamchaos merge: {error}", file=sys.stderr)
        return 2
    rows, _verdicts = write_reports(args.out, manifest, policy)
    report_html.print_summary(rows)
    total = sum(m["trials"] for m in manifest["merged_from"])
    console.print(
        f"merged {len(manifest['merged_from'])} shards, {total} trials, run {manifest['run_id']} -> {args.out} "
        f"(trials.jsonl, summary.json/csv, report.html, junit.xml)"
    )
    step_summary.for_directory(f"streamchaos merge ({len(manifest['merged_from'])} shards)", args.out)
    return 0
