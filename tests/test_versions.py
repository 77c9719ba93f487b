"""Issue 14: clients at any version from their registries, cached per client and version; the field
reports checked against what the client printed; versions side by side; bisect; a whole wheel.

The versions these tests run (python-sdk@0.49.0, ts-sdk-node@0.40.0, claude-code@2.1.104 and
claude-code-bun@2.1.104) are installed once by `make setup` into the user cache the suite shares
(~/.cache/streamchaos or $STREAMCHAOS_CACHE_DIR); a test that needs one that is missing installs it.
Registry look-ups need the network: offline they fail with the error the offline test checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import scenario, user_cache
from harness.clients import versions
from harness.present import fieldmatch
from harness.present.bisect import Measure, between, classify, search

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "harness.cli"]


def streamchaos(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT, env={**os.environ, **(env or {})})


# -- field rows -----------------------------------------------------------------------------------

LITERAL = "API Error: The socket connection was closed unexpectedly. For more information, pass verbose: true in the second argument to fetch()"


def test_field_literal_matches_what_bun_printed_and_not_what_node_printed():
    row = fieldmatch.FieldRow(client="claude-code", error=LITERAL)
    bun = (
        "API Error: ECONNRESET: The socket connection was closed unexpectedly. "
        "For more information, pass `verbose: true` in the second argument to fetch()\n"
    )
    assert fieldmatch.find_literal(row, bun) == (True, ["ECONNRESET:"])
    assert fieldmatch.find_literal(row, "API Error: terminated\n") == (False, [])
    sdk = fieldmatch.FieldRow(client="python-sdk", error="httpx.ReadError: [Errno 104] Connection reset by peer")
    assert fieldmatch.find_literal(sdk, '{"turn": 0, "error": "ReadError: [Errno 104] Connection reset by peer"}')[0]


def test_field_rows_structured_and_legacy_both_load(tmp_path):
    rows, view = fieldmatch.parse({"python-sdk": "httpx.ReadError: boom (never retried mid-stream)"})
    assert rows[0].error == "httpx.ReadError: boom" and rows[0].legacy and view == {"python-sdk": "httpx.ReadError: boom (never retried mid-stream)"}
    item = scenario.load(scenario.find("startup_burst"))
    row = item.field_rows[0]
    assert (row.client, row.version, row.error) == ("claude-code", "2.1.150", LITERAL) and "seeds/001" in row.source
    bad = tmp_path / "bad.toml"
    bad.write_text('version = 1\n[[field]]\nclient = "claude-code"\nversion = 2\n')
    with pytest.raises(scenario.ScenarioError) as info:
        scenario.load(bad)
    assert str(bad) in str(info.value) and "field[0].version" in str(info.value)


def test_field_check_reports_reproduced_different_and_not_run():
    rows = {"s": (fieldmatch.FieldRow(client="claude-code", error=LITERAL), fieldmatch.FieldRow(client="go-sdk", error="unexpected EOF"))}
    records = [
        {
            "scenario": "s",
            "client": "claude-code-bun@2.1.104",
            "trial": 0,
            "outcome": "failed",
            "error_line": "API Error: ECONNRESET: " + LITERAL[len("API Error: ") :],
            "stdout_tail": "",
            "stderr_tail": "",
        },
        {
            "scenario": "s",
            "client": "claude-code@2.1.104",
            "trial": 0,
            "outcome": "failed",
            "error_line": "API Error: terminated",
            "stdout_tail": "API Error: terminated\n",
            "stderr_tail": "",
        },
    ]
    found = {(e["client"], e["status"]): fieldmatch.verdict(e) for e in fieldmatch.evaluate(rows, records)}
    assert found[("claude-code-bun@2.1.104", "reproduced")] == "reproduced (with 'ECONNRESET:' added)"
    assert found[("claude-code@2.1.104", "different")] == "different: API Error: terminated (1/1 trials; outcomes: failed 1/1)"
    assert found[("go-sdk", "not run")] == "not run"


# -- registries and the cache ---------------------------------------------------------------------


@pytest.mark.versions
def test_nonexistent_version_is_refused_naming_the_registry():
    result = streamchaos("run", "--scenarios", "fin_mid_body", "--clients", "claude-code@9.9.9", "--trials", "1", timeout=180)
    said = " ".join(result.stderr.split())
    assert result.returncode == 2
    assert "claude-code@9.9.9: the npm registry has no version 9.9.9 of @anthropic-ai/claude-code" in said
    assert "newest: 2.1." in said
    with pytest.raises(versions.VersionError, match=r"pypi registry has no version 0\.0\.999 of anthropic"):
        versions.resolve("python-sdk@0.0.999")
    with pytest.raises(versions.VersionError, match=r"ships a native executable, not cli\.js"):
        versions.resolve("claude-code-bun@2.1.330", install=False)


def test_a_family_without_a_built_in_is_not_installed_by_a_lookup(tmp_path, monkeypatch):
    # claude-code-bun has no built-in adapter: resolve(install=False) with an empty cache used to
    # crash on replace(None, ...) (AttributeError); it says how to install it, and installs nothing
    monkeypatch.setenv(user_cache.CACHE_ENV, str(tmp_path / "cache"))
    said = r"claude-code-bun: @anthropic-ai/claude-code .* is not installed; .*streamchaos setup --clients claude-code-bun"
    with pytest.raises(versions.VersionError, match=said):
        versions.resolve("claude-code-bun", install=False)
    assert not (tmp_path / "cache" / "clients").exists()


@pytest.mark.versions
def test_offline_install_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv(user_cache.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9/")  # nothing listens: as if offline
    monkeypatch.setenv("npm_config_fetch_retries", "0")
    monkeypatch.setenv("npm_config_fetch_timeout", "3000")
    monkeypatch.setattr(versions, "_PUBLISHED", {})
    with pytest.raises(versions.VersionError) as info:
        versions.resolve("ts-sdk-node@0.40.0")
    assert "cannot list the versions of @anthropic-ai/sdk from the npm registry" in str(info.value) and "offline?" in str(info.value)
    assert not (tmp_path / "cache" / "clients" / "ts-sdk" / "0.40.0").exists()


@pytest.mark.versions
def test_node_client_installs_on_first_use_and_the_cache_is_reused(tmp_path):
    env = {user_cache.CACHE_ENV: str(tmp_path / "cache")}
    first = streamchaos("setup", "--clients", "ts-sdk-node@0.40.0", env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "installing ts-sdk 0.40.0 from npm" in first.stderr and "(first use)" in first.stderr
    prefix = tmp_path / "cache" / "clients" / "ts-sdk" / "0.40.0"
    assert json.loads((prefix / "node_modules" / "@anthropic-ai" / "sdk" / "package.json").read_text())["version"] == "0.40.0"
    marker = (prefix / versions.MARKER).stat().st_mtime_ns
    # the second run asks no registry: an unreachable one changes nothing
    second = streamchaos("setup", "--clients", "ts-sdk-node@0.40.0", env={**env, "npm_config_registry": "http://127.0.0.1:9/"}, timeout=120)
    assert second.returncode == 0 and "installing" not in second.stderr
    assert (prefix / versions.MARKER).stat().st_mtime_ns == marker
    listed = streamchaos("clients", env=env, timeout=60)
    assert "ts-sdk-node@0.40.0" in listed.stdout


@pytest.mark.versions
@pytest.mark.clients
@pytest.mark.slow
def test_two_versions_side_by_side_with_field_matches(tmp_path):
    """An old Python SDK beside the pinned one, an old Claude Code on Node beside the same release
    on Bun: version columns, and the seeds' literal reproduced by Bun only."""
    result = streamchaos(
        "run",
        "--scenarios",
        "fin_mid_body",
        "--clients",
        "python-sdk@0.49.0",
        "python-sdk",
        "claude-code@2.1.104",
        "claude-code-bun@2.1.104",
        "--trials",
        "1",
        "--workers",
        "2",
        "--results",
        str(tmp_path),
        "--run-id",
        "matrix",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "matrix" / "summary.json").read_text())
    tables = {t["client"]: t for t in summary["matrix"]}
    assert tables["python-sdk"]["columns"] == ["python-sdk@0.49.0", "python-sdk"]
    assert tables["claude-code"]["columns"] == ["claude-code-bun@2.1.104", "claude-code@2.1.104"]
    cell = tables["python-sdk"]["rows"][0]["cells"]["python-sdk@0.49.0"]
    assert cell["trials"] == 1 and len(cell["ci"]) == 2
    field = {e["client"]: e for e in summary["field"] if e.get("field_client") in ("claude-code", "python-sdk")}
    # Claude Code on Bun sometimes retries the FIN and recovers (seen 1 trial in 5 on a loaded machine):
    # when it fails, it prints the seed's literal; when it recovers, the row says it printed something else.
    bun = field["claude-code-bun@2.1.104"]
    records = [json.loads(line) for line in (tmp_path / "matrix" / "trials.jsonl").read_text().splitlines()]
    bun_outcome = next(r["outcome"] for r in records if r["client"] == "claude-code-bun@2.1.104")
    if bun_outcome == "failed":
        assert bun["status"] == "reproduced" and "The socket connection was closed unexpectedly" in bun["printed"], bun
    else:
        assert bun_outcome == "recovered" and bun["status"] == "different", (bun_outcome, bun)
    assert field["claude-code@2.1.104"]["status"] == "different" and field["claude-code@2.1.104"]["printed"].startswith("API Error: terminated")
    assert field["python-sdk@0.49.0"]["status"] == "reproduced"  # RemoteProtocolError: peer closed connection ...
    rows = {r["client"]: r for r in summary["rows"]}
    assert rows["claude-code-bun@2.1.104"]["field"][0]["verdict"].startswith("reproduced" if bun_outcome == "failed" else "different")
    page = (tmp_path / "matrix" / "report.html").read_text()
    assert "Versions side by side: claude-code" in page and "Field reports" in page
    assert "claude-code versions side by side" in result.stdout and "different: API Error: terminated" in result.stdout


# -- bisect ---------------------------------------------------------------------------------------


def test_bisect_finds_the_first_version_that_differs_and_spends_more_trials_when_undecided():
    releases = [f"2.1.{i}" for i in range(104, 331)]
    assert between(releases + ["2.1.200-beta"], "2.1.104", "2.1.330") == releases

    def measure(version: str, trials: int) -> Measure:
        patch = int(version.rsplit(".", 1)[1])
        return Measure(version, trials if patch >= 198 else 0, trials, {}, [])

    result = search(releases, measure, trials=2, max_trials=8)
    assert result.ends_differ and result.first_different == "2.1.198" and result.last_like_bad == "2.1.197"
    visited = [s.version for s in result.steps]
    assert visited[:2] == ["2.1.104", "2.1.330"] and len(visited) == 2 + 8  # log2(227) steps
    # at 2 trials 0/2 [0%, 66%] and 2/2 [34%, 100%] overlap: the ends and every step took 4
    assert all(s.measure["trials"] == 4 for s in result.steps) and result.trials_spent == 4 * len(visited)
    bad, good = Measure("a", 0, 8, {}, []), Measure("b", 8, 8, {}, [])
    assert classify(Measure("x", 1, 2, {}, []), bad, good) is None
    assert classify(Measure("x", 0, 4, {}, []), bad, good) == "like bad"
    flaky = search(releases, lambda v, n: Measure(v, n // 2 if v == "2.1.217" else measure(v, n).recovered, n, {}, []), trials=2, max_trials=4)
    step = next(s for s in flaky.steps if s.version == "2.1.217")
    assert step.verdict == "differs from bad (by point estimate)" and step.measure["trials"] == 4 and "[15%, 85%]" in step.decided_by

    same = search(releases, lambda v, n: Measure(v, n, n, {}, []), trials=2, max_trials=4)
    assert not same.ends_differ and same.first_different is None and same.trials_spent == 8


# -- the wheel ------------------------------------------------------------------------------------

PLUGIN_TEST = """
import httpx, pytest

def test_apply_a_library_scenario(streamchaos):
    item = streamchaos.apply("fin_mid_body")
    assert item.name == "fin_mid_body" and item.field_rows
    body = {"model": "m", "max_tokens": 500, "stream": True, "messages": [{"role": "user", "content": "@sc words=100"}]}
    headers = {"x-api-key": streamchaos.key, "anthropic-version": "2023-06-01"}
    with pytest.raises(httpx.RemoteProtocolError):
        with httpx.stream("POST", streamchaos.base_url() + "/v1/messages", json=body, headers=headers, timeout=30) as response:
            for _ in response.iter_bytes():
                pass
    assert "fin" in [f["type"] for f in streamchaos.faults()]
"""


@pytest.mark.versions
@pytest.mark.slow
def test_wheel_installs_whole_outside_the_checkout(tmp_path):
    # Nothing of the checkout leaks in (other tests put it on PYTHONPATH, and then pip would call the
    # wheel "already satisfied" and install no `streamchaos` command).
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("PIP_")}
    dist = tmp_path / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(dist)], capture_output=True, text=True, timeout=300, env=clean
    )
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next(dist.glob("streamchaos-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120, env=clean)
    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(wheel), "pytest"],
        capture_output=True,
        text=True,
        timeout=600,
        env=clean,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    work = tmp_path / "work"
    work.mkdir()
    env = dict(clean)
    env[user_cache.CACHE_ENV] = str(tmp_path / "cache")  # a fresh cache: the Node client installs on first use
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    cli = str(venv / "bin" / "streamchaos")
    listed = subprocess.run([cli, "scenarios", "list"], capture_output=True, text=True, cwd=work, env=env, timeout=120)
    assert "reset_mid_thinking" in listed.stdout and "fin_mid_body" in listed.stdout, listed.stderr
    before = subprocess.run([cli, "clients"], capture_output=True, text=True, cwd=work, env=env, timeout=120).stdout
    node_line = next(line for line in before.splitlines() if line.startswith("ts-sdk-node "))
    assert "missing" in node_line and "streamchaos setup --clients ts-sdk-node" in node_line
    assert "make setup`" not in node_line.split(" or ")[-1]
    started = time.monotonic()
    run = subprocess.run(
        [cli, "run", "--scenarios", "fin_mid_body", "--clients", "ts-sdk-node", "--trials", "1"],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "installing ts-sdk" in run.stderr and "(first use)" in run.stderr  # the pinned @anthropic-ai/sdk, from npm
    summary = json.loads(next((work / "results").glob("*/summary.json")).read_text())
    assert [(r["scenario"], r["client"], r["trials"]) for r in summary["rows"]] == [("fin_mid_body", "ts-sdk-node", 1)]
    assert any(e["client"] == "ts-sdk-node" and e["status"] in ("reproduced", "different") for e in summary["field"])
    assert time.monotonic() - started < 300
    after = subprocess.run([cli, "clients"], capture_output=True, text=True, cwd=work, env=env, timeout=120).stdout
    assert next(line for line in after.splitlines() if line.startswith("ts-sdk-node ")).split()[2] == "installed"
    assert "ts-sdk-node@1.12.0" in after  # the pinned version, listed with the cache
    (work / "test_plugin.py").write_text(PLUGIN_TEST)
    plugin = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_plugin.py"],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
        timeout=300,
    )
    assert plugin.returncode == 0, plugin.stdout[-3000:] + plugin.stderr[-2000:]
    assert (
        str(ROOT)
        not in subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import harness; print(harness.__file__)"], capture_output=True, text=True, cwd=work, env=env
        ).stdout
    )
