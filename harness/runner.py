"""Trials x scenarios x clients: parallel workers, deadlines, nothing left behind, resumable.

Each (scenario, client) gets the scenario's fault plan loaded afresh; each trial gets its own API
key and its own lane (a port of the simulator's), so the journal and the fault plan can tell
trials apart with no help from the client. The simulator's whole journal is kept beside the
results (``journal-<scenario>.jsonl``). Every record is appended to ``trials.jsonl`` and
synced as soon as its trial ends: a crash or Ctrl-C loses nothing, and running again with the
same run id resumes where it stopped.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from . import limits, processes, rundir
from .clients.contract import kill_group, run_client
from .clients.registry import ClientAdapter, Trial
from .scenario import Scenario
from .simulator_process import SimulatorProcess
from .trial import TrialRecord, build

RESULTS = Path(__file__).resolve().parent.parent / "results"


@dataclass(frozen=True)
class RunConfig:
    scenarios: tuple[Scenario, ...]
    clients: tuple[ClientAdapter, ...]
    results_dir: Path = RESULTS
    run_id: str = ""
    trials: int | None = None  # override every scenario's default
    max_trials: int | None = None  # cap every scenario's default
    workers: int = max(2, os.cpu_count() or 2)
    time_scale: float | None = None  # override every scenario's own


@dataclass
class Progress:
    total: int = 0
    done: int = 0
    on_update: Callable[["Progress", TrialRecord | None], None] | None = None

    def advance(self, record: TrialRecord | None) -> None:
        self.done += 1
        if self.on_update:
            self.on_update(self, record)


@dataclass
class _Active:
    """Process groups of clients running now, so an interrupt kills them all."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    groups: set[int] = field(default_factory=set)
    stopping: threading.Event = field(default_factory=threading.Event)
    watchdog: processes.Watchdog | None = None  # kills the groups if the harness dies unannounced

    def add(self, pgid: int) -> None:
        with self.lock:
            self.groups.add(pgid)
        if self.watchdog is not None:
            self.watchdog.group(pgid)
        if self.stopping.is_set():
            kill_group(pgid, signal.SIGKILL)

    def discard(self, pgid: int | None) -> None:
        with self.lock:
            self.groups.discard(pgid)
        if self.watchdog is not None and pgid is not None:
            self.watchdog.ungroup(pgid)

    def kill_all(self) -> None:
        self.stopping.set()
        with self.lock:
            groups = list(self.groups)
        for pgid in groups:
            kill_group(pgid, signal.SIGKILL)


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def trials_for(scenario: Scenario, config: RunConfig) -> int:
    count = config.trials if config.trials is not None else scenario.trials
    return min(count, config.max_trials) if config.max_trials is not None else count


def check_config(config: RunConfig) -> None:
    """Numbers a caller of :func:`run` gives (the CLI checks them too): a ValueError naming them."""
    for name in ("trials", "max_trials"):
        value = getattr(config, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limits.MAX_TRIALS):
            raise ValueError(f"{name} must be a whole number between 1 and {limits.MAX_TRIALS}, not {value!r}")
    if isinstance(config.workers, bool) or not isinstance(config.workers, int) or not 1 <= config.workers <= limits.MAX_WORKERS:
        raise ValueError(f"workers must be a whole number between 1 and {limits.MAX_WORKERS}, not {config.workers!r}")
    if config.time_scale is not None and not (isinstance(config.time_scale, (int, float)) and not isinstance(config.time_scale, bool)
                                              and limits.MIN_TIME_SCALE <= config.time_scale <= limits.MAX_TIME_SCALE):
        raise ValueError(f"time_scale must be a number between {limits.MIN_TIME_SCALE:g} and {limits.MAX_TIME_SCALE:g}, not {config.time_scale!r}")


class Recorder:
    """Append-only trials.jsonl, one fsync'd line per trial; reads back what is there."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "trials.jsonl"
        self._lock = threading.Lock()

    def existing(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        records = []
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                line = line.strip()
                if not line:
                    continue
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue  # a line cut by a crash: that trial runs again
        return records

    def append(self, record: TrialRecord) -> None:
        line = json.dumps(record.to_json(), separators=(",", ":")) + "\n"
        with self._lock, open(self.path, "a+b") as handle:
            if handle.tell() > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":  # a line cut by a crash: keep it apart
                    line = "\n" + line
            handle.write(line.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())


def transport_for(scenario: Scenario, client: ClientAdapter) -> tuple[bool, str | None]:
    """(use TLS, reason to skip): TLS as the scenario says when the client speaks an allowed
    protocol over it; every client speaks HTTP/1.1 in cleartext as a fallback."""
    if client.speaks(scenario.transports):
        return scenario.tls, None
    if "http/1.1" in scenario.transports:
        return False, None
    return scenario.tls, f"{client.name} speaks {', '.join(client.protocols)}; the scenario needs {', '.join(scenario.transports)}"


def skip_reason(scenario: Scenario, client: ClientAdapter) -> str | None:
    installed, why = client.installed()
    if not installed:
        return why
    _, why = transport_for(scenario, client)
    if why:
        return why
    if scenario.needs_toxiproxy:
        from .toxiproxy import available

        ok, why = available()
        if not ok:
            return why
    return None


def expected_answers(scenario: Scenario, client: ClientAdapter) -> int:
    turns = scenario.turns[: client.max_turns] if client.max_turns else scenario.turns
    if client.final_answer_only:
        return 1
    return sum(t.parallel if client.parallel else 1 for t in turns)


def run(config: RunConfig, progress: Progress | None = None) -> Path:
    """Run everything not yet recorded under results/<run_id>; return that directory.

    Raises ValueError for a run id that would leave ``results_dir`` or numbers out of bounds, and
    :class:`rundir.RunLocked` if another run writes to the same directory now."""
    check_config(config)
    run_id = config.run_id or new_run_id()
    directory = limits.check_run_id(run_id, config.results_dir)
    with rundir.RunLock(directory):
        return _run_locked(config, run_id, directory, progress)


def _run_locked(config: RunConfig, run_id: str, directory: Path, progress: Progress | None) -> Path:
    recorder = Recorder(directory)
    rundir.repair_torn_tail(recorder.path)
    for earlier in directory.glob("journal-*.jsonl"):  # a segment whose simulator was killed mid-line
        rundir.repair_torn_tail(earlier)
    done = {(r["scenario"], r["client"], r["trial"]) for r in recorder.existing()}
    progress = progress or Progress()
    progress.total = sum(trials_for(s, config) - len({k for k in done if k[0] == s.name and k[1] == c.name and 0 <= k[2] < trials_for(s, config)})
                         for s in config.scenarios for c in config.clients)
    processes.sweep_temp_dirs()
    active = _Active(watchdog=processes.Watchdog().start())
    toxiproxy = None
    try:
        for scenario in config.scenarios:
            def pending(client: ClientAdapter, scenario: Scenario = scenario) -> Iterable[int]:  # lazily: counts may be large
                return (i for i in range(trials_for(scenario, config)) if (scenario.name, client.name, i) not in done)

            able = []
            for client in config.clients:
                reason = skip_reason(scenario, client)
                if not reason:
                    able.append(client)
                    continue
                for index in pending(client):
                    record = _skipped(run_id, scenario, client, index, reason)
                    recorder.append(record)
                    progress.advance(record)
            runnable = ((client, index) for client in able for index in pending(client))
            first = next(runnable, None)
            if first is None:
                continue
            runnable = itertools.chain([first], runnable)
            if scenario.needs_toxiproxy and toxiproxy is None:
                from .toxiproxy import ToxiproxyServer

                toxiproxy = ToxiproxyServer()
                try:
                    toxiproxy.start()
                finally:
                    if toxiproxy.pid:
                        active.watchdog.group(toxiproxy.pid)  # its own session: pgid == pid
            journal = rundir.segment_journal(directory, scenario.name)
            with SimulatorProcess(["--seed", str(scenario.seed), "--journal", str(journal)]) as simulator:
                simulator_pid = simulator.process.pid if simulator.process is not None else None
                if simulator_pid:
                    active.watchdog.group(simulator_pid)  # its own session: pgid == pid
                _run_scenario(config, run_id, scenario, runnable, simulator, toxiproxy, recorder, progress, active, journal.name)
            if simulator_pid:
                active.watchdog.ungroup(simulator_pid)  # stopped and reaped
    except BaseException:
        active.kill_all()
        raise
    finally:
        if toxiproxy is not None:
            pid = toxiproxy.pid
            toxiproxy.stop()
            if pid:
                active.watchdog.ungroup(pid)
        active.watchdog.close()
    _point_latest(config.results_dir, directory)
    return directory


def _run_scenario(config: RunConfig, run_id: str, scenario: Scenario, trials: Iterable[tuple[ClientAdapter, int]], simulator: SimulatorProcess,
                  toxiproxy: Any, recorder: Recorder, progress: Progress, active: _Active, journal: str = "") -> None:
    """Every pending (client, trial) of one scenario under one plan load: trials are told apart by
    key and lane, so clients can share the simulator and run at once. Trials are submitted as
    workers free up (at most twice the parallelism queued), so a large trial count costs no memory."""
    time_scale = config.time_scale if config.time_scale is not None else scenario.time_scale
    simulator.load_plan(scenario.plan(time_scale).to_data())
    parallelism = max(config.workers, scenario.concurrency)
    queue = iter(trials)
    with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix=f"trial-{scenario.name}") as pool:
        futures: set = set()
        try:
            while True:
                for client, index in itertools.islice(queue, max(0, 2 * parallelism - len(futures))):
                    futures.add(pool.submit(_run_trial_safely, run_id, scenario, client, index, simulator, toxiproxy, time_scale, active))
                if not futures:
                    break
                finished, futures = wait(futures, return_when=FIRST_COMPLETED)
                for future in finished:
                    record = future.result()
                    if journal:
                        record.extra["journal"] = journal
                    recorder.append(record)
                    progress.advance(record)
        except BaseException:
            active.kill_all()
            for future in futures:
                future.cancel()
            raise


def trial_key(run_id: str, scenario: str, client: str, index: int) -> str:
    raw = f"sc-{run_id}-{scenario}-{client}-{index}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", raw)


def _run_trial_safely(run_id: str, scenario: Scenario, client: ClientAdapter, index: int, simulator: SimulatorProcess, toxiproxy: Any,
                      time_scale: float, active: _Active) -> TrialRecord:
    """A trial the harness could not run (an adapter or toxiproxy failure) is recorded as an
    ``error``, with the reason; it does not stop the other trials."""
    try:
        return _run_trial(run_id, scenario, client, index, simulator, toxiproxy, time_scale, active)
    except Exception as error:  # noqa: BLE001 - recorded, never swallowed silently
        record = _skipped(run_id, scenario, client, index, "")
        record.outcome, record.skipped = "error", None
        record.key = trial_key(run_id, scenario.name, client.name, index)
        record.error_line = f"harness could not run the trial: {type(error).__name__}: {error}"[:500]
        return record


def _run_trial(run_id: str, scenario: Scenario, client: ClientAdapter, index: int, simulator: SimulatorProcess, toxiproxy: Any,
               time_scale: float, active: _Active) -> TrialRecord:
    if active.stopping.is_set():
        raise KeyboardInterrupt
    key = trial_key(run_id, scenario.name, client.name, index)
    tls, _ = transport_for(scenario, client)
    lane = simulator.open_lane(key)
    proxy = timeline = None
    workdir = processes.trial_dir()
    if active.watchdog is not None:
        active.watchdog.directory(workdir)
    pgid: list[int] = []
    try:
        port = lane
        if scenario.needs_toxiproxy and toxiproxy is not None:
            from .toxic_timeline import start_timeline

            proxy = toxiproxy.create_proxy(key, upstream_port=lane)
            port = proxy.listen_port
            timeline = start_timeline(toxiproxy, proxy, scenario.toxics, time_scale, simulator, key)
        base_url = simulator.lane_url(port, tls)
        deadline = scenario.deadline(time_scale)
        invocation = client.invocation(Trial(base_url, key, simulator.ca_file if tls else None, scenario.client_plan(time_scale), deadline, workdir))

        def started(group: int) -> None:
            pgid.append(group)
            active.add(group)

        result = run_client(invocation.argv, invocation.env, deadline, cwd=invocation.cwd, on_start=started, stdin=invocation.stdin)
    finally:
        # Each step is tried even when one before it fails (toxiproxy or the simulator gone):
        # the temp directory is removed on every path.
        _cleanup_steps(
            lambda: active.discard(pgid[0] if pgid else None),
            lambda: timeline is not None and timeline.stop(),
            lambda: simulator.close_lane(lane),
            lambda: proxy is not None and toxiproxy.delete_proxy(proxy),
            lambda: shutil.rmtree(workdir, ignore_errors=True),
            lambda: active.watchdog is not None and active.watchdog.undirectory(workdir),
        )
    if active.stopping.is_set():  # interrupted: this trial's result is not a result
        raise KeyboardInterrupt
    records = simulator.journal(key, wait_closed=True, timeout_s=5.0)
    record = build(run_id, scenario.name, client.name, index, key, result, invocation.output, records, expected_answers(scenario, client))
    record.extra.update({"tls": tls, "base_url": base_url, "time_scale": time_scale})
    return record


def _cleanup_steps(*steps: Callable[[], Any]) -> None:
    """Run every step; re-raise the first failure once all have run."""
    first: BaseException | None = None
    for step in steps:
        try:
            step()
        except BaseException as error:  # noqa: BLE001 - re-raised below
            first = first or error
    if first is not None:
        raise first


def _skipped(run_id: str, scenario: Scenario, client: ClientAdapter, index: int, reason: str) -> TrialRecord:
    return TrialRecord(
        run_id=run_id, scenario=scenario.name, client=client.name, trial=index, key="", outcome="skipped", exit_code=None, hung=False,
        elapsed_s=0.0, error_line=None, answers_expected=0, answers_intact=0, integrity=[], faults_fired=0, attempts=[], backoff_ms=[],
        time_to_recover_ms=None, bytes_out=0, bytes_needed=0, events_out=0, connections=0, skipped=reason,
    )


def _point_latest(results: Path, directory: Path) -> None:
    latest = results / "latest"
    try:
        if latest.is_symlink() or latest.exists():
            latest.unlink()
        latest.symlink_to(directory.name)
    except OSError:
        pass


def load_records(directory: Path) -> list[dict[str, Any]]:
    return Recorder(directory).existing()


def only_latest(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """If a trial was recorded twice (a resumed run), keep its last record."""
    seen: dict[tuple[str, str, int], dict[str, Any]] = {}
    for record in records:
        seen[(record["scenario"], record["client"], record["trial"])] = record
    return list(seen.values())
