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
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import limits, processes
from harness.clients.adapter import ClientAdapter, Launch
from harness.clients.launch import run_client
from harness.drive import rundir
from harness.drive.simulator_process import SimulatorProcess
from harness.drive.trial import TrialRecord, build
from harness.scenario import Scenario

RESULTS = Path(__file__).resolve().parent.parent / "results"
if not (RESULTS.parent / "pyproject.toml").exists():  # issue 14: installed from a wheel, results go where it runs
    RESULTS = Path.cwd() / "results"


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
    only: frozenset[tuple[str, str, int]] | None = None  # run just these (scenario, client, trial): a shard or a sequential batch


@dataclass
class Progress:
    total: int = 0
    done: int = 0
    on_update: Callable[[Progress, TrialRecord | None], None] | None = None

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
            processes.stop(group=pgid, first=signal.SIGKILL)

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
            processes.stop(group=pgid, first=signal.SIGKILL)


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
    if config.time_scale is not None and not (
        isinstance(config.time_scale, (int, float))
        and not isinstance(config.time_scale, bool)
        and limits.MIN_TIME_SCALE <= config.time_scale <= limits.MAX_TIME_SCALE
    ):
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
    if scenario.api not in client.apis:
        return f"{client.name} speaks the {', '.join(client.apis)} API; the scenario's api is {scenario.api}"
    _, unspoken = transport_for(scenario, client)
    if unspoken:
        return unspoken
    if scenario.needs_toxiproxy:
        from harness.network.toxiproxy import available

        ok, missing = available()
        if not ok:
            return missing
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
    progress.total = _pending_count(config, done)
    processes.sweep_temp_dirs()
    watchdog = processes.Watchdog().start()
    active = _Active(watchdog=watchdog)
    toxiproxy = None
    lab_session = None
    try:
        if any(s.needs_lab for s in config.scenarios):
            from harness.network.lab.trial import LabSession

            lab_session = LabSession().__enter__()
        for scenario in config.scenarios:

            def pending(client: ClientAdapter, scenario: Scenario = scenario) -> Iterable[int]:  # lazily: counts may be large
                return (
                    i
                    for i in range(trials_for(scenario, config))
                    if (scenario.name, client.name, i) not in done and (config.only is None or (scenario.name, client.name, i) in config.only)
                )

            able = []
            for client in config.clients:
                reason = skip_reason(scenario, client) or _lab_skip_reason(scenario, config, lab_session)
                if not reason:
                    able.append(client)
                    continue
                for index in pending(client):
                    record = _skipped(run_id, scenario, client, index, reason)
                    _lab_ci_error(record, scenario)
                    recorder.append(record)
                    progress.advance(record)
            runnable: Iterator[tuple[ClientAdapter, int]] = ((client, index) for client in able for index in pending(client))
            first = next(runnable, None)
            if first is None:
                continue
            runnable = itertools.chain([first], runnable)
            if scenario.needs_toxiproxy and toxiproxy is None:
                from harness.network.toxiproxy import ToxiproxyServer

                toxiproxy = ToxiproxyServer()
                try:
                    toxiproxy.start()
                finally:
                    if toxiproxy.pid:
                        watchdog.group(toxiproxy.pid)  # its own session: pgid == pid
            journal = rundir.segment_journal(directory, scenario.name)
            env = None
            if scenario.needs_lab:
                from harness.network.lab.trial import simulator_env

                env = simulator_env()
            with SimulatorProcess(["--seed", str(scenario.seed), "--journal", str(journal)], env=env) as simulator:
                simulator_pid = simulator.process.pid if simulator.process is not None else None
                if simulator_pid:
                    watchdog.group(simulator_pid)  # its own session: pgid == pid
                simulator.lab = lab_session
                _run_scenario(config, run_id, scenario, runnable, simulator, toxiproxy, recorder, progress, active, journal.name)
            if simulator_pid:
                watchdog.ungroup(simulator_pid)  # stopped and reaped
    except BaseException:
        active.kill_all()
        raise
    finally:
        if toxiproxy is not None:
            pid = toxiproxy.pid
            toxiproxy.stop()
            if pid:
                watchdog.ungroup(pid)
        watchdog.close()
        if lab_session is not None:
            lab_session.__exit__(None, None, None)
    _point_latest(config.results_dir, directory)
    return directory


def _pending_count(config: RunConfig, done: set[tuple[str, str, int]]) -> int:
    """Trials still to run, counted without listing the grid (a large --trials costs no memory)."""
    if config.only is not None:
        trials = {s.name: trials_for(s, config) for s in config.scenarios}
        clients = {c.name for c in config.clients}
        return sum(1 for key in config.only if key not in done and key[1] in clients and 0 <= key[2] < trials.get(key[0], 0))
    return sum(
        trials_for(s, config) - len({k for k in done if k[0] == s.name and k[1] == c.name and 0 <= k[2] < trials_for(s, config)})
        for s in config.scenarios
        for c in config.clients
    )


def _run_scenario(
    config: RunConfig,
    run_id: str,
    scenario: Scenario,
    trials: Iterable[tuple[ClientAdapter, int]],
    simulator: SimulatorProcess,
    toxiproxy: Any,
    recorder: Recorder,
    progress: Progress,
    active: _Active,
    journal: str = "",
) -> None:
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


def _run_trial_safely(
    run_id: str,
    scenario: Scenario,
    client: ClientAdapter,
    index: int,
    simulator: SimulatorProcess,
    toxiproxy: Any,
    time_scale: float,
    active: _Active,
) -> TrialRecord:
    """A trial the harness could not run (an adapter or toxiproxy failure) is recorded as an
    ``error``, with the reason; it does not stop the other trials."""
    try:
        return _run_trial(run_id, scenario, client, index, simulator, toxiproxy, time_scale, active)
    except Exception as error:
        record = _skipped(run_id, scenario, client, index, "")
        record.outcome, record.skipped = "error", None
        record.key = trial_key(run_id, scenario.name, client.name, index)
        record.error_line = f"harness could not run the trial: {type(error).__name__}: {error}"[:500]
        return record


def _run_trial(
    run_id: str,
    scenario: Scenario,
    client: ClientAdapter,
    index: int,
    simulator: SimulatorProcess,
    toxiproxy: Any,
    time_scale: float,
    active: _Active,
) -> TrialRecord:
    if active.stopping.is_set():
        raise KeyboardInterrupt
    key = trial_key(run_id, scenario.name, client.name, index)
    tls, _ = transport_for(scenario, client)
    session = getattr(simulator, "lab", None) if scenario.needs_lab else None
    lab = session.open(scenario.network, key) if session is not None else None  # the trial's namespaces (harness/lab)
    monitor = None
    lab_extra: dict = {}
    fired_steps: list = []
    try:
        lane = simulator.open_lane(key, **({"host": _lab_host()} if lab else {}))
    except BaseException:
        if session is not None and lab is not None:
            session.close(lab)
        raise
    proxy = timeline = None
    workdir = processes.trial_dir()
    if active.watchdog is not None:
        active.watchdog.directory(workdir)
    pgid: list[int] = []
    try:
        port = lane
        if scenario.needs_toxiproxy and toxiproxy is not None:
            from harness.network.toxiproxy.timeline import start_timeline

            if lab is not None:
                proxy = toxiproxy.create_proxy(key, upstream=f"{_lab_host()}:{lane}", listen=f"{_lab_host()}:0")
            else:
                proxy = toxiproxy.create_proxy(key, upstream_port=lane)
            port = proxy.listen_port
            timeline = start_timeline(toxiproxy, proxy, scenario.toxics, time_scale, simulator, key)
        base_url = simulator.lane_url(port, tls)
        if lab is not None:
            from harness.network.lab.netns import Monitor
            from harness.network.lab.trial import base_url as lab_url

            base_url = lab_url(port, tls)
            monitor = Monitor(lab, max_duration_s=scenario.deadline(time_scale) + 30)
        deadline = scenario.deadline(time_scale)
        invocation = client.invocation(
            Launch(base_url, key, simulator.ca_file if tls else None, scenario.client_script(time_scale), deadline, workdir, time_scale)
        )
        argv, env = invocation.argv, invocation.env
        if lab is not None:
            from harness.network.lab.trial import lab_env

            argv, env = lab.wrap(argv), lab_env(env)

        def started(group: int) -> None:
            pgid.append(group)
            active.add(group)
            if monitor is not None:
                monitor.start()

        result = run_client(argv, env, deadline, cwd=invocation.cwd, on_start=started, stdin=invocation.stdin)
    finally:
        # Each step is tried even when one before it fails (toxiproxy or the simulator gone):
        # the temp directory is removed on every path.
        def stop_timeline():
            if timeline is not None:
                fired_steps[:] = timeline.stop()

        def forget_workdir() -> None:
            if active.watchdog is not None:
                active.watchdog.undirectory(workdir)

        def stop_monitor():
            nonlocal lab_extra
            if monitor is not None and lab is not None:
                from harness.network.lab.trial import lab_record

                lab_extra = lab_record(lab, monitor.stop(), port)

        _cleanup_steps(
            lambda: active.discard(pgid[0] if pgid else None),
            stop_timeline,
            stop_monitor,
            lambda: simulator.close_lane(lane),
            lambda: proxy is not None and toxiproxy.delete_proxy(proxy),
            lambda: session is not None and lab is not None and session.close(lab),
            lambda: shutil.rmtree(workdir, ignore_errors=True),
            forget_workdir,
        )
    if active.stopping.is_set():  # interrupted: this trial's result is not a result
        raise KeyboardInterrupt
    records = simulator.journal(key, wait_closed=True, timeout_s=5.0)
    record = build(run_id, scenario.name, client.name, index, key, result, invocation.output, records, expected_answers(scenario, client))
    record.extra.update({"tls": tls, "base_url": base_url, "time_scale": time_scale})
    _count_outside_faults(record, lab_extra, fired_steps)
    return record


def _cleanup_steps(*steps: Callable[[], Any]) -> None:
    """Run every step; re-raise the first failure once all have run."""
    first: BaseException | None = None
    for step in steps:
        try:
            step()
        except BaseException as error:
            first = first or error
    if first is not None:
        raise first


def _lab_host() -> str:
    from harness.network.lab.netns import LAB_HOST

    return LAB_HOST


def _count_outside_faults(record: TrialRecord, lab_extra: dict, fired_steps: list) -> None:
    """Lab events and toxiproxy steps applied count as faults (harness/network/lab/trial.py)."""
    if not lab_extra and not fired_steps:
        return
    from harness.network.lab import trial as lab_trial

    record.extra.update(lab_extra)
    if fired_steps:
        record.extra["toxic_steps"] = lab_trial.toxic_steps(fired_steps)
    lab_trial.count_outside_faults(record)
    if record.time_to_recover_ms is None:
        record.time_to_recover_ms = lab_trial.time_to_recover_ms(record)


def _lab_skip_reason(scenario: Scenario, config: RunConfig, session: Any) -> str | None:
    """A [network] scenario needs the lab, and runs in real time."""
    if not scenario.needs_lab:
        return None
    if config.time_scale is not None and config.time_scale != 1.0:
        return f"a [network] scenario runs in real time (kernel timers cannot be scaled); --time-scale {config.time_scale:g} refused"
    if session is None or not session.ok:
        return getattr(session, "reason", "") or "network lab unavailable"
    return None


def _lab_ci_error(record: TrialRecord, scenario: Scenario) -> None:
    """Under CI=true a lab scenario that cannot run is an error, not a skip."""
    from harness.network.lab.trial import in_ci

    if scenario.needs_lab and in_ci() and record.skipped and "network lab" in record.skipped:
        record.outcome, record.error_line, record.skipped = "error", record.skipped, None


def _skipped(run_id: str, scenario: Scenario, client: ClientAdapter, index: int, reason: str) -> TrialRecord:
    return TrialRecord(
        run_id=run_id,
        scenario=scenario.name,
        client=client.name,
        trial=index,
        key="",
        outcome="skipped",
        exit_code=None,
        hung=False,
        elapsed_s=0.0,
        error_line=None,
        answers_expected=0,
        answers_intact=0,
        integrity=[],
        faults_fired=0,
        attempts=[],
        backoff_ms=[],
        time_to_recover_ms=None,
        bytes_out=0,
        bytes_needed=0,
        events_out=0,
        connections=0,
        skipped=reason,
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
