"""``streamchaos bisect``: the first published version of a client whose recovery differs from the
bad end's.

The registry's releases between ``--bad`` and ``--good`` (inclusive, pre-releases left out) are
ordered from the bad end to the good end; each visited version runs the scenario for ``--trials``
trials (results kept under ``results/<run-id>/``, so a bisect resumes). The ends are measured
first, with more trials (doubling, up to ``--max-trials``) until their 95 % Wilson intervals of
recovery do not overlap; if they still overlap there is nothing to bisect and the command says so.
A version *differs from bad* when its interval does not overlap the bad end's, and is *like bad*
when it overlaps the bad end's but not the good end's. An interval that overlaps both cannot decide:
that version runs more trials (doubling, up to ``--max-trials``); if it still cannot decide, the
nearer point estimate decides (a tie counts as differing) and the step is marked so.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from harness.measure import metrics


@dataclass
class Measure:
    version: str
    recovered: int
    trials: int
    outcomes: dict
    error_lines: list

    @property
    def rate(self) -> float:
        return self.recovered / self.trials if self.trials else 0.0

    @property
    def ci(self) -> tuple[float, float]:
        return metrics.wilson(self.recovered, self.trials)

    def text(self) -> str:
        lo, hi = self.ci
        return f"{self.recovered}/{self.trials} recovered, {self.rate:.0%} [{lo:.0%}, {hi:.0%}]"


@dataclass
class Step:
    version: str
    index: int
    measure: dict
    verdict: str  # "like bad" | "differs from bad" (+ " (by point estimate)")
    decided_by: str


@dataclass
class Result:
    client: str
    scenario: str
    good: str
    bad: str
    candidates: int
    first_different: str | None
    last_like_bad: str | None
    ends_differ: bool
    steps: list = field(default_factory=list)
    trials_spent: int = 0
    results_dir: str = ""
    seconds: float = 0.0


Runner = Callable[[str, int], Measure]  # (version, total trials wanted) -> measure over all its trials


def classify(measure: Measure, bad: Measure, good: Measure) -> str | None:
    """ "differs from bad", "like bad", or None when the interval overlaps both ends'."""
    if not overlap(measure.ci, bad.ci):
        return "differs from bad"
    if not overlap(measure.ci, good.ci):
        return "like bad"
    return None


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def search(ordered: list[str], measure: Runner, trials: int, max_trials: int, log: Callable[[str], None] = lambda s: None) -> Result:
    """Binary search over ``ordered`` (bad end first, good end last)."""
    steps: list[Step] = []
    cache: dict[str, Measure] = {}

    def run(version: str, wanted: int) -> Measure:
        cache[version] = measure(version, wanted)
        return cache[version]

    def ends() -> tuple[Measure, Measure]:
        wanted = trials
        while True:
            bad, good = run(ordered[0], wanted), run(ordered[-1], wanted)
            apart = not overlap(bad.ci, good.ci)
            log(f"ends: bad {ordered[0]} {bad.text()}; good {ordered[-1]} {good.text()}")
            if apart or wanted >= max_trials:
                return bad, good
            wanted = min(max_trials, wanted * 2)
            log(f"  the ends' intervals overlap: {wanted} trials each")

    bad, good = ends()
    for m, role in ((bad, "bad end"), (good, "good end")):
        steps.append(Step(m.version, ordered.index(m.version), _as_dict(m), role, "measured first"))
    ends_differ = not overlap(bad.ci, good.ci)
    result = Result("", "", ordered[-1], ordered[0], len(ordered), None, None, ends_differ, steps)
    if not ends_differ:
        log("the ends do not differ at this trial count: nothing to bisect")
        result.trials_spent = sum(m.trials for m in cache.values())
        return result
    lo, hi = 0, len(ordered) - 1  # lo: like bad; hi: differs from bad
    while hi - lo > 1:
        mid = (lo + hi) // 2
        version = ordered[mid]
        wanted = trials
        while True:
            m = run(version, wanted)
            verdict = classify(m, bad, good)
            if verdict or wanted >= max_trials:
                break
            wanted = min(max_trials, wanted * 2)
            log(f"  {version}: {m.text()} cannot decide; {wanted} trials")
        decided = f"[{m.ci[0]:.0%}, {m.ci[1]:.0%}] vs bad [{bad.ci[0]:.0%}, {bad.ci[1]:.0%}] / good [{good.ci[0]:.0%}, {good.ci[1]:.0%}]"
        if verdict is None:
            verdict = ("like bad" if abs(m.rate - bad.rate) < abs(m.rate - good.rate) else "differs from bad") + " (by point estimate)"
            decided += f"; undecided at {m.trials} trials"
        steps.append(Step(version, mid, _as_dict(m), verdict, decided))
        log(f"step {len(steps) - 2}: {version} {m.text()} -> {verdict}")
        if verdict.startswith("like bad"):
            lo = mid
        else:
            hi = mid
    result.first_different, result.last_like_bad = ordered[hi], ordered[lo]
    result.trials_spent = sum(m.trials for m in cache.values())
    return result


def _as_dict(m: Measure) -> dict:
    return {**asdict(m), "rate": m.rate, "ci": list(m.ci)}


def between(versions: list[str], bad: str, good: str) -> list[str]:
    """Releases from ``bad`` to ``good`` inclusive, in that direction."""
    from harness.clients.versions import is_release, version_key

    releases = sorted({v for v in versions if is_release(v)} | {bad, good}, key=version_key)
    i, j = releases.index(bad), releases.index(good)
    return releases[i : j + 1] if i <= j else list(reversed(releases[j : i + 1]))


def command(args: argparse.Namespace) -> int:
    from harness import scenario
    from harness.clients import versions
    from harness.drive import runner

    def log(line: str) -> None:
        print(f"bisect: {line}", file=sys.stderr, flush=True)

    try:
        family = versions.family_of(args.client)
        good, bad = versions.normalize(family, args.good), versions.normalize(family, args.bad)
        for version in (good, bad):
            versions.check_published(family, version)
        item = scenario.load(scenario.find(args.scenario))
    except (versions.VersionError, scenario.ScenarioError) as error:
        print(f"streamchaos bisect: {error}", file=sys.stderr)
        return 2
    if args.trials < 1:
        print("streamchaos bisect: --trials must be at least 1", file=sys.stderr)
        return 2
    ordered = between(versions.published(family), bad, good)
    max_trials = args.max_trials or 4 * args.trials
    results = args.results or runner.RESULTS
    run_id = args.run_id or f"bisect-{args.client}-{item.name}-{runner.new_run_id()}"
    log(f"{args.client} on {item.name}: {len(ordered)} releases from bad {bad} to good {good}; {args.trials} trials per step (at most {max_trials})")

    def measure(version: str, wanted: int) -> Measure:
        adapter = versions.resolve(f"{args.client}@{version}")
        config = runner.RunConfig(
            scenarios=(item,),
            clients=(adapter,),
            results_dir=results,
            run_id=run_id,
            trials=wanted,
            max_trials=None,
            workers=args.workers,
            time_scale=args.time_scale,
        )
        directory = runner.run(config)
        records = [r for r in runner.only_latest(runner.load_records(directory)) if r["client"] == adapter.name and r["trial"] < wanted]
        ran = [r for r in records if not r.get("skipped")]
        if not ran:
            reason = next((r.get("skipped") for r in records if r.get("skipped")), "no trial ran")
            raise versions.VersionError(f"{adapter.name} did not run on {item.name}: {reason}")
        row = metrics.summarize_group(item.name, adapter.name, ran)
        return Measure(version, row["recovered"], row["trials"], row["outcomes"], row["error_lines"])

    started = time.monotonic()
    try:
        result = search(ordered, measure, args.trials, max_trials, log)
    except versions.VersionError as error:
        print(f"streamchaos bisect: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"streamchaos bisect: interrupted; resume with --run-id {run_id}", file=sys.stderr)
        return 130
    result.client, result.scenario = args.client, item.name
    result.results_dir = str(results / run_id)
    result.seconds = round(time.monotonic() - started, 1)
    (results / run_id).mkdir(parents=True, exist_ok=True)
    (results / run_id / "bisect.json").write_text(json.dumps(asdict(result), indent=2))
    print(render(result))
    return 0


def render(result: Result) -> str:
    lines = [f"bisect {result.client} on {result.scenario}: bad {result.bad} .. good {result.good} ({result.candidates} releases)"]
    for number, step in enumerate(result.steps):
        m = step.measure
        label = "end" if step.decided_by == "measured first" else f"step {number - 1}"
        lines.append(
            f"  {label:<8} {step.version:<10} {m['recovered']}/{m['trials']} recovered, {m['rate']:.0%} "
            f"[{m['ci'][0]:.0%}, {m['ci'][1]:.0%}]  {step.verdict}  ({step.decided_by})"
        )
    if not result.ends_differ:
        lines.append("the good and bad ends recover alike at this trial count: no version to find (raise --trials, or pick another scenario)")
    else:
        lines.append(f"first version whose recovery differs from {result.bad}: {result.first_different} (last like it: {result.last_like_bad})")
    lines.append(f"versions visited: {len(result.steps)}; trials spent: {result.trials_spent}; {result.seconds:g} s; results: {result.results_dir}")
    return "\n".join(lines)
