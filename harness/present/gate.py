"""The CI gate: a policy of thresholds, a verdict per scenario and client, JUnit XML.

Thresholds bound what a client library may do under each scenario: the *lower* bound of the 95 %
recovery interval (so a lucky handful of trials cannot pass a gate), and the most hangs, data
losses and work amplification allowed. A policy file sets defaults and per-scenario overrides.
"""

from __future__ import annotations

import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from harness.measure.metrics import SummaryRow


class PolicyError(ValueError):
    def __init__(self, source: str, path: str, message: str) -> None:
        super().__init__(f"{source}: {path}: {message}")
        self.source, self.path, self.message = source, path, message


@dataclass(frozen=True, slots=True)
class Thresholds:
    min_recovery_lower: float = 0.0
    max_hangs: int = 0
    max_data_loss: int = 0
    max_amplification: float | None = None

    def check(self, source: str, path: str) -> Thresholds:
        if not 0 <= self.min_recovery_lower <= 1:
            raise PolicyError(source, f"{path}.min_recovery_lower", "must be between 0 and 1 (the lower bound of the 95% interval)")
        for name in ("max_hangs", "max_data_loss"):
            if getattr(self, name) < 0:
                raise PolicyError(source, f"{path}.{name}", "must not be negative")
        if self.max_amplification is not None and self.max_amplification < 1:
            raise PolicyError(source, f"{path}.max_amplification", "must be at least 1 (1 = no byte sent twice)")
        return self


@dataclass(frozen=True, slots=True)
class Policy:
    defaults: Thresholds = Thresholds()
    scenarios: Mapping[str, Thresholds] = field(default_factory=dict)
    skipped_fails: bool = False  # a skipped scenario/client counts as a failure

    def for_scenario(self, name: str) -> Thresholds:
        return self.scenarios.get(name, self.defaults)


@dataclass(frozen=True, slots=True)
class Verdict:
    scenario: str
    client: str
    passed: bool
    skipped: str | None
    reasons: tuple[str, ...]
    numbers: Mapping[str, Any]
    seconds: float


def load_policy(path: Path | str) -> Policy:
    source = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(source, "", "no such file") from None
    except tomllib.TOMLDecodeError as error:
        raise PolicyError(source, "", f"not valid TOML: {error}") from None
    return policy_from_data(data, source)


def policy_from_data(data: Mapping[str, Any], source: str = "policy") -> Policy:
    allowed = {"version", "defaults", "scenarios", "skipped_fails", "sequential"}  # [sequential]: harness/present/sequential.py reads it
    for key in data:
        if key not in allowed:
            raise PolicyError(source, key, f"unknown key; expected one of {', '.join(sorted(allowed))}")
    if data.get("version", 1) != 1:
        raise PolicyError(source, "version", "this streamchaos reads policy version 1")
    defaults = _thresholds(data.get("defaults", {}), Thresholds(), source, "defaults")
    scenarios = {}
    raw = data.get("scenarios", {})
    if not isinstance(raw, Mapping):
        raise PolicyError(source, "scenarios", "must be a table of [scenarios.NAME] tables")
    for name, values in raw.items():
        scenarios[name] = _thresholds(values, defaults, source, f"scenarios.{name}")
    skipped = data.get("skipped_fails", False)
    if not isinstance(skipped, bool):
        raise PolicyError(source, "skipped_fails", "must be true or false")
    return Policy(defaults, scenarios, skipped)


def _thresholds(values: Any, base: Thresholds, source: str, path: str) -> Thresholds:
    if not isinstance(values, Mapping):
        raise PolicyError(source, path, "must be a table")
    known = {f.name: f for f in fields(Thresholds)}
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise PolicyError(source, f"{path}.{key}", f"unknown key; expected one of {', '.join(known)}")
        integer = key.startswith("max_") and key != "max_amplification"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
            raise PolicyError(source, f"{path}.{key}", f"must be a {'whole number' if integer else 'number'}, not {value!r}")
        out[key] = value
    return replace(base, **out).check(source, path)


def with_overrides(policy: Policy, **overrides: Any) -> Policy:
    """Command-line flags replace the defaults and every scenario's value for that threshold."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return policy
    return Policy(
        replace(policy.defaults, **given).check("flags", "--"), {k: replace(v, **given) for k, v in policy.scenarios.items()}, policy.skipped_fails
    )


def evaluate(rows: Sequence[SummaryRow], policy: Policy) -> list[Verdict]:
    verdicts = []
    for row in rows:
        limits = policy.for_scenario(row.scenario)
        seconds = (row.mean_elapsed_s or 0.0) * (row.trials or 0)
        if row.skipped:
            verdicts.append(Verdict(row.scenario, row.client, not policy.skipped_fails, row.skipped, (), {}, 0.0))
            continue
        ci = row.recovery_ci
        reasons = []
        if ci is None:  # no trial ran: summarize() makes such a row only for a skipped cell
            reasons.append("no trials ran")
        elif ci[0] < limits.min_recovery_lower:
            reasons.append(
                f"recovery {row.recovered}/{row.trials} = {row.recovery_rate:.0%}, 95% interval "
                f"[{ci[0]:.0%}, {ci[1]:.0%}]: lower bound below {limits.min_recovery_lower:.0%}"
            )
        if row.hangs > limits.max_hangs:
            reasons.append(f"{row.hangs} hang(s) > {limits.max_hangs}")
        if row.data_loss > limits.max_data_loss:
            reasons.append(f"{row.data_loss} trial(s) with lost or duplicated data > {limits.max_data_loss}")
        amplification = row.amplification
        if limits.max_amplification is not None and amplification is not None and amplification > limits.max_amplification:
            reasons.append(f"amplification {amplification:.2f} > {limits.max_amplification:.2f}")
        numbers = {k: getattr(row, k) for k in ("trials", "recovered", "recovery_rate", "recovery_ci", "hangs", "data_loss", "amplification")}
        verdicts.append(Verdict(row.scenario, row.client, not reasons, None, tuple(reasons), numbers, seconds))
    return verdicts


def junit_suite(suite: str, tests: int, failures: int, errors: int, skipped: int, seconds: float) -> tuple[ET.Element, ET.Element]:
    """The <testsuites> root and its one <testsuite>, counted as CI systems read them (a skipped
    cell that should have run is an error, not a skip)."""
    root = ET.Element("testsuites", name=suite, tests=str(tests), failures=str(failures), errors=str(errors))
    testsuite = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(tests),
        failures=str(failures),
        errors=str(errors),
        skipped=str(skipped - errors),
        time=f"{seconds:.3f}",
    )
    return root, testsuite


def junit_case(testsuite: ET.Element, suite: str, scenario: str, client: str, seconds: float) -> ET.Element:
    """One cell as a <testcase>: the scenario is the class, the client the name."""
    return ET.SubElement(testsuite, "testcase", classname=f"{suite}.{scenario}", name=client, time=f"{seconds:.3f}")


def junit_xml(verdicts: Sequence[Verdict], suite: str = "streamchaos") -> str:
    failures = sum(1 for v in verdicts if not v.passed and not v.skipped)
    skipped = sum(1 for v in verdicts if v.skipped)
    errors = sum(1 for v in verdicts if v.skipped and not v.passed)
    root, testsuite = junit_suite(suite, len(verdicts), failures, errors, skipped, sum(v.seconds for v in verdicts))
    for verdict in verdicts:
        case = junit_case(testsuite, suite, verdict.scenario, verdict.client, verdict.seconds)
        if verdict.skipped:
            tag = "skipped" if verdict.passed else "error"
            ET.SubElement(case, tag, message=f"skipped: {verdict.skipped}")
        elif not verdict.passed:
            failure = ET.SubElement(case, "failure", message="; ".join(verdict.reasons), type="StreamchaosGate")
            failure.text = "\n".join(f"{k}: {v}" for k, v in verdict.numbers.items())
        else:
            output = ET.SubElement(case, "system-out")
            output.text = "\n".join(f"{k}: {v}" for k, v in verdict.numbers.items())
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
