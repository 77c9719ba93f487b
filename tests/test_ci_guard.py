"""The suite's own CI guarantees: under CI=true nothing is skipped silently (a skip fails the test
and the session), skip reasons are printed with a count, and hypothesis runs derandomized."""

from __future__ import annotations

from pathlib import Path

pytest_plugins = ["pytester"]

CONFTEST = (Path(__file__).resolve().parent / "conftest.py").read_text()
SKIPPING = """
import pytest
from hypothesis import given, settings, strategies as st

def test_needs_a_tool():
    pytest.skip("frobnicator is not installed; run `make setup`")

def test_fine():
    assert True

@given(st.integers())
def test_profile(n):
    current = settings()
    assert current.derandomize is (__import__("os").environ.get("CI") == "true")
"""


def run(pytester, monkeypatch, ci: bool):
    if ci:
        monkeypatch.setenv("CI", "true")
    else:
        monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("HYPOTHESIS_PROFILE", raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_guard=SKIPPING)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")


def test_a_skip_fails_under_ci(pytester, monkeypatch):
    result = run(pytester, monkeypatch, ci=True)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*skipped under CI=true*frobnicator is not installed*"])
    assert result.ret != 0


def test_a_skip_is_a_reported_skip_locally(pytester, monkeypatch):
    result = run(pytester, monkeypatch, ci=False)
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*frobnicator is not installed*", "*1 skipped*"])
    assert result.ret == 0


def test_ci_sets_ci_true_itself():
    script = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "export CI=true" in script.split("\nmake test")[0]
