"""Shared fixtures: simulators run as real processes on loopback, stopped by pid."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from harness.drive.simulator_process import SimulatorProcess

# Shared CI machines stall now and then: no per-example deadline and no "generation is slow"
# verdict, which measure the machine rather than the code. Every property is still checked.
settings.register_profile("shared-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow])
# CI (CI=true, which .ci/run sets): the same examples on every run, a fixed budget, no example
# database carried between runs; a failure found while exploring locally is kept as an @example.
# Local runs keep exploring (random examples, the local database). HYPOTHESIS_PROFILE overrides.
settings.register_profile("ci", parent=settings.get_profile("shared-machine"), derandomize=True, max_examples=100, database=None, print_blob=True)
IN_CI = os.environ.get("CI") == "true"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if IN_CI else "shared-machine"))

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tools"
_keys = itertools.count(1)


@pytest.fixture
def start_simulator():
    """Factory: ``start_simulator("--tls", "--seed", "3")`` returns a running SimulatorProcess."""
    started: list[SimulatorProcess] = []

    def start(*args: str) -> SimulatorProcess:
        process = SimulatorProcess(list(args)).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="session")
def simulator():
    """One plain simulator for the whole session (the port speaks h1, h2c and TLS)."""
    with SimulatorProcess(["--seed", "7"]) as process:
        yield process


@pytest.fixture
def api_key(request) -> str:
    """A fresh key per test: the journal groups by it."""
    return f"sk-test-{request.node.name[:40]}-{next(_keys)}"


# -- no silent skips under CI -------------------------------------------------------------------
# Everything the README promises is tested; under CI=true a skip (a missing tool, a skip marker)
# is a failure with its reason, and the session fails if anything was skipped at all.


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true (nothing may be skipped in CI): {_skip_reason(report)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"module skipped under CI=true (nothing may be skipped in CI): {_skip_reason(report)}"


def pytest_sessionfinish(session, exitstatus):
    """The final check: under CI=true a run with any skip fails, whatever produced the skip."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if IN_CI and skipped and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if reporter is not None:
            reporter.write_line(f"CI=true: {skipped} test(s) skipped; failing the session", red=True)


# -- tests leave the environment as they found it ----------------------------------------------
_WATCHED_ENV = ("PYTHONPATH", "ANTHROPIC_", "STREAMCHAOS_", "SSL_CERT_", "NODE_EXTRA_CA_CERTS", "CI")


def _watched_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(_WATCHED_ENV)}


@pytest.fixture(autouse=True)
def environment_restored():
    """A test that sets PYTHONPATH, a client's key or base URL and never restores it changes every
    later test; use monkeypatch.setenv."""
    before = _watched_env()
    yield
    after = _watched_env()
    changed = {k: after.get(k) for k in set(before) ^ set(after) | {k for k in before if before[k] != after.get(k)}}
    assert after == before, f"the test left the environment changed: {changed}"
