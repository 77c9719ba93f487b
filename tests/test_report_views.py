"""report.html in a real browser, `streamchaos diff` on two real runs, and the report's parts.

The browser test opens the page in Debian's headless Chromium through playwright-core (npm,
tests/browser/): a cell per scenario x client, a drill-down opens, no console errors, and no
request leaves the file."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from harness import cli, scenario
from harness.clients import registry
from harness.drive import runner
from harness.measure import metrics
from harness.present import diff, report_html
from tests.support import KNOWN, require

ROOT = Path(__file__).resolve().parent.parent
BROWSER = ROOT / "tests" / "browser"


def _scenario(tmp_path: Path, name: str, faults: str, trials: int = 4, transports: str = '["http/1.1"]') -> scenario.Scenario:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        textwrap.dedent(f"""
        version = 1
        name = "{name}"
        title = "{name} title"
        shape = "A reset after 10 events of the first attempt."
        expect = "Retry and deliver the answer."
        seed = 3
        trials = {trials}
        transports = {transports}
        tls = false
        deadline_s = 20.0
        [conversation]
        words = 60
        deltas = 30
        [field]
        never-retry = "the field saw this client give up"
        retry-decay = "attempt 2: 60 % of 10; 3: 20 % of 5"
    """)
        + textwrap.dedent(faults)
    )
    return scenario.load(path)


RESET_FIRST = """
[[faults]]
type = "tcp_reset"
trigger = { at = "events", value = 10 }
select = { attempts = [1] }
"""
ALWAYS_CUT = """
[[faults]]
type = "fin"
trigger = { at = "events", value = 10 }
"""
H2_ONLY = """
[[faults]]
type = "rst_stream"
trigger = { at = "events", value = 10 }
select = { attempts = [1] }
"""


def _run(tmp_path: Path, run_id: str, scenarios, clients) -> Path:
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = str(ROOT) + (os.pathsep + env_path if env_path else "")
    config = runner.RunConfig(tuple(scenarios), tuple(clients), results_dir=tmp_path / "results", run_id=run_id, workers=2)
    return runner.run(config)


def _known(mode: str, name: str | None = None, protocols=("http/1.1", "h2")):
    return registry.command_client(KNOWN + f" {mode}", name=name or mode, protocols=protocols)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Run A and run B: the same scenarios and clients, except that client "changing" never
    retries in A and retries in B. That matters in reset_first (only the first attempt is cut)
    and nowhere else: every attempt is cut in always_cut, and h2_only is skipped."""
    tmp_path = tmp_path_factory.mktemp("runs")
    items = [
        _scenario(tmp_path, "reset_first", RESET_FIRST),
        _scenario(tmp_path, "always_cut", ALWAYS_CUT, trials=2),
        _scenario(tmp_path, "h2_only", H2_ONLY, transports='["h2"]'),
    ]
    stable = [_known("never-retry", protocols=("http/1.1",)), _known("fixed-retry", protocols=("http/1.1",))]
    a = _run(tmp_path, "run-a", items, [*stable, _known("never-retry", "changing", ("http/1.1",))])
    b = _run(tmp_path, "run-b", items, [*stable, _known("fixed-retry", "changing", ("http/1.1",))])
    for directory in (a, b):
        (directory / "scenarios").mkdir()
        for item in items:  # results may carry their scenario files: the report reads shape, expect, field from them
            (directory / "scenarios" / f"{item.name}.toml").write_text(Path(item.source).read_text())
        assert cli.main(["report", str(directory)]) == 0
    return a, b


def test_fisher_exact_matches_published_values():
    # R: fisher.test(matrix(c(8, 1, 2, 5), 2))$p.value = 0.03497; (1, 11, 9, 3): 0.002759
    assert diff.fisher_exact(8, 2, 1, 5) == pytest.approx(0.034965, abs=1e-6)
    assert diff.fisher_exact(1, 9, 11, 3) == pytest.approx(0.0027595, abs=1e-6)
    assert diff.fisher_exact(0, 5, 5, 0) == pytest.approx(2 / 252, rel=1e-9)
    assert diff.fisher_exact(2, 2, 2, 2) == pytest.approx(1.0)


def test_diff_names_the_changed_cell_and_no_other(two_runs, capsys):
    a, b = two_runs
    code = cli.main(["diff", str(a), str(b), "--json", str(a.parent / "diff.json")])
    out = capsys.readouterr().out
    result = json.loads((a.parent / "diff.json").read_text())
    changed = {(c["scenario"], c["client"]) for c in result["changed"]}
    # One cell changed, and the diff names it and no other.
    assert changed == {("reset_first", "changing")}
    (recovery,) = [c for c in result["changed"][0]["changes"] if c["metric"] == "recovery"]
    assert recovery["a"] == [0, 4] and recovery["b"] == [4, 4] and recovery["significant"] and recovery["direction"] == "better"
    assert result["compared"] == 6  # 2 ran scenarios x 3 clients; the skipped h2 cells are not compared
    assert cli.main(["diff", str(b), str(a)]) == 1  # the other way round it got worse: exit 1
    out_reverse = capsys.readouterr().out
    assert "reset_first / changing: recovery 4/4 -> 0/4" in out_reverse and "worse" in out_reverse
    assert code == 0  # better is not a failure under the default policy (worse)
    lines = out.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("reset_first / changing: recovery 0/4 -> 4/4")
    assert cli.main(["diff", str(a), str(b), "--fail-on", "change"]) == 1
    assert cli.main(["diff", str(a), str(a)]) == 0


def test_diff_rejects_a_directory_without_trials(tmp_path, capsys):
    assert cli.main(["diff", str(tmp_path), str(tmp_path)]) == 2
    assert "no trials.jsonl" in capsys.readouterr().err


def test_report_with_baseline_has_the_section(two_runs):
    a, b = two_runs
    assert cli.main(["report", str(b), "--baseline", str(a)]) == 0
    page = (b / "report.html").read_text()
    assert "id=baseline" in page and "reset_first" in page.split("id=baseline", 1)[1]
    assert cli.main(["report", str(b)]) == 0  # and again without it, for the browser test


def test_page_structure_matrix_first_skips_and_field_points(two_runs):
    _, b = two_runs
    page = (b / "report.html").read_text()
    assert page.index("<table class=matrix>") < page.index("id=scenarios")
    assert "skipped: never-retry speaks http/1.1; the scenario needs h2" in page
    assert "field report" in page  # the decay table's points on the decay plot
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page
    data = json.loads(page.split("<script type=application/json id=trial-data>", 1)[1].split("</script>", 1)[0])
    bad = [r for r in runner.load_records(b) if r["outcome"] in report_html.BAD_OUTCOMES]
    assert set(data) == {r["key"] for r in bad}
    sample = data[bad[0]["key"]]
    assert sample["timeline"]["source"] == "journal" and sample["timeline"]["connections"]
    assert any(f["type"] in ("tcp_reset", "fin") for a in sample["timeline"]["attempts"] for f in a["faults"])


def test_extra_fields_and_versioned_clients_render(tmp_path):
    record = {
        "run_id": "x",
        "scenario": "s",
        "client": "claude-code@2.1.104",
        "trial": 0,
        "key": "k0",
        "outcome": "failed",
        "exit_code": 1,
        "hung": False,
        "elapsed_s": 1.0,
        "error_line": "API Error: boom",
        "answers_expected": 1,
        "answers_intact": 0,
        "integrity": [],
        "faults_fired": 1,
        "attempts": [
            [
                {
                    "ok": False,
                    "end": "fault:tcp_reset",
                    "status": 200,
                    "conn": 1,
                    "t_start": 1.0,
                    "t_end": 1.1,
                    "events_out": 5,
                    "bytes_out": 500,
                    "faults": ["tcp_reset"],
                },
                {
                    "ok": False,
                    "end": "fault:tcp_reset",
                    "status": 200,
                    "conn": 2,
                    "t_start": 1.7,
                    "t_end": 1.8,
                    "events_out": 5,
                    "bytes_out": 500,
                    "faults": ["tcp_reset"],
                },
            ]
        ],
        "backoff_ms": [600.0],
        "time_to_recover_ms": None,
        "bytes_out": 1000,
        "bytes_needed": 900,
        "events_out": 10,
        "connections": 2,
        "sockets": {"keepalive": False},
        "extra": {"lab_events": ["nat evicted"]},
    }
    rows = metrics.summarize([record])
    page = report_html.render(rows, {"run_id": "x"}, [record], tmp_path)
    assert "claude-code<br><span class=ver>@2.1.104</span>" in page
    assert "<code>sockets</code> (1)" in page and "<code>lab_events</code> (1)" in page
    data = json.loads(page.split("id=trial-data>", 1)[1].split("</script>", 1)[0])
    assert data["k0"]["extras"]["sockets"] == {"keepalive": False} and data["k0"]["timeline"]["attempts"][1]["gap_ms"] == pytest.approx(600.0)
    assert report_html.declared_range_ms("claude-code@2.1.104", 1) == (500.0, 625.0)


def test_decay_plot_only_from_attempt_two_on_an_integer_axis():
    row = dataclasses.replace(metrics.summarize_group("s", "c", []), decay=[{"attempt": 1, "tried": 4, "recovered": 0, "rate": 0.0, "ci": [0, 0.49]}])
    assert report_html.decay_plot([row]) == ""
    row.decay.append({"attempt": 2, "tried": 4, "recovered": 4, "rate": 1.0, "ci": [0.51, 1]})
    svg = report_html.decay_plot([row], report_html.field_decay({"retry-decay": "attempt 2: 63.6 % of 110; 3: 22.5 % of 40"}))
    ticks = [t.split(">")[1].split("<")[0] for t in svg.split("<text")[1:] if "text-anchor=middle>" in t]
    assert {"1", "2", "3"} <= set(ticks) and not any("." in t for t in ticks if t[:1].isdigit())
    assert svg.count("field, attempt") == 2


def test_terminal_prints_the_matrix_then_the_worst_cells(two_runs):
    from rich.console import Console

    _, b = two_runs
    console = Console(record=True, width=160)
    report_html.print_summary(metrics.summarize(runner.only_latest(runner.load_records(b))), console)
    text = console.export_text()
    assert text.index("reset_first") < text.index("worst cells")
    assert "reset_first / never-retry: 0/4 recovered" in text.split("worst cells", 1)[1]
    assert len(text.splitlines()) < 30


def test_report_in_headless_chromium(two_runs, tmp_path):
    require("/usr/bin/chromium", "Debian's chromium")
    require(BROWSER / "node_modules" / "playwright-core", "playwright-core (npm ci in tests/browser)")
    node = require("node", "node")
    _, b = two_runs
    done = subprocess.run(
        [node, str(BROWSER / "check_report.mjs"), str(b / "report.html"), str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    rows = metrics.summarize(runner.only_latest(runner.load_records(b)))
    scenarios = {r["scenario"] for r in rows}
    clients = {r["client"] for r in rows}
    assert set(seen["rows"]) == scenarios and set(seen["columns"]) == clients
    assert seen["cells"] == [len(clients) + 1] * len(scenarios)  # one per client, and the row total
    assert len(seen["skipped"]) == len(clients) and all("needs h2" in s for s in seen["skipped"])
    assert seen["firstIsMatrix"]
    assert seen["consoleErrors"] == [] and seen["pageErrors"] == []
    assert seen["outside"] == [] and seen["requests"] == [seen["url"]]
    assert seen["dialog"]["open"] and seen["dialog"]["attempts"] >= 1 and seen["dialog"]["faults"] >= 1
    assert seen["dialog"]["key"] == seen["trialKey"] and "Journal timeline" in seen["dialog"]["text"]
    for name in ("report-matrix.png", "report-trial.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")


def _row(scenario_name: str, client: str, recovered: int, trials: int, hangs: int = 0, data_loss: int = 0) -> metrics.SummaryRow:
    empty = metrics.summarize_group(scenario_name, client, [])
    return dataclasses.replace(empty, trials=trials, recovered=recovered, hangs=hangs, data_loss=data_loss)


def test_diff_pairs_versions_and_follows_the_policy():
    a = [_row("s", "claude-code@2.1.104", 6, 6), _row("t", "claude-code@2.1.104", 3, 6)]
    b = [_row("s", "claude-code@2.1.200", 0, 6, hangs=6), _row("t", "claude-code@2.1.200", 4, 6)]
    assert diff.compare(a, b)["compared"] == 0  # different names: nothing in common
    result = diff.compare(a, b, strip_versions=True)
    (cell,) = [c for c in result["changed"] if c["scenario"] == "s"]
    assert cell["client_a"] == "claude-code@2.1.104" and cell["client_b"] == "claude-code@2.1.200"
    assert {c["metric"]: (c["direction"], c["significant"]) for c in cell["changes"]} == {"recovery": ("worse", True), "hangs": ("worse", True)}
    (small,) = [c for c in result["changed"] if c["scenario"] == "t"]
    assert not small["changes"][0]["significant"]  # 3/6 -> 4/6 is noise
    assert [diff.exit_code(result, p) for p in ("worse", "change", "any", "never")] == [1, 1, 1, 0]
    with pytest.raises(diff.DiffError, match="drop --strip-versions"):
        diff.compare(a + [_row("s", "claude-code@9", 1, 1)], b, strip_versions=True)


def test_error_lines_group_by_shape():
    lines = [
        "*net.OpError: read tcp 127.0.0.1:60098->127.0.0.1:42009: read: connection reset by peer",
        "*net.OpError: read tcp 127.0.0.1:56984->127.0.0.1:36583: read: connection reset by peer",
    ]
    assert len({report_html.error_shape(line) for line in lines}) == 1
    assert "connection reset by peer" in report_html.error_shape(lines[0])
