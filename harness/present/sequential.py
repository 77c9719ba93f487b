"""Sequential gates: run a cell's trials in batches and stop once the recovery interval decides.

A cell (scenario, client) has a planned maximum of N trials (its fixed count) and is looked at
after every ``batch`` trials: K = ceil(N / batch) looks. At each look, with r of n trials recovered
and the policy's threshold p0 = ``min_recovery_lower``, the gate asks the exact binomial
(Clopper-Pearson) interval at the corrected level 1 - alpha/K (alpha = 0.05, the fixed gate's 95 %):

- pass when its lower bound is >= p0, i.e. P(X >= r | n, p0) <= alpha/(2K) (and the hang,
  data-loss and amplification limits hold on the trials run so far);
- fail when its upper bound is < p0, i.e. P(X <= r | n, p0) <= alpha/(2K), or at once when hangs
  or data losses exceed their limits (those counts never go down);
- otherwise run the next batch; a cell still undecided after N trials is ``inconclusive``.

Why Bonferroni over the planned looks, with an exact interval: each look's test is exact, so its
one-sided error is at most alpha/(2K) for any true rate on the wrong side of p0; by the union bound
the chance of *any* wrong pass (or any wrong fail) over the K looks is at most alpha/2, the
one-sided rate the fixed gate's 95 % interval states, whatever the dependence between looks. The
Wilson interval of the fixed gate is an approximation that overshoots this at small n near 0 or 1,
and spending alpha/K on it would inherit that. Pocock or O'Brien-Fleming boundaries are narrower,
but their constants come from a normal approximation with equally spaced looks, poor for binomial
cells of 5-100 trials; a confidence sequence valid for unlimited looks is wider still at these n.
``exact_error`` computes the realized error of the boundaries by an exact recursion over the
binomial paths (tests/test_sequential.py and the README show it).
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

from harness.measure.metrics import SummaryRow, summarize_group, wilson
from harness.present import gate
from harness.present.gate import Policy, PolicyError, Thresholds

ALPHA = 0.05
DEFAULT_BATCH = 5
INCONCLUSIVE = ("fail", "pass")


@dataclass(frozen=True)
class Plan:
    batch: int = DEFAULT_BATCH
    alpha: float = ALPHA
    inconclusive: str = "fail"  # how an inconclusive cell counts in the exit code


@dataclass(frozen=True)
class Look:
    n: int
    recovered: int
    low: float
    high: float


@dataclass(frozen=True)
class CellVerdict:
    """Like gate.Verdict, with a state that may be ``inconclusive`` and the trials spent."""

    scenario: str
    client: str
    state: str  # pass | fail | inconclusive | skip
    passed: bool  # what the exit code counts
    skipped: str | None
    reasons: tuple[str, ...]
    numbers: Mapping[str, Any]
    seconds: float
    spent: int = 0
    max_trials: int = 0
    looks: tuple[Look, ...] = field(default_factory=tuple)


def options(policy_path: Path | None, batch: int | None, flag: bool) -> Plan | None:
    """The sequential plan from --sequential/--batch and the policy's [sequential] table, or None
    for a fixed-count gate."""
    table: Mapping[str, Any] = {}
    source = str(policy_path) if policy_path else "flags"
    if policy_path:
        try:
            data = tomllib.loads(Path(policy_path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            data = {}  # gate.load_policy has already reported these
        table = data.get("sequential", {})
        if not isinstance(table, Mapping):
            raise PolicyError(source, "sequential", 'must be a table: [sequential] enabled = true, batch = 5, inconclusive = "fail"')
    allowed = {"enabled", "batch", "inconclusive", "alpha"}
    for key in table:
        if key not in allowed:
            raise PolicyError(source, f"sequential.{key}", f"unknown key; expected one of {', '.join(sorted(allowed))}")
    enabled = table.get("enabled", False)
    if not isinstance(enabled, bool):
        raise PolicyError(source, "sequential.enabled", f"must be true or false, not {enabled!r}")
    if not (flag or enabled):
        return None
    size = batch if batch is not None else table.get("batch", DEFAULT_BATCH)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise PolicyError(
            source if batch is None else "flags", "sequential.batch" if batch is None else "--batch", f"must be a whole number >= 1, not {size!r}"
        )
    inconclusive = table.get("inconclusive", "fail")
    if inconclusive not in INCONCLUSIVE:
        raise PolicyError(source, "sequential.inconclusive", f"must be one of {', '.join(INCONCLUSIVE)}, not {inconclusive!r}")
    alpha = table.get("alpha", ALPHA)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise PolicyError(source, "sequential.alpha", f"must be a number between 0 and 1 (two-sided), not {alpha!r}")
    return Plan(size, float(alpha), inconclusive)


# -- the statistics ---------------------------------------------------------------------------------


def looks_at(max_trials: int, batch: int) -> list[int]:
    """Trial counts after which a cell is judged: batch, 2*batch, ..., and always max_trials."""
    points = list(range(batch, max_trials, batch))
    return [*points, max_trials] if max_trials > 0 else []


def per_look_alpha(max_trials: int, batch: int, alpha: float = ALPHA) -> float:
    """The two-sided level spent at each look: alpha/K over the K planned looks (Bonferroni)."""
    return alpha / max(1, len(looks_at(max_trials, batch)))


def _log_pmf(i: int, n: int, p: float) -> float:
    return math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * math.log(p) + (n - i) * math.log1p(-p)


def tail_at_least(r: int, n: int, p: float) -> float:
    """P(X >= r) for X ~ Binomial(n, p)."""
    if r <= 0:
        return 1.0
    if r > n or p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    return min(1.0, sum(math.exp(_log_pmf(i, n, p)) for i in range(r, n + 1)))


def tail_at_most(r: int, n: int, p: float) -> float:
    """P(X <= r) for X ~ Binomial(n, p)."""
    return 1.0 - tail_at_least(r + 1, n, p)


def clopper_pearson(r: int, n: int, alpha: float) -> tuple[float, float]:
    """The exact two-sided interval at level 1 - alpha (each tail alpha/2), by bisection."""
    if n == 0:
        return (0.0, 1.0)

    def solve(f, target: float) -> float:  # f increasing in p
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if f(mid) < target else (lo, mid)
        return (lo + hi) / 2

    low = 0.0 if r == 0 else solve(lambda p: tail_at_least(r, n, p), alpha / 2)
    high = 1.0 if r == n else solve(lambda p: -tail_at_most(r, n, p), -alpha / 2)
    return (low, high)


def boundary(recovered: int, n: int, threshold: float, look_alpha: float) -> str:
    """pass | fail | open: the exact tests at this look (equivalently, where p0 lies against the
    Clopper-Pearson interval at level 1 - look_alpha)."""
    if threshold <= 0:
        return "pass"  # any rate meets a threshold of 0
    if tail_at_least(recovered, n, threshold) <= look_alpha / 2:
        return "pass"
    if threshold < 1 and tail_at_most(recovered, n, threshold) <= look_alpha / 2:
        return "fail"
    if threshold >= 1 and recovered < n:
        return "fail"
    return "open"


def decide(
    recovered: int, n: int, hangs: int, data_loss: int, amplification: float | None, limits: Thresholds, look_alpha: float, last: bool
) -> tuple[str, list[str], Look]:
    """(pass | fail | continue | inconclusive, reasons, the look)."""
    low, high = clopper_pearson(recovered, n, look_alpha)
    look = Look(n, recovered, low, high)
    level = f"{1 - look_alpha:.2%}"
    reasons = []
    if hangs > limits.max_hangs:
        reasons.append(f"{hangs} hang(s) > {limits.max_hangs}")
    if data_loss > limits.max_data_loss:
        reasons.append(f"{data_loss} trial(s) with lost or duplicated data > {limits.max_data_loss}")
    target = limits.min_recovery_lower
    side = boundary(recovered, n, target, look_alpha)
    if side == "fail":
        reasons.append(f"recovery {recovered}/{n}: {level} exact interval [{low:.0%}, {high:.0%}] below {target:.0%}")
    if reasons:
        return "fail", reasons, look
    amplified = limits.max_amplification is not None and amplification is not None and amplification > limits.max_amplification
    if side == "pass" and not amplified:
        return "pass", [], look
    if last:
        if amplified:
            return "fail", [f"amplification {amplification:.2f} > {limits.max_amplification:.2f}"], look
        return "inconclusive", [f"recovery {recovered}/{n}: {level} exact interval [{low:.0%}, {high:.0%}] contains {target:.0%}"], look
    return "continue", [], look


def judge_cell(
    scenario: str, client: str, records: Sequence[Mapping[str, Any]], max_trials: int, limits: Thresholds, plan: Plan, policy: Policy
) -> CellVerdict:
    """Walk a cell's trials in index order, look after each batch, stop at the first decision."""
    ordered = sorted(records, key=lambda r: r["trial"])
    skipped = next((r["skipped"] for r in ordered if r.get("skipped")), None)
    ran = [r for r in ordered if not r.get("skipped")]
    if skipped and not ran:
        return CellVerdict(scenario, client, "skip", not policy.skipped_fails, skipped, (), {}, 0.0, 0, max_trials)
    look_alpha = per_look_alpha(max_trials, plan.batch, plan.alpha)
    looks: list[Look] = []
    points = looks_at(max_trials, plan.batch)
    state, reasons, n = "inconclusive", ["no trials recorded"], 0
    for n in points:
        prefix = [r for r in ran if r["trial"] < n]
        if len(prefix) < n:  # not run yet: the caller runs the next batch
            n = len(prefix)
            state, reasons = "pending", []
            break
        row = summarize_group(scenario, client, prefix)
        state, reasons, look = decide(
            row["recovered"], n, row["hangs"], row["data_loss"], row.get("amplification"), limits, look_alpha, n == points[-1]
        )
        looks.append(look)
        if state != "continue":
            break
    prefix = [r for r in ran if r["trial"] < n]
    final: SummaryRow | Mapping[str, Any] = summarize_group(scenario, client, prefix) if prefix else {}
    numbers = {
        "trials": n,
        "max_trials": max_trials,
        "recovered": final.get("recovered"),
        "recovery_rate": final.get("recovery_rate"),
        "corrected_ci": [round(looks[-1].low, 4), round(looks[-1].high, 4)] if looks else None,
        "look_level": round(1 - look_alpha, 5),
        "hangs": final.get("hangs"),
        "data_loss": final.get("data_loss"),
        "amplification": final.get("amplification"),
    }
    passed = state == "pass" or (state == "inconclusive" and plan.inconclusive == "pass")
    seconds = sum(r.get("elapsed_s", 0.0) for r in prefix)
    return CellVerdict(scenario, client, state, passed, None, tuple(reasons), numbers, seconds, n, max_trials, tuple(looks))


def judge(records: Sequence[Mapping[str, Any]], max_trials: Mapping[tuple[str, str], int], policy: Policy, plan: Plan) -> list[CellVerdict]:
    cells: dict[tuple[str, str], list[Mapping[str, Any]]] = {key: [] for key in max_trials}
    for record in records:
        cells.setdefault((record["scenario"], record["client"]), []).append(record)
    out = []
    for (scenario, client), items in cells.items():
        limit = max_trials.get((scenario, client)) or (max((r["trial"] for r in items), default=-1) + 1)
        out.append(judge_cell(scenario, client, items, limit, policy.for_scenario(scenario), plan, policy))
    return out


def exact_error(p: float, threshold: float, max_trials: int, batch: int, look_alpha: float | None = None, rule: str = "exact") -> tuple[float, float]:
    """Exact probabilities, for a true recovery rate p, that the boundaries ever pass or ever fail
    over the looks: a recursion over the binomial paths, no simulation. With p = threshold these are
    the false-pass and false-fail rates. ``rule``: "exact" (the gate's boundaries) or "wilson"
    (Wilson bounds at the same level, for comparison); ``look_alpha`` defaults to alpha/K."""
    points = looks_at(max_trials, batch)
    level = per_look_alpha(max_trials, batch) if look_alpha is None else look_alpha
    z = NormalDist().inv_cdf(1 - level / 2)
    alive = {0: 1.0}  # successes -> probability of being undecided here
    done_n = 0
    passed = failed = 0.0
    for n in points:
        for _ in range(n - done_n):
            nxt: dict[int, float] = {}
            for r, q in alive.items():
                nxt[r + 1] = nxt.get(r + 1, 0.0) + q * p
                nxt[r] = nxt.get(r, 0.0) + q * (1 - p)
            alive = nxt
        done_n = n
        keep = {}
        for r, q in alive.items():
            if rule == "wilson":
                low, high = wilson(r, n, z)
                side = "pass" if low >= threshold else "fail" if high < threshold else "open"
            else:
                side = boundary(r, n, threshold, level)
            if side == "pass":
                passed += q
            elif side == "fail":
                failed += q
            else:
                keep[r] = q
        alive = keep
    return passed, failed


# -- JUnit and the table ----------------------------------------------------------------------------


def junit_xml(verdicts: Sequence[CellVerdict], suite: str = "streamchaos") -> str:
    """As gate.junit_xml; an inconclusive cell is a <failure type="StreamchaosInconclusive"> when
    the policy counts it as failing, else <skipped>, and every case carries a ``verdict`` property."""
    failures = sum(1 for v in verdicts if not v.passed and v.state in ("fail", "inconclusive"))
    skipped = sum(1 for v in verdicts if v.state == "skip" or (v.state == "inconclusive" and v.passed))
    errors = sum(1 for v in verdicts if v.state == "skip" and not v.passed)
    root, testsuite = gate.junit_suite(suite, len(verdicts), failures, errors, skipped, sum(v.seconds for v in verdicts))
    for verdict in verdicts:
        case = gate.junit_case(testsuite, suite, verdict.scenario, verdict.client, verdict.seconds)
        properties = ET.SubElement(case, "properties")
        ET.SubElement(properties, "property", name="verdict", value=verdict.state)
        ET.SubElement(properties, "property", name="trials", value=f"{verdict.spent} of {verdict.max_trials}")
        detail = "\n".join(f"{k}: {v}" for k, v in verdict.numbers.items())
        if verdict.state == "skip":
            ET.SubElement(case, "skipped" if verdict.passed else "error", message=f"skipped: {verdict.skipped}")
        elif verdict.state == "fail":
            ET.SubElement(case, "failure", message="; ".join(verdict.reasons), type="StreamchaosGate").text = detail
        elif verdict.state == "inconclusive":
            message = "inconclusive: " + "; ".join(verdict.reasons)
            if verdict.passed:
                ET.SubElement(case, "skipped", message=message)
            else:
                ET.SubElement(case, "failure", message=message, type="StreamchaosInconclusive").text = detail
        else:
            ET.SubElement(case, "system-out").text = detail
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def print_table(verdicts: Sequence[CellVerdict], console: Any) -> None:
    from rich.table import Table

    console.width = max(console.width, 150)
    table = Table(title="streamchaos gate --sequential")
    for column in ("scenario", "client", "verdict", "trials spent", "recovered", "corrected interval", "why"):
        table.add_column(column)
    marks = {"pass": "[green]PASS[/green]", "fail": "[red]FAIL[/red]", "inconclusive": "[yellow]INCONCLUSIVE[/yellow]", "skip": "SKIP"}
    for v in verdicts:
        ci = v.numbers.get("corrected_ci")
        table.add_row(
            v.scenario,
            v.client,
            marks.get(v.state, v.state),
            f"{v.spent} of {v.max_trials}",
            str(v.numbers.get("recovered", "")),
            f"[{ci[0]:.0%}, {ci[1]:.0%}]" if ci else "",
            (f"skipped: {v.skipped}" if v.skipped else "; ".join(v.reasons))[:90],
        )
    console.print(table)
    for v in verdicts:
        detail = f"skipped: {v.skipped}" if v.skipped else "; ".join(v.reasons)
        console.print(f"{marks.get(v.state, v.state)} {v.scenario} / {v.client} after {v.spent} of {v.max_trials} trials {detail}")


def write_outcome(directory: Path, verdicts: Sequence[CellVerdict], plan: Plan) -> Path:
    path = directory / "sequential.json"
    data = {
        "method": "exact binomial (Clopper-Pearson) interval at level 1 - alpha/K per look (Bonferroni over the K planned looks)",
        "plan": dataclasses.asdict(plan),
        "cells": [
            {
                "scenario": v.scenario,
                "client": v.client,
                "verdict": v.state,
                "counts_as": "pass" if v.passed else "fail",
                "spent": v.spent,
                "max_trials": v.max_trials,
                "reasons": list(v.reasons),
                "skipped": v.skipped,
                "looks": [dataclasses.asdict(look) for look in v.looks],
            }
            for v in verdicts
        ],
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


# -- the command ------------------------------------------------------------------------------------


def command(args: Any, policy: Policy, plan: Plan, console: Any, *, run_config: Callable[..., Any], summarize: Callable[..., int]) -> int:
    """gate --sequential: from a results directory (what the gate would have spent and decided on
    those trials), or running batches until every cell is decided or at its maximum. The command
    line passes its ``run_config`` (arguments to a RunConfig, or an exit status) and ``summarize``
    (the report and the matrix), so that the drive layer never imports the command line."""
    from harness.drive import runner
    from harness.present import step_summary

    if args.from_dir:
        directory = args.from_dir.resolve()
        if not (directory / "trials.jsonl").exists():
            console.print(f"[red]streamchaos gate:[/red] {directory} has no trials.jsonl")
            return 2
        records = runner.only_latest(runner.load_records(directory))
        limits = _grid_from_manifest(directory)
        if args.trials:
            limits = dict.fromkeys(limits, args.trials) or limits
        verdicts = judge(records, limits, policy, plan)
    else:
        config = run_config(args, console, "streamchaos gate")
        if not isinstance(config, runner.RunConfig):
            return config
        try:
            directory, verdicts = run_batches(config, policy, plan, console)
        except KeyboardInterrupt:
            console.print(f"[yellow]interrupted[/yellow]: recorded trials are in {config.results_dir / config.run_id}")
            return 130
    status = summarize(directory, console, {"gate": f"sequential, batch {plan.batch}, {args.policy or 'flags'}"})
    if status:
        return status
    junit = args.junit or directory / "junit.xml"
    junit.write_text(junit_xml(verdicts))
    write_outcome(directory, verdicts, plan)
    print_table(verdicts, console)
    counts = {state: sum(1 for v in verdicts if v.state == state) for state in ("pass", "fail", "inconclusive", "skip")}
    spent = sum(v.spent for v in verdicts)
    planned = sum(v.max_trials for v in verdicts if v.state != "skip")
    console.print(
        f"gate --sequential: {counts['pass']} passed, {counts['fail']} failed, {counts['inconclusive']} inconclusive "
        f"(counted as {plan.inconclusive}), {counts['skip']} skipped; {spent} of {planned} trials; JUnit XML: {junit}"
    )
    step_summary.for_verdicts(f"streamchaos gate --sequential ({spent} of {planned} trials)", verdicts, directory)
    return 0 if all(v.passed for v in verdicts) else 1


def _grid_from_manifest(directory: Path) -> dict[tuple[str, str], int]:
    try:
        data = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
        return {(s, c): int(n) for s, c, n in data["grid"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def run_batches(config: Any, policy: Policy, plan: Plan, console: Any) -> tuple[Path, list[CellVerdict]]:
    """Look after every batch; each round runs the next batch of every undecided cell together."""
    from harness.drive import runner

    limits = {(s.name, c.name): runner.trials_for(s, config) for s in config.scenarios for c in config.clients}
    directory = config.results_dir / config.run_id
    rounds = max((len(looks_at(n, plan.batch)) for n in limits.values()), default=0)
    verdicts: list[CellVerdict] = []
    for round_ in range(1, rounds + 1):
        records = runner.only_latest(runner.load_records(directory)) if (directory / "trials.jsonl").exists() else []
        verdicts = judge(records, limits, policy, plan)
        wanted = set()
        for v in verdicts:
            if v.state in ("pending",) or (v.state == "continue"):
                points = looks_at(limits[(v.scenario, v.client)], plan.batch)
                target = next((p for p in points if p > v.spent), points[-1] if points else 0)
                wanted |= {(v.scenario, v.client, i) for i in range(target)}
        if not wanted:
            break
        console.print(f"gate --sequential: round {round_}: {len({(s, c) for s, c, _ in wanted})} undecided cell(s)")
        runner.run(dataclasses.replace(config, only=frozenset(wanted)))
    records = runner.only_latest(runner.load_records(directory)) if (directory / "trials.jsonl").exists() else []
    return directory, judge(records, limits, policy, plan)
