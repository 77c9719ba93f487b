"""report.html: the matrix first, then each scenario's story, then a drill-down per bad trial.

One self-contained file that works offline: every plot is inline SVG built here, the only script
is written inline below, and nothing refers to another URL (no fonts, no images, no favicon).

Order of the page:

1. the matrix: scenarios x clients, each cell coloured by recovery (its 95 % Wilson interval as
   text), hangs and data loss marked, skipped cells grey with the reason on hover; the worst rows
   and columns first; totals per client at the bottom;
2. a section per scenario: title, shape and expect from its file, the field's report beside what
   each client did (outcome counts, literal error lines grouped), the retry-decay curve where an
   attempt >= 2 exists (with the field's points when the scenario carries a decay table), and the
   backoff the server measured against each client's declared policy, as distributions;
3. per failed, hung or data-loss trial: its journal slice as a timeline (connections, attempts,
   events written, faults fired, the gap before each retry) and the client's output tails; the
   data travels as one JSON block and the timeline is drawn when a trial is opened.

Records may carry fields other branches add (a socket audit ``sockets``, lab events, field
matches, versioned client names such as ``claude-code@2.1.104``): they are shown generically when
present and never required.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

from harness.measure.metrics import SummaryRow, summarize_group, wilson

BAD_OUTCOMES = ("failed", "hung", "data_loss", "duplicated", "error")
KNOWN_FIELDS = {
    "run_id",
    "scenario",
    "client",
    "trial",
    "key",
    "outcome",
    "exit_code",
    "hung",
    "elapsed_s",
    "error_line",
    "answers_expected",
    "answers_intact",
    "integrity",
    "faults_fired",
    "attempts",
    "backoff_ms",
    "time_to_recover_ms",
    "bytes_out",
    "bytes_needed",
    "events_out",
    "connections",
    "stdout_tail",
    "stderr_tail",
    "skipped",
    "extra",
}
KNOWN_EXTRA = {"tls", "base_url", "time_scale"}
MAX_DRILLDOWNS = 3000
LINKS_PER_CELL = (
    40  # trial links shown per cell in its scenario's table  # beyond this, the first failures per cell are kept (the page says how many)
)
e = html.escape


# -- entry point ---------------------------------------------------------------------------------


def render(
    rows: Sequence[SummaryRow],
    meta: Mapping[str, Any],
    records: Sequence[Mapping[str, Any]] = (),
    directory: Path | None = None,
    baseline: Mapping[str, Any] | None = None,
) -> str:
    """The whole page. ``records`` are the run's trial records (latest per trial); ``directory``
    is where the journals are; ``baseline`` is a :func:`harness.present.diff.compare` result."""
    scenarios = _scenario_files({r.scenario for r in rows}, directory)
    matrix = Matrix(rows)
    by_cell: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        if not record.get("skipped"):
            by_cell[(record["scenario"], record["client"])].append(record)
    for items in by_cell.values():
        items.sort(key=lambda r: r.get("trial", 0))
    drill, dropped = _drilldown_records(matrix, by_cell)
    journals = _journal_slices(directory, drill) if directory else {}
    data = {record["key"]: _trial_data(record, journals.get(record["key"])) for record in drill}
    parts = [
        _head(meta),
        _meta_block(meta, rows, records),
        matrix.html(),
        _baseline_section(baseline) if baseline else "",
        "<h2 id=scenarios>Scenarios, worst first</h2>",
        *(_scenario_section(name, scenarios.get(name), matrix, by_cell, set(data)) for name in matrix.scenarios),
        f"<p class=note>{dropped} more bad trials are not drilled into (the page keeps {LINKS_PER_CELL} per cell, {MAX_DRILLDOWNS} in all).</p>"
        if dropped
        else "",
        _dialog(),
        f"<script type=application/json id=trial-data>{_json_for_script(data)}</script>",
        f"<script>{SCRIPT}</script></body></html>",
    ]
    return "".join(parts)


def _json_for_script(data: Any) -> str:
    """JSON that cannot end the script element or open a comment in it: every < escaped."""
    return json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")


# -- the matrix ----------------------------------------------------------------------------------


class Matrix:
    """Cells by (scenario, client), rows and columns sorted worst first."""

    def __init__(self, rows: Sequence[SummaryRow]) -> None:
        self.cells = {(r.scenario, r.client): r for r in rows}
        scenario_names = list(dict.fromkeys(r.scenario for r in rows))
        client_names = list(dict.fromkeys(r.client for r in rows))
        self.scenarios = sorted(scenario_names, key=lambda s: (-self._badness(r for (sc, _), r in self.cells.items() if sc == s), s))
        self.clients = sorted(client_names, key=lambda c: (-self._badness(r for (_, cl), r in self.cells.items() if cl == c), c))

    @staticmethod
    def _badness(rows: Iterable[SummaryRow]) -> float:
        """Mean over cells that ran of (1 - recovery) plus hangs and data loss as a share."""
        scores = []
        for row in rows:
            if row.trials:
                scores.append((1 - (row.recovery_rate or 0)) + (row.hangs + row.data_loss) / row.trials)
        return sum(scores) / len(scores) if scores else -1.0

    def worst(self, count: int = 8) -> list[SummaryRow]:
        ran = [r for r in self.cells.values() if r.trials]
        return sorted(ran, key=lambda r: (-(r.hangs + r.data_loss) / r.trials - (1 - (r.recovery_rate or 0)), r.scenario, r.client))[:count]

    def html(self) -> str:
        head = "".join(f"<th class=col title='{e(c)}'>{_client_label(c)}</th>" for c in self.clients)
        body = []
        for scenario in self.scenarios:
            cells = "".join(_cell(self.cells.get((scenario, client)), scenario, client) for client in self.clients)
            body.append(
                f"<tr><th class=row><a href='#s-{_slug(scenario)}'>{e(scenario)}</a></th>{cells}{_total_cell(self._row_total(scenario))}</tr>"
            )
        totals = "".join(_total_cell(self._column_total(client)) for client in self.clients)
        everything = _total_cell(_total([r for r in self.cells.values() if r.trials]))
        legend = (
            "<p class=legend>Cell: share of trials that ended with the complete answer (recovered or clean), its 95&nbsp;% Wilson "
            "interval and n. <span class=mark-h>H</span> hung trials, <span class=mark-l>L</span> data loss (truncated, corrupted "
            "or duplicated answer), grey: skipped (hover for why). Rows and columns: worst first. Click a row for its story.</p>"
        )
        return (
            f"<h2 id=matrix>Which client survives what</h2>{legend}<div class=scroll><table class=matrix><thead><tr><th class=corner>"
            f"scenario \\ client</th>{head}<th class=col>all clients</th></tr></thead><tbody>{''.join(body)}</tbody><tfoot><tr><th class=row>"
            f"total per client</th>{totals}{everything}</tr></tfoot></table></div>"
        )

    def _row_total(self, scenario: str) -> SummaryRow:
        return _total([r for (s, _), r in self.cells.items() if s == scenario and r.trials], scenario=scenario)

    def _column_total(self, client: str) -> SummaryRow:
        return _total([r for (_, c), r in self.cells.items() if c == client and r.trials], client=client)


def _total(rows: Sequence[SummaryRow], scenario: str = "", client: str = "") -> SummaryRow:
    """The cells' counts added up, as one row (only the counts and the recovery are filled in)."""
    n = sum(r.trials for r in rows)
    recovered = sum(r.recovered for r in rows)
    return dataclasses.replace(
        summarize_group(scenario, client, []),
        trials=n,
        recovered=recovered,
        hangs=sum(r.hangs for r in rows),
        data_loss=sum(r.data_loss for r in rows),
        recovery_rate=recovered / n if n else None,
        recovery_ci=list(wilson(recovered, n)) if n else None,
    )


def _client_label(client: str) -> str:
    name, _, version = client.partition("@")
    return e(name) + (f"<br><span class=ver>@{e(version)}</span>" if version else "")


def colour(rate: float | None) -> str:
    """Red (0) through amber to green (1), light enough for dark text."""
    if rate is None:
        return "#e6e6e6"
    hue = 4 + 126 * max(0.0, min(1.0, rate))
    return f"hsl({hue:.0f},62%,{78 - 8 * math.sin(rate * math.pi):.0f}%)"


def _cell(row: SummaryRow | None, scenario: str, client: str) -> str:
    if row is None:
        return "<td class='cell none' title='not run'>&middot;</td>"
    if row.skipped and not row.trials:
        reason = str(row.skipped)
        return f"<td class='cell skip' title='skipped: {e(reason)}' data-skip='{e(reason)}'>skipped</td>"
    return _filled_cell(row, f"#s-{_slug(scenario)}", f"{scenario} / {client}")


def _total_cell(total: SummaryRow) -> str:
    if not total.trials:
        return "<td class='cell none'>&middot;</td>"
    return _filled_cell(total, None, "total", css="cell total")


def _filled_cell(row: SummaryRow, href: str | None, title: str, css: str = "cell") -> str:
    n, rate = row.trials, row.recovery_rate
    ci = row.recovery_ci or [0, 1]
    marks = ""
    if row.hangs:
        marks += f"<span class=mark-h title='{row.hangs} hung'>H{row.hangs}</span>"
    if row.data_loss:
        marks += f"<span class=mark-l title='{row.data_loss} data loss'>L{row.data_loss}</span>"
    tip = f"{title}: {row.recovered}/{n} recovered, 95% CI {ci[0]:.0%}-{ci[1]:.0%}, {row.hangs} hung, {row.data_loss} data loss"
    audit = f"<small class=ka>keepalive {e(row.keepalive)}</small>" if row.keepalive else ""  # the network lab's socket audit
    if audit:
        tip += f", keepalive {row.keepalive}"
    inner = (
        f"<b>{rate:.0%}</b><small>[{ci[0] * 100:.0f}&ndash;{ci[1] * 100:.0f}]</small><small>n={n}</small>{audit}{marks}" if rate is not None else ""
    )
    if href:
        inner = f"<a href='{href}'>{inner}</a>"
    return f"<td class='{css}' style='background:{colour(rate)}' title='{e(tip)}' data-rate='{rate:.4f}'>{inner}</td>"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


# -- scenario sections ---------------------------------------------------------------------------


def _scenario_files(names: Iterable[str], directory: Path | None = None) -> dict[str, Any]:
    """The scenario files the rows name: ``<results>/scenarios/<name>.toml`` when the results carry
    their own, else the library's (a run may use files that are gone: then no prose)."""
    from harness import scenario

    found = {}
    for name in names:
        local = directory / "scenarios" / f"{name}.toml" if directory else None
        try:
            found[name] = scenario.load(local if local is not None and local.exists() else scenario.find(name))
        except Exception:
            continue
    return found


def _field_for(field: Mapping[str, str], client: str) -> str | None:
    base = client.partition("@")[0]
    for key in (client, base):
        if key in field:
            return field[key]
    return None


def field_decay(field: Mapping[str, str]) -> list[dict[str, Any]]:
    """A field table such as ``attempt 2: 63.6 % of 110; 3: 22.5 % of 40`` as decay points."""
    points = []
    for key, text in field.items():
        if "decay" not in key:
            continue
        for attempt, percent, count in re.findall(r"(\d+)\s*:\s*([\d.]+)\s*%\s*of\s*(\d+)", text):
            n = int(count)
            recovered = round(float(percent) / 100 * n)
            low, high = wilson(recovered, n)
            points.append({"attempt": int(attempt), "rate": float(percent) / 100, "tried": n, "recovered": recovered, "ci": [low, high]})
    return points


def _scenario_section(name: str, item: Any, matrix: Matrix, by_cell: Mapping[tuple[str, str], list], drillable: set[str]) -> str:
    out = [f"<section class=scenario id='s-{_slug(name)}'><h3>{e(name)}{': ' + e(item.title) if item is not None and item.title else ''}</h3>"]
    field: Mapping[str, str] = {}
    if item is not None:
        field = item.field
        out.append("<div class=story>")
        if item.shape:
            out.append(f"<div><h4>Shape</h4>{_prose(item.shape)}</div>")
        if item.expect:
            out.append(f"<div><h4>Expect</h4>{_prose(item.expect)}</div>")
        out.append("</div>")
        if item.reproduces:
            out.append("<p class=note>Reproduces: " + "; ".join(e(x) for x in item.reproduces) + "</p>")
    else:
        out.append("<p class=note>The scenario file is not in the library any more: only the results are shown.</p>")
    general = {k: v for k, v in field.items() if not any(c == k or c.partition("@")[0] == k for c in matrix.clients)}
    for key, text in general.items():
        out.append(f"<p class=field><b>Field, {e(key)}:</b> {e(text)}</p>")
    out.append(
        "<table class=clients><thead><tr><th>client</th><th>what the field saw</th><th>what happened here</th><th>what it said</th>"
        "<th>trials to open</th></tr></thead><tbody>"
    )
    for client in matrix.clients:
        row = matrix.cells.get((name, client))
        if row is None:
            continue
        seen = _field_for(field, client)
        if row.skipped and not row.trials:
            out.append(
                f"<tr class=skip><td>{_client_label(client)}</td><td>{e(seen or '')}</td><td colspan=3>skipped: {e(str(row.skipped))}</td></tr>"
            )
            continue
        records = by_cell.get((name, client), [])
        counts = Counter(r["outcome"] for r in records) if records else Counter(row.outcomes or {})
        badges = " ".join(f"<span class='badge o-{e(o)}'>{e(o.replace('_', ' '))} {c}</span>" for o, c in sorted(counts.items(), key=lambda x: -x[1]))
        errors = Counter(error_shape(r["error_line"]) for r in records if r.get("error_line")) if records else Counter(row.error_lines or [])
        said = "".join(
            f"<li><code>{e(line[:400])}</code>{f' <span class=count>&times;{c}</span>' if c > 1 else ''}</li>" for line, c in errors.most_common(6)
        )
        if len(errors) > 6:
            said += f"<li class=note>{len(errors) - 6} more distinct lines</li>"
        extras = _extra_summary(records)
        openable = [r for r in records if r.get("key") in drillable]
        links = " ".join(
            f"<a href='#t-{e(r['key'])}' class='trial o-{e(r['outcome'])}' data-key='{e(r['key'])}'>"
            f"#{r.get('trial', 0)} {e(r['outcome'].replace('_', ' '))}</a>"
            for r in openable[:LINKS_PER_CELL]
        ) + (f" <span class=note>+{len(openable) - LINKS_PER_CELL} more</span>" if len(openable) > LINKS_PER_CELL else "")
        out.append(
            f"<tr><td>{_client_label(client)}</td><td class=seen>{e(seen or '')}</td><td>{badges}{extras}</td>"
            f"<td><ul class=errors>{said}</ul></td><td class=links>{links}</td></tr>"
        )
    out.append("</tbody></table>")
    rows = [matrix.cells[(name, c)] for c in matrix.clients if (name, c) in matrix.cells and matrix.cells[(name, c)].trials]
    plots = []
    decay_svg = decay_plot(rows, field_decay(field))
    if decay_svg:
        plots.append(
            f"<figure>{decay_svg}<figcaption>Retry decay: of the requests whose attempts 1..k-1 failed, the share attempt k "
            "recovered, with 95&nbsp;% Wilson intervals.</figcaption></figure>"
        )
    backoff_svg = backoff_plot({c: list(by_cell.get((name, c), [])) for c in matrix.clients})
    if backoff_svg:
        plots.append(
            f"<figure>{backoff_svg}<figcaption>Backoff before each retry as the server measured it (end of a failed attempt to the "
            "start of the next; bars, coloured by retry number), against the client's declared policy for that retry (shaded band "
            "rN).</figcaption></figure>"
        )
    if plots:
        out.append("<div class=plots>" + "".join(plots) + "</div>")
    out.append("</section>")
    return "".join(out)


SHAPES = (
    (re.compile(r"\b(\d{1,3}(?:\.\d{1,3}){3}|localhost|\[::1\]):\d+"), r"\1:<port>"),
    (re.compile(r"\breq_[A-Za-z0-9]+"), "req_<id>"),
    (re.compile(r"\bmsg_[A-Za-z0-9]+"), "msg_<id>"),
    (re.compile(r"\btoolu_[A-Za-z0-9]+"), "toolu_<id>"),
)


def error_shape(line: str) -> str:
    """A client's error line with what differs per trial (ports, request ids) masked, so the same
    error groups together; the rest stays literal."""
    for pattern, replacement in SHAPES:
        line = pattern.sub(replacement, line)
    return line


def _prose(text: str) -> str:
    """TOML prose wraps lines by hand: join them; blank lines separate paragraphs."""
    return "".join(f"<p>{e(' '.join(p.split()))}</p>" for p in re.split(r"\n\s*\n", text) if p.strip())


def _extra_summary(records: Sequence[Mapping[str, Any]]) -> str:
    """Fields other branches add to records, named with how many trials carry them."""
    seen: Counter[str] = Counter()
    for record in records:
        for key in record:
            if key not in KNOWN_FIELDS:
                seen[key] += 1
        for key in record.get("extra") or {}:
            if key not in KNOWN_EXTRA:
                seen[key] += 1
    if not seen:
        return ""
    return "<div class=extras>also recorded: " + ", ".join(f"<code>{e(k)}</code> ({v})" for k, v in sorted(seen.items())) + "</div>"


# -- SVG plots -----------------------------------------------------------------------------------

RETRY_COLOURS = ("#1b6ca8", "#d1495b", "#e09f3e", "#2a9d8f", "#8d5a97", "#3d405b", "#8c6d31", "#5f0f40", "#52796f", "#9c6644")
PALETTE = ("#1b6ca8", "#d1495b", "#00798c", "#edae49", "#66a182", "#8d5a97", "#3d405b", "#e07a5f", "#30638e", "#a44a3f")


def decay_plot(rows: Sequence[SummaryRow], field: Sequence[Mapping[str, Any]] = ()) -> str:
    """Recovery of attempt k per client, a line with interval whiskers on an integer axis from 1;
    only clients that reached attempt 2; the field's points on the same axes."""
    series = [(row.client, row.decay) for row in rows if any(p["attempt"] >= 2 for p in row.decay or ())]
    if not series:
        return ""
    top = max([p["attempt"] for _, points in series for p in points] + [p["attempt"] for p in field])
    width, height, left, right, upper, lower = 560, 260, 48, 150, 14, 36
    plot_w, plot_h = width - left - right, height - upper - lower
    pad = 18  # room for the clients' side-by-side offsets at both ends
    x = lambda k: left + pad + (k - 1) / max(1, top - 1) * (plot_w - 2 * pad) if top > 1 else left + plot_w / 2  # noqa: E731
    y = lambda v: upper + (1 - v) * plot_h  # noqa: E731
    parts = [_svg_open(width, height, "retry decay")]
    for v in (0, 0.25, 0.5, 0.75, 1):
        parts.append(
            f"<line x1={left} x2={left + plot_w} y1={y(v):.1f} y2={y(v):.1f} class=grid />"
            f"<text x={left - 6} y={y(v) + 4:.1f} text-anchor=end>{v:.0%}</text>"
        )
    for k in range(1, top + 1):
        parts.append(f"<text x={x(k):.1f} y={upper + plot_h + 16} text-anchor=middle>{k}</text>")
    parts.append(f"<text x={left + plot_w / 2:.1f} y={height - 4} text-anchor=middle>attempt k</text>")
    parts.append(f"<line x1={left} x2={left + plot_w} y1={y(0):.1f} y2={y(0):.1f} class=axis />")
    count = len(series) + (1 if field else 0)
    shift = lambda i: (i - (count - 1) / 2) * min(6.0, plot_w / max(1, top) / (count + 1))  # noqa: E731
    legend_y = upper + 4
    for index, (client, points) in enumerate(series):
        col = PALETTE[index % len(PALETTE)]
        dx = shift(index)
        coords = [(x(p["attempt"]) + dx, y(p["rate"]), p) for p in points]
        parts.append(f"<polyline fill=none stroke='{col}' stroke-width=2 points='" + " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy, _ in coords) + "' />")
        for cx, cy, p in coords:
            lo, hi = p["ci"]
            parts.append(
                f"<line x1={cx:.1f} x2={cx:.1f} y1={y(lo):.1f} y2={y(hi):.1f} stroke='{col}' />"
                f"<circle cx={cx:.1f} cy={cy:.1f} r=3.5 fill='{col}'><title>{e(client)} attempt {p['attempt']}: "
                f"{p['recovered']}/{p['tried']} ({p['rate']:.0%}, CI {lo:.0%}-{hi:.0%})</title></circle>"
            )
        parts.append(
            f"<rect x={width - right + 10} y={legend_y - 8} width=10 height=10 fill='{col}' />"
            f"<text x={width - right + 24} y={legend_y + 1}>{e(client[:22])}</text>"
        )
        legend_y += 16
    if field:
        dx = shift(len(series))
        for point in field:
            cx, cy = x(point["attempt"]) + dx, y(point["rate"])
            lo, hi = point["ci"]
            parts.append(
                f"<line x1={cx:.1f} x2={cx:.1f} y1={y(lo):.1f} y2={y(hi):.1f} stroke='#222' stroke-dasharray='2,2' />"
                f"<path d='M{cx:.1f},{cy - 5:.1f} l5,5 l-5,5 l-5,-5 z' fill=white stroke='#222'><title>field, attempt {point['attempt']}: "
                f"{point['rate']:.1%} of {point['tried']}</title></path>"
            )
        parts.append(
            f"<path d='M{width - right + 15},{legend_y - 9} l5,5 l-5,5 l-5,-5 z' fill=white stroke='#222' />"
            f"<text x={width - right + 24} y={legend_y + 1}>field report</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def declared_range_ms(client: str, retry: int, time_scale: float = 1.0) -> tuple[float, float] | None:
    """The declared backoff before retry ``retry`` (1-based), as [low, high] ms (REFERENCE §3);
    None when the client's policy is not known here."""
    base = client.partition("@")[0]
    n = retry - 1
    if base.startswith(("python-sdk", "ts-sdk", "ref-sdk-default")):
        delay = min(0.5 * 2**n, 8.0)
        return (delay * 750, delay * 1000)
    if base.startswith("go-sdk"):
        delay = min(0.5 * 2**n, 8.0)
        return (delay * 750, delay * 1000)
    if base.startswith("claude-code"):
        delay = min(32.0, 0.5 * 2**n)
        return (delay * 1000, delay * 1250)
    if base.startswith("ref-"):  # the reference client: its strategy, scaled like the scenario
        from harness.measure.strategies import STRATEGIES

        strategy = STRATEGIES.get(base[4:].removesuffix("-h2"))
        if strategy is None:
            return None
        ceiling = min(strategy.cap_s, strategy.base_s * 2**n)
        low, high = {
            "none": (0.0, 0.0),
            "fixed": (strategy.base_s, strategy.base_s),
            "exponential": (ceiling, ceiling),
            "full_jitter": (0.0, ceiling),
            "equal_jitter": (ceiling / 2, ceiling),
            "decorrelated_jitter": (strategy.base_s, strategy.cap_s),
        }.get(strategy.backoff, (0.75 * min(0.5 * 2**n, 8.0), min(0.5 * 2**n, 8.0)))
        return (low * 1000 * time_scale, high * 1000 * time_scale)
    return None


def retry_gaps(record: Mapping[str, Any]) -> list[tuple[int, float]]:
    """(retry number, gap ms) for each retry of each logical request of a trial, from its attempts."""
    out = []
    for attempts in record.get("attempts") or ():
        for index, (previous, current) in enumerate(pairwise(attempts), start=1):
            gap = current["t_start"] - previous["t_end"]
            if gap >= 0:
                out.append((index, gap * 1000))
    return out


def backoff_plot(records_by_client: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """Per client, a histogram of measured gaps on a log axis (ms), stacked by retry number, the
    declared range of each retry number shaded behind it in the same colour."""
    clients = [(c, [g for r in rs for g in retry_gaps(r)]) for c, rs in records_by_client.items()]
    clients = [(c, gaps) for c, gaps in clients if gaps]
    if not clients:
        return ""
    values = [g for _, gaps in clients for _, g in gaps]
    scale = {c: float(next((((r.get("extra") or {}).get("time_scale") or 1.0) for r in rs), 1.0)) for c, rs in records_by_client.items()}
    declared = {c: [declared_range_ms(c, k, scale[c]) for k in sorted({k for k, _ in gaps})] for c, gaps in clients}
    bounds = [b for ranges in declared.values() for r in ranges if r for b in r if b > 0]
    low_ms = max(0.1, min([v for v in values if v > 0] + bounds + [1.0]))
    high_ms = max(values + bounds + [10.0])
    lo, hi = math.floor(math.log10(low_ms)), math.ceil(math.log10(high_ms))
    if hi <= lo:
        hi = lo + 1
    left, right, upper = 130, 20, 10
    strips = [max(54, 30 + 12 * len({k for k, _ in gaps})) for _, gaps in clients]  # taller with more retry numbers
    width = 560
    height = upper + sum(strips) + 34
    plot_w = width - left - right
    x = lambda ms: left + (math.log10(max(ms, 10**lo)) - lo) / (hi - lo) * plot_w  # noqa: E731
    parts = [_svg_open(width, height, "backoff distribution")]
    for decade in range(lo, hi + 1):
        parts.append(
            f"<line x1={x(10**decade):.1f} x2={x(10**decade):.1f} y1={upper} y2={height - 30} class=grid />"
            f"<text x={x(10**decade):.1f} y={height - 16} text-anchor=middle>{_ms_label(10**decade)}</text>"
        )
    parts.append(f"<text x={left + plot_w / 2:.1f} y={height - 2} text-anchor=middle>gap before the retry (log scale)</text>")
    bins = 40
    for row, (client, gaps) in enumerate(clients):
        strip = strips[row]
        top = upper + sum(strips[:row])
        base_y = top + strip - 8
        retries = sorted({k for k, _ in gaps})
        band_h = (strip - 10) / max(1, len(retries))
        for position, (k, band) in enumerate(zip(retries, declared[client])):
            if band:  # one thin band per retry number, stacked, so overlapping ranges stay readable
                x0, x1 = x(max(band[0], 10**lo)), x(max(band[1], 10**lo))
                y0 = top + 2 + position * band_h
                colour_k = RETRY_COLOURS[(k - 1) % len(RETRY_COLOURS)]
                parts.append(
                    f"<rect x={x0:.1f} y={y0:.1f} width={max(2.0, x1 - x0):.1f} height={max(2.0, band_h - 1):.1f} fill='{colour_k}' "
                    f"class=declared><title>declared before retry {k}: {_ms_label(band[0])} to {_ms_label(band[1])}</title></rect>"
                    + (f"<text x={x1 + 2:.1f} y={y0 + min(band_h - 1, 9):.1f} class=small>r{k}</text>" if band_h >= 6 else "")
                )
        # Measured gaps, stacked by retry number in the colour of that retry's declared band.
        counts: dict[int, list[int]] = {k: [0] * bins for k in retries}
        for k, gap in gaps:
            fraction = (math.log10(max(gap, 10**lo)) - lo) / (hi - lo)
            counts[k][min(bins - 1, max(0, int(fraction * bins)))] += 1
        tallest = max(sum(counts[k][i] for k in retries) for i in range(bins))
        bar_w = plot_w / bins
        for index in range(bins):
            stacked = 0
            for k in retries:
                count = counts[k][index]
                if not count:
                    continue
                h = (strip - 14) * count / tallest
                y_top = base_y - (strip - 14) * stacked / tallest - h
                stacked += count
                parts.append(
                    f"<rect x={left + index * bar_w:.1f} y={y_top:.1f} width={bar_w - 1:.1f} height={h:.1f} "
                    f"fill='{RETRY_COLOURS[(k - 1) % len(RETRY_COLOURS)]}'>"
                    f"<title>retry {k}: {count} gap(s) near {_ms_label(10 ** (lo + (index + 0.5) / bins * (hi - lo)))}</title></rect>"
                )
        parts.append(
            f"<line x1={left} x2={left + plot_w} y1={base_y} y2={base_y} class=axis />"
            f"<text x={left - 6} y={base_y - 14} text-anchor=end>{e(client[:18])}</text>"
            f"<text x={left - 6} y={base_y - 2} text-anchor=end class=small>n={len(gaps)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _ms_label(ms: float) -> str:
    return f"{ms / 1000:g} s" if ms >= 1000 else f"{ms:g} ms"


def _svg_open(width: int, height: int, label: str) -> str:
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' width={width} height={height} role=img "
        f"aria-label='{e(label)}' class=plot>"
    )


# -- drill-down ----------------------------------------------------------------------------------


def _drilldown_records(matrix: Matrix, by_cell: Mapping[tuple[str, str], list]) -> tuple[list[Mapping[str, Any]], int]:
    bad = [
        [r for r in by_cell.get((s, c), []) if r.get("outcome") in BAD_OUTCOMES and r.get("key")] for s in matrix.scenarios for c in matrix.clients
    ]
    total = sum(len(b) for b in bad)
    bad = [items[:LINKS_PER_CELL] for items in bad]
    chosen: list[Mapping[str, Any]] = []
    depth = 0
    while len(chosen) < min(sum(len(b) for b in bad), MAX_DRILLDOWNS):  # round robin over cells, so every bad cell keeps some
        for items in bad:
            if depth < len(items) and len(chosen) < MAX_DRILLDOWNS:
                chosen.append(items[depth])
        depth += 1
    return chosen, total - len(chosen)


def _journal_slices(directory: Path, records: Sequence[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Journal records per trial key, read once per scenario journal, only for the keys wanted."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for record in records:
        if record.get("key"):
            wanted[record["scenario"]].add(record["key"])
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for scenario, keys in wanted.items():
        path = directory / f"journal-{scenario}.jsonl"
        if not path.exists():
            continue
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if not _mentions(line, keys):  # cheap filter before parsing
                    continue
                try:
                    item = json.loads(line)
                except ValueError:
                    continue
                for key in _journal_keys(item):
                    if key in keys:
                        out[key].append(item)
    return out


_KEY_FIELD = re.compile(r'"(?:key|lane)":\s*"([^"]*)"')
_KEYS_FIELD = re.compile(r'"keys":\s*\[([^\]]*)\]')


def _mentions(line: str, keys: set[str]) -> bool:
    """Whether a journal line names one of ``keys`` (as key, lane or in keys), without parsing it."""
    if any(match in keys for match in _KEY_FIELD.findall(line)):
        return True
    return any(part.strip().strip('"') in keys for found in _KEYS_FIELD.findall(line) for part in found.split(","))


def _journal_keys(item: Mapping[str, Any]) -> set[str]:
    if item.get("kind") == "request":
        return {item["key"]} if item.get("key") else set()
    return set(item.get("keys") or ()) | ({item["lane"]} if item.get("lane") else set())


def _trial_data(record: Mapping[str, Any], journal: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    """What the drill-down shows: the record's own account and a compact journal timeline."""
    extras = {k: v for k, v in record.items() if k not in KNOWN_FIELDS}
    extras.update({k: v for k, v in (record.get("extra") or {}).items() if k not in KNOWN_EXTRA})
    data: dict[str, Any] = {
        "scenario": record["scenario"],
        "client": record["client"],
        "trial": record.get("trial", 0),
        "key": record.get("key", ""),
        "outcome": record.get("outcome"),
        "exit_code": record.get("exit_code"),
        "elapsed_s": record.get("elapsed_s"),
        "error_line": record.get("error_line"),
        "integrity": record.get("integrity") or [],
        "stdout": record.get("stdout_tail") or "",
        "stderr": record.get("stderr_tail") or "",
        "faults_fired": record.get("faults_fired", 0),
        "extras": _trim(extras),
    }
    data["timeline"] = timeline(record, journal or ())
    return data


def _trim(value: Any, depth: int = 0) -> Any:
    """Extra fields, bounded in size for the page."""
    if isinstance(value, str):
        return value[:600]
    if isinstance(value, list):
        return [_trim(v, depth + 1) for v in value[:40]] + ([f"... {len(value) - 40} more"] if len(value) > 40 else [])
    if isinstance(value, dict):
        return {str(k): _trim(v, depth + 1) for k, v in list(value.items())[:40]} if depth < 5 else "{...}"
    return value


def timeline(record: Mapping[str, Any], journal: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Connections and attempts on one clock (seconds from the first thing seen), faults with their
    times, events written over time (at most 24 points per attempt), the gap before each retry."""
    connections = [j for j in journal if j.get("kind") == "connection"]
    requests = [j for j in journal if j.get("kind") == "request"]
    attempts = []
    if requests:
        order: dict[str | None, int] = defaultdict(int)  # attempts per conversation (or request id)
        for request in sorted(requests, key=lambda r: r.get("t_headers", 0)):
            conversation = request.get("conversation") or request.get("request_id")
            order[conversation] += 1
            writes = request.get("writes") or []
            step = max(1, math.ceil(len(writes) / 24))
            attempts.append(
                {
                    "id": request.get("request_id"),
                    "conn": request.get("conn"),
                    "stream": request.get("stream_id"),
                    "logical": conversation,
                    "n": order[conversation],
                    "t0": request.get("t_headers"),
                    "t1": request.get("t_end", request.get("t_headers")),
                    "status": request.get("status"),
                    "end": request.get("end", "open"),
                    "events": request.get("events_out", 0),
                    "bytes": request.get("bytes_out", 0),
                    "path": request.get("path"),
                    "retry_count": request.get("retry_count"),
                    "writes": [[w[0], w[2]] for w in writes[::step]]
                    + ([[writes[-1][0], writes[-1][2]]] if writes and (len(writes) - 1) % step else []),
                    "faults": [_fault(f) for f in request.get("faults") or []],
                }
            )
    else:  # no journal beside the results: the record's attempts carry most of it
        for index, group in enumerate(record.get("attempts") or ()):
            for n, attempt in enumerate(group, start=1):
                attempts.append(
                    {
                        "id": f"request {index + 1}.{n}",
                        "conn": attempt.get("conn"),
                        "logical": str(index),
                        "n": n,
                        "t0": attempt.get("t_start"),
                        "t1": attempt.get("t_end"),
                        "status": attempt.get("status"),
                        "end": attempt.get("end"),
                        "events": attempt.get("events_out", 0),
                        "bytes": attempt.get("bytes_out", 0),
                        "writes": [],
                        "faults": [{"type": f} for f in attempt.get("faults") or []],
                    }
                )
    conns = [
        {
            "conn": c.get("conn"),
            "t0": c.get("t_accept"),
            "t1": c.get("t_close", c.get("t_accept")),
            "end": c.get("end", "open"),
            "protocol": c.get("protocol"),
            "tls": c.get("tls"),
            "alpn": c.get("alpn"),
            "peer": c.get("peer"),
            "requests": c.get("requests"),
            "faults": [_fault(f) for f in c.get("faults") or []],
        }
        for c in connections
    ]
    times = [t for a in attempts for t in (a["t0"], a["t1"]) if t is not None] + [t for c in conns for t in (c["t0"], c["t1"]) if t is not None]
    origin = min(times) if times else 0.0
    for item in (*attempts, *conns):
        for key in ("t0", "t1"):
            if item.get(key) is not None:
                item[key] = round(item[key] - origin, 6)
        for fault in item.get("faults", []):
            if fault.get("t") is not None:
                fault["t"] = round(fault["t"] - origin, 6)
    for attempt in attempts:
        attempt["writes"] = [[w[0], round(w[1] - origin, 6)] for w in attempt["writes"]]
    previous: dict[str, dict[str, Any]] = {}
    for attempt in sorted(attempts, key=lambda a: a["t0"] or 0):
        before = previous.get(attempt["logical"])
        if before is not None and attempt["t0"] is not None and before["t1"] is not None:
            attempt["gap_ms"] = round((attempt["t0"] - before["t1"]) * 1000, 1)
        previous[attempt["logical"]] = attempt
    return {"attempts": attempts, "connections": conns, "source": "journal" if requests else "record"}


def _fault(fault: Mapping[str, Any]) -> dict[str, Any]:
    keep = {k: v for k, v in fault.items() if isinstance(v, (str, int, float, bool)) or v is None}
    return keep


# -- the rest of the page ------------------------------------------------------------------------


def _baseline_section(result: Mapping[str, Any]) -> str:
    from harness.present.diff import render_html

    return render_html(result)


def _meta_block(meta: Mapping[str, Any], rows: Sequence[SummaryRow], records: Sequence[Mapping[str, Any]]) -> str:
    ran = [r for r in rows if r.trials]
    trials = sum(r.trials for r in ran)
    recovered = sum(r.recovered for r in ran)
    hangs = sum(r.hangs for r in ran)
    loss = sum(r.data_loss for r in ran)
    skipped = sum(1 for r in rows if r.skipped and not r.trials)
    facts = "".join(f"<span><b>{e(str(v))}</b> {e(str(k))}</span>" for k, v in meta.items() if k != "run_id")
    return (
        f"<header><h1>streamchaos <span class=run>{e(str(meta.get('run_id', '')))}</span></h1><div class=facts>"
        f"<span><b>{trials}</b> trials</span><span><b>{recovered}</b> recovered or clean</span><span><b>{hangs}</b> hung</span>"
        f"<span><b>{loss}</b> data loss</span><span><b>{skipped}</b> cells skipped</span>{facts}</div>"
        "<nav><a href='#matrix'>matrix</a> <a href='#scenarios'>scenarios</a>"
        f"{' <a href=#baseline>against the baseline</a>' if 'baseline' in meta else ''}</nav></header>"
    )


def _head(meta: Mapping[str, Any]) -> str:
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content='width=device-width'>"
        f"<link rel=icon href='data:,'><title>streamchaos report {e(str(meta.get('run_id', '')))}</title><style>{STYLE}</style></head><body>"
    )


def _dialog() -> str:
    return "<dialog id=trial><form method=dialog><button class=close aria-label=close>&times;</button></form><div id=trial-body></div></dialog>"


STYLE = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 2em 4em;color:#1d1d1f;background:#fbfbfa}
header{padding:.6em 0;border-bottom:1px solid #ddd}
h1{font-size:20px;margin:0}h1 .run{color:#666;font-weight:400}h2{margin-top:1.6em}h3{margin:.2em 0 .4em}h4{margin:.2em 0;font-size:13px;color:#555}
.facts span{margin-right:1.2em}.facts b{font-size:16px}nav a{margin-right:1em}
.scroll{overflow-x:auto}table{border-collapse:collapse}
table.matrix th,table.matrix td{border:1px solid #fff;padding:0}
table.matrix th.col{font-size:12px;font-weight:600;padding:4px 6px;vertical-align:bottom;text-align:center;min-width:84px;background:#f1f1ef}
table.matrix th.row{text-align:left;padding:4px 8px;font-weight:500;white-space:nowrap;background:#f1f1ef}
table.matrix th.corner{font-size:11px;color:#666;background:#f1f1ef}
td.cell{text-align:center;font-size:12px;height:46px;min-width:84px}
td.cell a{display:block;color:inherit;text-decoration:none;padding:3px 4px}
td.cell b{display:block;font-size:15px}td.cell small{display:block;color:#333;font-size:10.5px;line-height:1.2}
td.cell:hover{outline:2px solid #333;outline-offset:-2px}
td.skip{background:repeating-linear-gradient(45deg,#e4e4e4,#e4e4e4 4px,#ededed 4px,#ededed 8px);color:#777;font-size:11px;cursor:help}
td.none{color:#aaa;background:#f6f6f6}
td.total{border-left:3px solid #fbfbfa !important}tfoot td.cell{border-top:3px solid #fbfbfa}
.mark-h,.mark-l{display:inline-block;font-size:10px;font-weight:700;border-radius:3px;padding:0 3px;margin:1px;color:#fff}
.mark-h{background:#264653}.mark-l{background:#9b2226}
.ver{font-weight:400;color:#666;font-size:11px}
.legend,.note{color:#555;font-size:12.5px;max-width:70em}
section.scenario{border-top:1px solid #ddd;padding-top:.6em;margin-top:1.4em}
.story{display:grid;grid-template-columns:1fr 1fr;gap:1.5em;max-width:80em}.story p{margin:.2em 0}
.field{background:#f3efe6;padding:.3em .6em;border-left:3px solid #b08d57;max-width:80em}
table.clients{margin:.6em 0;font-size:13px;max-width:100%}
table.clients th,table.clients td{border-bottom:1px solid #e4e4e4;padding:4px 8px;text-align:left;vertical-align:top}
table.clients th{background:#f1f1ef;font-weight:600}td.seen{max-width:24em;color:#5b4a2e}tr.skip td{color:#888}
ul.errors{margin:0;padding-left:1em;max-width:36em}ul.errors code{font-size:11.5px;word-break:break-word}.count{color:#9b2226;font-weight:600}
.badge{display:inline-block;border-radius:9px;padding:0 7px;margin:1px;font-size:12px;background:#eee}
.o-recovered{background:#cdebd9}.o-clean{background:#e3f1f3}.o-failed{background:#f7dfb5}.o-data_loss,.o-duplicated{background:#f3c1bd}
.o-hung{background:#c9d3da}.o-error{background:#ddd}
a.trial{display:inline-block;font-size:11.5px;border-radius:3px;padding:0 4px;margin:1px;color:#222;text-decoration:none;border:1px solid #ccc}
a.trial:hover{border-color:#333}.extras{font-size:11.5px;color:#555;margin-top:3px}
.plots{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}figcaption{font-size:12px;color:#555;max-width:560px}
svg.plot{background:#fff;border:1px solid #e4e4e4;font:11px system-ui,sans-serif;max-width:100%;height:auto}
svg .grid{stroke:#eee}svg .axis{stroke:#999}svg .declared{fill-opacity:.16;stroke:#555;stroke-opacity:.25}svg .small{font-size:9.5px;fill:#555}
dialog{width:min(1100px,94vw);max-height:90vh;border:1px solid #bbb;border-radius:6px;padding:1em 1.4em;box-shadow:0 10px 40px #0004}
dialog::backdrop{background:#0003}button.close{float:right;font-size:22px;border:0;background:none;cursor:pointer}
pre{background:#f4f4f2;padding:.5em;overflow:auto;max-height:14em;font-size:11.5px;white-space:pre-wrap;word-break:break-all}
table.att{font-size:12px}table.att td,table.att th{border-bottom:1px solid #eee;padding:2px 6px;text-align:left}
table.diff td,table.diff th{border-bottom:1px solid #e4e4e4;padding:3px 8px;text-align:left}.worse{color:#9b2226;font-weight:600}
.better{color:#2d6a4f;font-weight:600}
"""

SCRIPT = r"""
(function(){
'use strict';
var data = JSON.parse(document.getElementById('trial-data').textContent);
var dialog = document.getElementById('trial'), body = document.getElementById('trial-body');
function esc(s){return String(s==null?'':s).replace(/[&<>"']/g,function(c){return {'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c];});}
function ms(t){return t==null?'':(t*1000).toFixed(t<1?1:0)+' ms';}
function svgTimeline(tl){
  var at=tl.attempts, cs=tl.connections, rows=[], seen={};
  cs.forEach(function(c){if(!(c.conn in seen)){seen[c.conn]=rows.length;rows.push(c.conn);}});
  at.forEach(function(a){if(!(a.conn in seen)){seen[a.conn]=rows.length;rows.push(a.conn);}});
  var end=0; at.concat(cs).forEach(function(x){if(x.t1!=null&&x.t1>end)end=x.t1;});
  if(end<=0)end=1;
  var L=90,R=20,W=1000,rowH=34,H=30+rows.length*rowH+26,pw=W-L-R;
  function X(t){return L+Math.max(0,t)/end*pw;}
  var s=['<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 '+W+' '+H+
    '" width="100%" class="plot timeline" role="img" aria-label="trial timeline">'];
  for(var i=0;i<=5;i++){var t=end*i/5;s.push('<line x1="'+X(t)+'" x2="'+X(t)+'" y1="20" y2="'+(H-22)+'" class="grid"/><text x="'+X(t)+
    '" y="'+(H-8)+'" text-anchor="middle">'+ms(t)+'</text>');}
  rows.forEach(function(conn,i){var y=24+i*rowH;s.push('<text x="'+(L-8)+'" y="'+(y+18)+'" text-anchor="end">conn '+esc(conn)+'</text>');});
  cs.forEach(function(c){var y=24+seen[c.conn]*rowH;
    s.push('<rect x="'+X(c.t0)+'" y="'+(y+2)+'" width="'+Math.max(1,X(c.t1)-X(c.t0))+'" height="'+(rowH-8)+
      '" fill="#f1f1ef" stroke="#bbb"><title>connection '+esc(c.conn)+' '+esc(c.protocol||'')+(c.tls?' TLS':'')+', ended '+esc(c.end)+
      ' at '+ms(c.t1)+'</title></rect>');
    (c.faults||[]).forEach(function(f){if(f.t!=null)s.push('<path d="M'+(X(f.t)-5)+','+(y+4)+
      ' l10,10 m0,-10 l-10,10" stroke="#c00" stroke-width="2.5" class="fault"><title>fault '+esc(f.type)+' at '+ms(f.t)+'</title></path>');});
  });
  at.forEach(function(a){var y=24+seen[a.conn]*rowH, ok=(a.end==='complete'&&a.status===200);
    var col=ok?'#66a182':(a.end&&a.end.indexOf('fault:')===0?'#d1495b':'#edae49');
    s.push('<rect class="attempt" x="'+X(a.t0)+'" y="'+(y+8)+'" width="'+Math.max(2,X(a.t1)-X(a.t0))+'" height="'+(rowH-20)+'" fill="'+col+
      '" fill-opacity="0.8"><title>attempt '+a.n+' ('+esc(a.id)+'): status '+esc(a.status)+', '+a.events+' events, '+a.bytes+' bytes, end '+
      esc(a.end)+'</title></rect>');
    s.push('<text x="'+(X(a.t0)+3)+'" y="'+(y+6)+'" class="small">#'+a.n+' '+a.events+' ev</text>');
    var w=a.writes||[]; if(w.length>1){var top=w[w.length-1][0]||1,
      pts=w.map(function(p){return X(p[1]).toFixed(1)+','+(y+rowH-12-(p[0]/top)*(rowH-20)).toFixed(1);});
      s.push('<polyline fill="none" stroke="#222" stroke-width="1" points="'+pts.join(' ')+'"><title>events written over time (up to '+top+
        ')</title></polyline>');}
    (a.faults||[]).forEach(function(f){if(f.t==null)return;var cut=(a.end==='fault:'+f.type);
      s.push(cut?'<path d="M'+(X(f.t)-5)+','+(y+4)+' l10,10 m0,-10 l-10,10" stroke="#c00" stroke-width="2.5" class="fault"><title>fault '+
        esc(f.type)+' fired at '+ms(f.t)+(f.events_out!=null?' after '+f.events_out+' events':'')+'</title></path>'
        :'<path d="M'+X(f.t)+','+(y+3)+' l0,'+(rowH-8)+
          '" stroke="#8d5a97" stroke-width="2" stroke-dasharray="3,2" class="fault"><title>fault '+esc(f.type)+' active from '+ms(f.t)+
          '</title></path>');});
    if(a.gap_ms!=null){var x1=X(a.t0),x0=X(a.t0-a.gap_ms/1000);s.push('<line x1="'+x0+'" x2="'+x1+'" y1="'+(y+rowH-4)+'" y2="'+(y+rowH-4)+
      '" stroke="#1b6ca8" stroke-width="2"/><text x="'+((x0+x1)/2)+'" y="'+(y+rowH+6)+
      '" text-anchor="middle" class="small" fill="#1b6ca8">gap '+a.gap_ms+' ms</text>');}
  });
  s.push('</svg>'); return s.join('');
}
function table(tl){
  var h=['<table class="att"><tr><th>attempt</th><th>request</th><th>conn</th><th>start</th><th>end</th><th>gap before</th>'+
    '<th>status</th><th>events</th><th>bytes</th><th>ended</th><th>faults</th></tr>'];
  tl.attempts.forEach(function(a){h.push('<tr><td>'+a.n+'</td><td>'+esc(a.id)+'</td><td>'+esc(a.conn)+'</td><td>'+ms(a.t0)+'</td><td>'+
    ms(a.t1)+'</td><td>'+(a.gap_ms!=null?a.gap_ms+' ms':'')+'</td><td>'+esc(a.status)+'</td><td>'+a.events+'</td><td>'+a.bytes+'</td><td>'+
    esc(a.end)+'</td><td>'+esc((a.faults||[]).map(function(f){return f.type+(f.t!=null?' @'+ms(f.t):'');}).join(', '))+'</td></tr>');});
  h.push('</table>');
  if(tl.connections.length){
    h.push('<table class="att"><tr><th>conn</th><th>peer</th><th>protocol</th><th>accepted</th><th>closed</th><th>ended</th><th>faults</th></tr>');
    tl.connections.forEach(function(c){h.push('<tr><td>'+esc(c.conn)+'</td><td>'+esc(c.peer)+'</td><td>'+esc(c.protocol)+(c.tls?' TLS':'')+
      '</td><td>'+ms(c.t0)+'</td><td>'+ms(c.t1)+'</td><td>'+esc(c.end)+'</td><td>'+
      esc((c.faults||[]).map(function(f){return f.type;}).join(', '))+'</td></tr>');});
    h.push('</table>');}
  return h.join('');
}
function open(key){
  var d=data[key]; if(!d)return false;
  var h=['<h3>'+esc(d.scenario)+' / '+esc(d.client)+' &middot; trial '+esc(d.trial)+' &middot; <span class="badge o-'+esc(d.outcome)+'">'+
    esc(d.outcome)+'</span></h3>',
    '<p>exit code '+esc(d.exit_code)+', '+esc(d.elapsed_s)+' s, '+esc(d.faults_fired)+' fault(s) fired; key <code>'+esc(d.key)+'</code></p>'];
  if(d.error_line)h.push('<p>said: <code>'+esc(d.error_line)+'</code></p>');
  if(d.integrity.length)h.push('<p>integrity: '+esc(d.integrity.join('; '))+'</p>');
  h.push('<h4>Journal timeline ('+esc(d.timeline.source)+')</h4>'+svgTimeline(d.timeline)+table(d.timeline));
  h.push('<h4>stdout (tail)</h4><pre>'+esc(d.stdout)+'</pre><h4>stderr (tail)</h4><pre>'+esc(d.stderr)+'</pre>');
  if(Object.keys(d.extras).length)h.push('<h4>Other fields of the record</h4><pre>'+esc(JSON.stringify(d.extras,null,1))+'</pre>');
  body.innerHTML=h.join(''); dialog.setAttribute('data-key',key);
  if(!dialog.open)dialog.showModal();
  return true;
}
document.addEventListener('click',function(ev){var a=ev.target.closest('a.trial');if(a&&open(a.getAttribute('data-key'))){
  ev.preventDefault();history.replaceState(null,'','#t-'+a.getAttribute('data-key'));}});
dialog.addEventListener('close',function(){if(location.hash.indexOf('#t-')===0)history.replaceState(null,'',location.pathname);});
if(location.hash.indexOf('#t-')===0)open(decodeURIComponent(location.hash.slice(3)));
})();
"""


# -- the terminal: the same order, matrix first, then the worst cells ------------------------------


def print_summary(rows: Sequence[SummaryRow], console: Any = None, worst: int = 8) -> None:
    """The matrix (recovery per cell, H hangs, L data loss, - skipped), then the worst cells with
    their interval and what the client said: instead of one line per (scenario, client)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    console.width = max(console.width, 150)
    matrix = Matrix(rows)
    console.print("[b]streamchaos[/b]: recovery per scenario (rows) and client (columns), worst first")
    table = Table(pad_edge=False, show_edge=False)
    table.add_column("scenario", no_wrap=True)
    for client in matrix.clients:
        table.add_column(_short(client), justify="center", no_wrap=True)
    for scenario in matrix.scenarios:
        cells = []
        for client in matrix.clients:
            row = matrix.cells.get((scenario, client))
            if row is None:
                cells.append("")
            elif not row.trials:
                cells.append("[dim]-[/dim]" if row.skipped else "")
            else:
                cells.append(_terminal_cell(row))
        table.add_row(scenario, *cells)
    table.add_section()
    table.add_row(
        "[b]all scenarios[/b]", *(_terminal_cell(matrix._column_total(c)) if matrix._column_total(c).trials else "" for c in matrix.clients)
    )
    console.print(table)
    console.print("[dim]cell: recovered share; H hung, L data loss; - skipped[/dim]")
    audited = [r for r in rows if r.keepalive and r.trials]
    if audited:  # network lab runs: what the kernel saw on the client's sockets, beside the outcome
        console.print("[b]socket audit[/b] (network lab)")
        for row in audited:
            console.print(
                f"  {row.scenario} / {row.client}: keepalive {row.keepalive}; {row.recovered}/{row.trials} recovered"
                + (f", {row.hangs} hung" if row.hangs else ""),
                highlight=False,
            )
    bad = [r for r in matrix.worst(worst) if (r.recovery_rate or 0) < 1 or r.hangs or r.data_loss]
    if not bad:
        console.print("worst cells: none (every cell recovered every trial, with no hang and no data loss)")
    else:
        console.print("[b]worst cells[/b]")
        for row in bad:
            ci = row.recovery_ci or [0, 1]
            line = " ".join((row.error_lines or [""])[0].split())
            console.print(
                f"  {row.scenario} / {row.client}: {row.recovered}/{row.trials} recovered "
                f"[{ci[0]:.0%}, {ci[1]:.0%}]"
                + (f", {row.hangs} hung" if row.hangs else "")
                + (f", {row.data_loss} data loss" if row.data_loss else "")
                + (f"\n      {escape(line[:130])}" if line else ""),
                highlight=False,
            )


def _short(client: str) -> str:
    name, _, version = client.partition("@")
    return name + (f"\n@{version}" if version else "")


def _terminal_cell(row: SummaryRow) -> str:
    rate = row.recovery_rate or 0
    style = "green" if rate >= 0.9 else ("yellow" if rate >= 0.5 else "red")
    marks = (f" H{row.hangs}" if row.hangs else "") + (f" L{row.data_loss}" if row.data_loss else "")
    return f"[{style}]{rate:.0%}[/{style}]{marks}"
