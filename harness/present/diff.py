"""``streamchaos diff RUN_A RUN_B``: which cells (scenario x client) changed between two runs.

For every cell both runs have, three proportions are compared: recovery (recovered or clean of the
trials), hangs and data loss. Each is a 2x2 table (run x yes/no) with small counts (3 to 60
trials per cell), so the test is **Fisher's exact test**, two-sided: it conditions on the margins
and sums hypergeometric probabilities exactly, so it holds at any n (a chi-squared or z test is
wrong below about 5 expected per cell, which is most of these tables) and needs no numerical
search. Barnard's and Boschloo's unconditional tests are more powerful at small n but maximise
over a nuisance parameter; for a CI gate the conservative side (fewer false alarms, the same
verdict on every machine) is the better error to make. The two-sided p-value is the sum of the
probabilities of every table no more likely than the observed one (with a 1e-7 relative
tolerance for ties, as R and SciPy do).

A cell "changed" when any count differs; it is "significant" when p < alpha. The exit code
follows ``--fail-on``: ``worse`` (default) exits 1 when a cell got significantly worse,
``change`` when any cell changed significantly, ``any`` when any count differs, ``never`` 0.
With ``--strip-versions`` clients are matched by the name before ``@`` (``claude-code@2.1.104``
in one run against ``claude-code@2.1.200`` in the other).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.measure.metrics import SummaryRow

METRICS = (
    # name, count field of a SummaryRow, higher is better
    ("recovery", "recovered", True),
    ("hangs", "hangs", False),
    ("data loss", "data_loss", False),
)
POLICIES = ("worse", "change", "any", "never")


class DiffError(ValueError):
    pass


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided p of Fisher's exact test for the table [[a, b], [c, d]]."""
    if min(a, b, c, d) < 0:
        raise ValueError("counts must be >= 0")
    row1, row2, col1 = a + b, c + d, a + c
    n = row1 + row2
    if n == 0 or row1 == 0 or row2 == 0 or col1 == 0 or col1 == n:
        return 1.0
    low, high = max(0, col1 - row2), min(col1, row1)

    def log_p(x: int) -> float:
        return _log_comb(row1, x) + _log_comb(row2, col1 - x) - _log_comb(n, col1)

    observed = log_p(a)
    total = 0.0
    for x in range(low, high + 1):
        lp = log_p(x)
        if lp <= observed + 1e-7 * abs(observed) + 1e-12:
            total += math.exp(lp)
    return min(1.0, total)


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def load_rows(directory: Path) -> list[SummaryRow]:
    from harness.drive import runner
    from harness.measure import metrics

    directory = Path(directory)
    if not (directory / "trials.jsonl").exists():
        raise DiffError(f"{directory}: no trials.jsonl (not a streamchaos results directory)")
    return metrics.summarize(runner.only_latest(runner.load_records(directory)))


def _index(rows: Sequence[SummaryRow], strip_versions: bool, label: str) -> dict[tuple[str, str], SummaryRow]:
    out: dict[tuple[str, str], SummaryRow] = {}
    for row in rows:
        client = row.client.partition("@")[0] if strip_versions else row.client
        key = (row.scenario, client)
        if key in out:
            raise DiffError(f"{label}: two clients become {client!r} without their versions ({out[key].client}, {row.client}); drop --strip-versions")
        out[key] = row
    return out


def compare(
    rows_a: Sequence[SummaryRow],
    rows_b: Sequence[SummaryRow],
    alpha: float = 0.05,
    strip_versions: bool = False,
    label_a: str = "A",
    label_b: str = "B",
) -> dict[str, Any]:
    """Every cell of both runs, with its changes; ``changed`` lists those with any difference."""
    a, b = _index(rows_a, strip_versions, label_a), _index(rows_b, strip_versions, label_b)
    cells, changed = [], []
    for key in (k for k in a if k in b):
        left, right = a[key], b[key]
        if not left.trials or not right.trials:
            continue
        changes = []
        for name, count_key, higher_better in METRICS:
            x1, n1, x2, n2 = getattr(left, count_key), left.trials, getattr(right, count_key), right.trials
            if x1 * n2 == x2 * n1:  # the same proportion
                continue
            p = fisher_exact(x1, n1 - x1, x2, n2 - x2)
            better = (x2 / n2 > x1 / n1) == higher_better
            changes.append(
                {"metric": name, "a": [x1, n1], "b": [x2, n2], "p": p, "significant": p < alpha, "direction": "better" if better else "worse"}
            )
        cell = {"scenario": key[0], "client": key[1], "client_a": left.client, "client_b": right.client, "changes": changes}
        cells.append(cell)
        if changes:
            changed.append(cell)
    only_a = sorted(f"{s} / {c}" for s, c in a if (s, c) not in b)
    only_b = sorted(f"{s} / {c}" for s, c in b if (s, c) not in a)
    return {
        "a": label_a,
        "b": label_b,
        "alpha": alpha,
        "test": "Fisher's exact test, two-sided",
        "compared": len(cells),
        "changed": changed,
        "only_a": only_a,
        "only_b": only_b,
    }


def exit_code(result: Mapping[str, Any], policy: str = "worse") -> int:
    if policy not in POLICIES:
        raise DiffError(f"--fail-on must be one of {', '.join(POLICIES)}, not {policy!r}")
    changes = [c for cell in result["changed"] for c in cell["changes"]]
    if policy == "never":
        return 0
    if policy == "any":
        return 1 if changes else 0
    if policy == "change":
        return 1 if any(c["significant"] for c in changes) else 0
    return 1 if any(c["significant"] and c["direction"] == "worse" for c in changes) else 0


def describe(change: Mapping[str, Any]) -> str:
    (x1, n1), (x2, n2) = change["a"], change["b"]
    return f"{change['metric']} {x1}/{n1} -> {x2}/{n2} (p={change['p']:.3g}{', significant' if change['significant'] else ''}, {change['direction']})"


def print_result(result: Mapping[str, Any], console: Any = None) -> None:
    from rich.console import Console

    console = console or Console()
    console.width = max(console.width, 140)
    significant = [(cell, c) for cell in result["changed"] for c in cell["changes"] if c["significant"]]
    console.print(
        f"diff {result['a']} -> {result['b']}: {result['compared']} cells compared, {len(result['changed'])} changed, "
        f"{len(significant)} significant change(s) at alpha {result['alpha']:g} ({result['test']})"
    )
    for cell in sorted(result["changed"], key=lambda c: min(x["p"] for x in c["changes"])):
        marks = "; ".join(describe(c) for c in cell["changes"])
        worst = any(c["significant"] and c["direction"] == "worse" for c in cell["changes"])
        colour = "red" if worst else ("green" if any(c["significant"] for c in cell["changes"]) else "yellow")
        console.print(f"[{colour}]{cell['scenario']} / {cell['client']}[/{colour}]: {marks}")
    for side, items in (("only in " + str(result["a"]), result["only_a"]), ("only in " + str(result["b"]), result["only_b"])):
        if items:
            console.print(f"{side}: {', '.join(items)}")


def render_html(result: Mapping[str, Any]) -> str:
    """The report's section against a baseline."""
    e = html.escape
    rows = []
    for cell in sorted(result["changed"], key=lambda c: min(x["p"] for x in c["changes"])):
        for change in cell["changes"]:
            css = change["direction"] if change["significant"] else ""
            (x1, n1), (x2, n2) = change["a"], change["b"]
            rows.append(
                f"<tr><td>{e(cell['scenario'])}</td><td>{e(cell['client'])}</td><td>{e(change['metric'])}</td><td>{x1}/{n1}</td><td>{x2}/{n2}</td>"
                f"<td>{change['p']:.3g}</td><td class='{css}'>{e(change['direction'])}{' (significant)' if change['significant'] else ''}</td></tr>"
            )
    table = (
        (
            "<table class=diff><tr><th>scenario</th><th>client</th><th>metric</th><th>baseline</th><th>this run</th><th>p</th><th>change</th></tr>"
            + "".join(rows)
            + "</table>"
        )
        if rows
        else "<p>No cell changed.</p>"
    )
    extra = "".join(
        f"<p class=note>{e(label)}: {e(', '.join(items))}</p>"
        for label, items in (("only in the baseline", result["only_a"]), ("only in this run", result["only_b"]))
        if items
    )
    return (
        f"<h2 id=baseline>Against the baseline {e(str(result['a']))}</h2><p class=note>{result['compared']} cells compared; "
        f"{e(result['test'])} per metric, significant at p &lt; {result['alpha']:g}.</p>{table}{extra}"
    )


def command(args: Any) -> int:
    from rich.console import Console

    console = Console()
    try:
        if not 0 < args.alpha < 1:
            raise DiffError(f"--alpha must be between 0 and 1, not {args.alpha}")
        result = compare(
            load_rows(args.run_a),
            load_rows(args.run_b),
            alpha=args.alpha,
            strip_versions=args.strip_versions,
            label_a=Path(args.run_a).name,
            label_b=Path(args.run_b).name,
        )
        code = exit_code(result, args.fail_on)
    except DiffError as error:
        print(f"streamchaos diff: {error}", file=__import__("sys").stderr)
        return 2
    print_result(result, console)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return code
