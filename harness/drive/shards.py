"""Shards: a deterministic slice of the (scenario, client, trial) grid, and the manifest that makes
a shard's results directory self-describing.

The grid is cut into *units* and the units are dealt to ``count`` shards by greedy LPT (longest
processing time first: sort by expected cost, give each unit to the least-loaded shard, ties to
the lowest shard). The expected cost is computed from the scenario file and the client kind only
(deadlines, idle time, stalls, retry backoff, a per-client start-up constant), never from this
machine, so every shard computes the same assignment without talking to the others.

A unit is one trial, except for scenarios whose trials share server state (a ``capacity`` plan,
``concurrency`` > 1, or clock windows measured from the plan load): those stay whole on one shard,
because splitting them would change what each trial sees.

A trial's fault decisions are drawn from ``(plan seed, rule, trial key, request, attempt)``
(simulator/faults/decide.py) and the trial key is ``run id / scenario / client / trial index``
(runner.trial_key): the shard is not an input, so a trial draws the same in whichever shard runs it
as long as the shards share the run id. Without ``--run-id`` a sharded run takes one derived from
the configuration digest, so independently started shards agree.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import json
import math
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
ROOT = Path(__file__).resolve().parent.parent

# Seconds a client takes to start and finish one clean request here: only their ratios matter,
# they are constants so the assignment does not depend on the machine computing it.
STARTUP_S = {
    "python-sdk": 0.6,
    "python-sdk-h2": 0.7,
    "ts-sdk-node": 0.45,
    "ts-sdk-bun": 0.25,
    "ts-sdk-bun-h2": 0.25,
    "go-sdk": 0.08,
    "claude-code": 2.5,
    "curl": 0.03,
}
DEFAULT_STARTUP_S = 0.4
RETRY_BACKOFF_S = 0.75  # one SDK backoff, the mean of min(0.5*2^n, 8)*(1-0.25U) at n=1


class ShardError(ValueError):
    """A shard specification, a manifest or a set of shards that cannot be used; says which and why."""


@dataclass(frozen=True, order=True)
class Shard:
    index: int  # 1-based
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse(text: str, source: str = "--shard") -> Shard:
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match:
        raise ShardError(f"{source}: {text!r} is not INDEX/COUNT (e.g. 2/4; shards are numbered from 1)")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise ShardError(f"{source}: the shard count must be at least 1, not {count}")
    if not 1 <= index <= count:
        raise ShardError(f"{source}: shard {index} of {count} is out of range; shards are numbered 1..{count}")
    return Shard(index, count)


def from_env(env: Mapping[str, str] | None = None, count: int | None = None) -> Shard:
    """The shard an engine gives this process: ``STREAMCHAOS_SHARD=i/n`` (a CI matrix variable), or
    Kubernetes' 0-based ``JOB_COMPLETION_INDEX`` with the count from ``count`` or
    ``STREAMCHAOS_SHARD_COUNT``."""
    env = os.environ if env is None else env
    if env.get("STREAMCHAOS_SHARD"):
        return parse(env["STREAMCHAOS_SHARD"], "STREAMCHAOS_SHARD")
    if env.get("JOB_COMPLETION_INDEX") is not None and env.get("JOB_COMPLETION_INDEX") != "":
        raw = env["JOB_COMPLETION_INDEX"]
        if not raw.strip().isdigit():
            raise ShardError(f"JOB_COMPLETION_INDEX: {raw!r} is not a whole number")
        if count is None:
            given = env.get("STREAMCHAOS_SHARD_COUNT", "")
            if not given.strip().isdigit():
                raise ShardError(
                    "JOB_COMPLETION_INDEX is set but the shard count is not: pass --shard-count N or set "
                    "STREAMCHAOS_SHARD_COUNT (the Job's completions)"
                )
            count = int(given)
        return parse(f"{int(raw) + 1}/{count}", f"JOB_COMPLETION_INDEX={raw} (0-based) with count {count}")
    raise ShardError("--shard-from-env: neither STREAMCHAOS_SHARD (i/n) nor JOB_COMPLETION_INDEX is set")


# -- expected cost and assignment -------------------------------------------------------------------


def shared_state(scenario: Any) -> bool:
    """Trials of this scenario interact through the server, so they stay on one shard."""
    plan = scenario.faults
    clocked = any(rule.select.window_s is not None or rule.trigger.at == "clock" for rule in plan.rules)
    return plan.capacity is not None or scenario.concurrency > 1 or clocked


def expected_cost(scenario: Any, client_name: str, time_scale: float | None = None) -> float:
    """Expected seconds of one trial, from the scenario file and the client kind (see module doc)."""
    scale = scenario.time_scale if time_scale is None else time_scale
    deadline = scenario.deadline(scale)
    cost = STARTUP_S.get(client_name, DEFAULT_STARTUP_S)
    cost += scale * sum(turn.idle_before_s for turn in scenario.turns)
    timeout = scenario.client_timeout_s * scale if scenario.client_timeout_s is not None else deadline
    for rule in scenario.faults.rules:
        chance = rule.select.probability if rule.select.probability < 1 else 1.0
        if rule.select.doomed:
            chance = max(chance, rule.select.doomed)
        seconds = getattr(rule.fault, "seconds", None)
        if seconds is not None:
            cost += chance * (min(timeout, deadline) if math.isinf(seconds) else seconds * scale)
        cost += chance * RETRY_BACKOFF_S
    if scenario.toxics:
        cost += scale * max((step.at_s or 0.0) + (step.idle_s or 0.0) for step in scenario.toxics)
    return round(min(cost, deadline), 6)


@dataclass(frozen=True)
class Unit:
    cost: float
    trials: tuple[tuple[str, str, int], ...]


def grid_units(scenarios: Sequence[Any], clients: Sequence[Any], trials_for: Any, time_scale: float | None = None) -> list[Unit]:
    units = []
    for scenario in scenarios:
        count = trials_for(scenario)
        cells = [(scenario.name, c.name, i) for c in clients for i in range(count)]
        costs = {c.name: expected_cost(scenario, c.name, time_scale) for c in clients}
        if shared_state(scenario):
            if cells:
                units.append(Unit(round(sum(costs[c] for _, c, _ in cells), 6), tuple(cells)))
        else:
            units.extend(Unit(costs[c], ((s, c, i),)) for s, c, i in cells)
    return units


def assign(units: Sequence[Unit], count: int) -> list[list[Unit]]:
    """Greedy LPT: costliest unit first to the least-loaded shard (ties: the lowest shard). The
    order of ``units`` does not matter: ties in cost are broken by the units' trial names."""
    ordered = sorted(units, key=lambda u: (-u.cost, u.trials))
    loads = [(0.0, shard) for shard in range(count)]
    heapq.heapify(loads)
    out: list[list[Unit]] = [[] for _ in range(count)]
    for unit in ordered:
        load, shard = heapq.heappop(loads)
        out[shard].append(unit)
        heapq.heappush(loads, (round(load + unit.cost, 6), shard))
    return out


def select(config: Any, shard: Shard) -> frozenset[tuple[str, str, int]]:
    """The (scenario, client, trial) triples this shard runs."""
    from harness.drive.runner import trials_for

    units = grid_units(config.scenarios, config.clients, lambda s: trials_for(s, config), config.time_scale)
    return frozenset(t for unit in assign(units, shard.count)[shard.index - 1] for t in unit.trials)


def planned_load(config: Any, shard: Shard) -> float:
    from harness.drive.runner import trials_for

    units = grid_units(config.scenarios, config.clients, lambda s: trials_for(s, config), config.time_scale)
    return round(sum(u.cost for u in assign(units, shard.count)[shard.index - 1]), 3)


# -- configuration digest, versions, manifest -------------------------------------------------------


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple, frozenset, set)):
        items = [_plain(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def describe_client(client: Any) -> dict[str, Any]:
    """What identifies a client's behaviour, without paths of this machine."""
    out: dict[str, Any] = {"name": client.name, "kind": type(client).__name__, "protocols": list(client.protocols)}
    for name in ("template", "output", "env", "http2", "strategy", "max_turns", "parallel", "final_answer_only"):
        if hasattr(client, name):
            out[name] = _plain(getattr(client, name))
    return out


def describe_scenario(scenario: Any, config: Any) -> dict[str, Any]:
    from harness.drive.runner import trials_for

    scale = config.time_scale if config.time_scale is not None else scenario.time_scale
    return {
        "name": scenario.name,
        "format": scenario.version,
        "seed": scenario.seed,
        "trials": trials_for(scenario, config),
        "time_scale": scale,
        "transports": list(scenario.transports),
        "tls": scenario.tls,
        "concurrency": scenario.concurrency,
        "deadline_s": scenario.deadline(scale),
        "plan": _plain(scenario.plan(scale).to_data()),
        "client_plan": _plain(scenario.client_script(scale)),
        "toxics": _plain(scenario.toxics),
    }


def configuration(config: Any) -> dict[str, Any]:
    """Everything that decides which trials exist and what each one does, except the run id."""
    return {
        "scenarios": [describe_scenario(s, config) for s in config.scenarios],
        "clients": [describe_client(c) for c in config.clients],
        "trials": config.trials,
        "max_trials": config.max_trials,
        "time_scale": config.time_scale,
    }


def _abridged(value: Any) -> Any:
    """The configuration for reading: long strings (large-context prompts) as their digest."""
    if isinstance(value, dict):
        return {k: _abridged(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_abridged(v) for v in value]
    if isinstance(value, str) and len(value) > 2000:
        return f"{value[:200]}... [{len(value)} characters, sha256 {hashlib.sha256(value.encode()).hexdigest()[:16]}]"
    return value


def digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def config_digest(config: Any) -> str:
    return digest(configuration(config))


def default_run_id(config: Any) -> str:
    return "s" + config_digest(config)[:12]


def streamchaos_version() -> str:
    try:
        return metadata.version("streamchaos")
    except metadata.PackageNotFoundError:
        return "unknown"


def _package_json(path: Path) -> str | None:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError):
        return None


def _go_module_version(module: str) -> str | None:
    try:
        text = (ROOT / "harness" / "clients" / "go" / "go.mod").read_text(encoding="utf-8")
    except OSError:
        return None
    match = re.search(re.escape(module) + r"\s+(v\S+)", text)
    return match.group(1) if match else None


def _node_version() -> str | None:
    node = shutil.which("node")
    if not node:
        return None
    try:
        return subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def client_version(client: Any) -> str:
    """The versions a client's behaviour depends on, read from what is installed."""
    js = ROOT / "harness" / "clients" / "js" / "node_modules"
    name = client.name
    parts: list[str] = []
    if name.startswith("python-sdk"):
        try:
            parts.append(f"anthropic {metadata.version('anthropic')}")
        except metadata.PackageNotFoundError:
            parts.append("anthropic not installed")
    elif name.startswith("ts-sdk"):
        parts.append(f"@anthropic-ai/sdk {_package_json(js / '@anthropic-ai' / 'sdk' / 'package.json') or 'not installed'}")
        if "bun" in name:
            parts.append(f"bun {_package_json(js / 'bun' / 'package.json') or 'not installed'}")
        else:
            parts.append(f"node {_node_version() or 'not installed'}")
    elif name == "go-sdk":
        parts.append(f"anthropic-sdk-go {_go_module_version('github.com/anthropics/anthropic-sdk-go') or 'unknown'}")
    elif name == "claude-code":
        cc = ROOT / "harness" / "clients" / "claude_code" / "node_modules" / "@anthropic-ai" / "claude-code" / "package.json"
        parts.append(f"claude-code {_package_json(cc) or 'not installed'}")
    elif name == "curl":
        curl = shutil.which("curl")
        try:
            first = subprocess.run([curl, "--version"], capture_output=True, text=True, timeout=10).stdout.split("\n")[0] if curl else ""
        except (OSError, subprocess.TimeoutExpired):
            first = ""
        parts.append(" ".join(first.split()[:2]) or "curl not installed")
    elif type(client).__name__ == "CommandClient":
        parts.append(f"command {getattr(client, 'template', '')}")
    else:
        parts.append(f"streamchaos {streamchaos_version()}")
    return ", ".join(parts)


def manifest(config: Any, run_id: str, shard: Shard | None, assigned: Iterable[tuple[str, str, int]] | None = None) -> dict[str, Any]:
    from harness.drive.runner import trials_for

    grid = [[s.name, c.name, trials_for(s, config)] for s in config.scenarios for c in config.clients]
    out: dict[str, Any] = {
        "manifest_version": MANIFEST_VERSION,
        "run_id": run_id,
        "config_digest": config_digest(config),
        "streamchaos_version": streamchaos_version(),
        "client_versions": {c.name: client_version(c) for c in config.clients},
        "shard": {"index": shard.index, "count": shard.count} if shard else {"index": 1, "count": 1},
        "grid": grid,
        "configuration": _abridged(configuration(config)),
    }
    if shard is not None and assigned is not None:
        by_cell: dict[tuple[str, str], list[int]] = {}
        for s, c, i in sorted(assigned):
            by_cell.setdefault((s, c), []).append(i)
        out["assigned"] = [[s, c, ranges(v)] for (s, c), v in sorted(by_cell.items())]
        out["planned_cost_s"] = planned_load(config, shard)
    return out


def ranges(indices: Sequence[int]) -> list[list[int]]:
    """[0,1,2,5,6] -> [[0,2],[5,6]] (inclusive), to keep manifests short."""
    out: list[list[int]] = []
    for i in sorted(indices):
        if out and out[-1][1] == i - 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def expand(assigned: Sequence[Sequence[Any]]) -> set[tuple[str, str, int]]:
    return {(s, c, i) for s, c, spans in assigned for lo, hi in spans for i in range(lo, hi + 1)}


def write_manifest(directory: Path, data: Mapping[str, Any]) -> Path:
    path = directory / MANIFEST
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ShardError(f"{directory}: no {MANIFEST} (not a results directory written by `streamchaos run`)") from None
    except ValueError as error:
        raise ShardError(f"{path}: not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ShardError(f"{path}: must be a JSON object")
    for key in ("run_id", "config_digest", "streamchaos_version", "client_versions", "shard", "grid"):
        if key not in data:
            raise ShardError(f"{path}: missing key {key!r}")
    shard = data["shard"]
    if not (
        isinstance(shard, dict)
        and isinstance(shard.get("index"), int)
        and isinstance(shard.get("count"), int)
        and 1 <= shard["index"] <= shard["count"]
    ):
        raise ShardError(f'{path}: shard: must be {{"index": i, "count": n}} with 1 <= i <= n, not {shard!r}')
    return data


# -- the command line's side ------------------------------------------------------------------------


def shard_dirname(shard: Shard) -> str:
    return f"shard-{shard.index}-of-{shard.count}"


def shard_of(args: Any) -> Shard | None:
    """--shard i/n, or --shard-from-env (STREAMCHAOS_SHARD or JOB_COMPLETION_INDEX), or None."""
    text = getattr(args, "shard", None)
    if text and getattr(args, "shard_from_env", False):
        raise ShardError("--shard and --shard-from-env: give one of them")
    if text:
        return parse(text)
    if getattr(args, "shard_from_env", False):
        return from_env(count=getattr(args, "shard_count", None))
    return None


def prepare(args: Any, config: Any) -> Any:
    """The run's configuration narrowed to this shard, with the shard's run id; the manifest is
    written before any trial runs, so even an interrupted shard describes itself."""
    shard = shard_of(args)
    if shard is not None and not getattr(args, "run_id", None):
        config = dataclasses.replace(config, run_id=default_run_id(config))
    assigned = select(config, shard) if shard is not None else None
    if shard is not None and assigned is not None:
        # results/shard-I-of-N/<run id>/: shards of one run may share a machine and a --results
        config = dataclasses.replace(config, only=assigned, results_dir=config.results_dir / shard_dirname(shard))
    directory = config.results_dir / config.run_id
    data = manifest(config, config.run_id, shard, assigned)
    if (directory / MANIFEST).exists():
        old = read_manifest(directory)
        sharded = old["shard"]["count"] > 1 or data["shard"]["count"] > 1  # an unsharded run may resume with other options
        if sharded and (old["config_digest"] != data["config_digest"] or old["shard"] != data["shard"]):
            raise ShardError(
                f"{directory}: holds results of another configuration or shard (manifest digest "
                f"{old['config_digest'][:12]}, shard {old['shard']['index']}/{old['shard']['count']}); "
                f"this run is {data['config_digest'][:12]}, shard {data['shard']['index']}/{data['shard']['count']}: "
                "choose another --run-id or --results"
            )
    directory.mkdir(parents=True, exist_ok=True)
    write_manifest(directory, data)
    return config
