"""Issue 11: resume is idempotent, a run directory has one writer, temp directories never stay.

- a second ``streamchaos run`` with the same --run-id while the first runs: a clear error (exit 2)
  naming the holder's pid, and every trial runs once;
- a line of trials.jsonl cut by a crash is repaired on resume; each run segment has a journal of
  its own (sequence numbers never repeat within a file);
- the simulator dying mid-run leaves no temp directory; a sweep at start removes only the
  directories whose owner pid is dead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from harness import cli, processes, scenario
from harness.clients import registry
from harness.drive import rundir, runner
from tests.support import CLI, KNOWN, scenario_toml

ROOT = Path(__file__).resolve().parent.parent
NEVER_RETRY = f"{KNOWN} never-retry"


@pytest.fixture(autouse=True)
def own_tmp(tmp_path, monkeypatch):
    """Temp directories of the runs in this test go to a directory of the test's own."""
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    monkeypatch.setenv("TMPDIR", str(private))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    return private


def small_scenario(tmp_path: Path, trials: int = 3) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(scenario_toml("small", seed=5, trials=trials, words=20, deltas=None, extra="deadline_s = 20.0"))
    return path


def journal_is_clean(path: Path) -> list[dict]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    seqs = [r["seq"] for r in records]
    assert len(seqs) == len(set(seqs)), f"{path.name}: duplicate sequence numbers"
    conns = [r["conn"] for r in records if r["kind"] == "connection"]
    assert len(conns) == len(set(conns)), f"{path.name}: duplicate connection ids"
    return records


def test_a_torn_line_is_repaired_and_each_segment_has_its_own_journal(tmp_path):
    item = scenario.load(small_scenario(tmp_path))
    client = registry.command_client(NEVER_RETRY, name="known")
    config = runner.RunConfig((item,), (client,), results_dir=tmp_path / "results", run_id="torn", workers=2)
    directory = runner.run(config)
    trials = directory / "trials.jsonl"
    lines = trials.read_text().splitlines()
    trials.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])  # a crash mid-line
    runner.run(config)
    text = trials.read_text()
    assert text.endswith("\n")
    records = [json.loads(line) for line in text.splitlines()]  # every line parses: the torn one is gone
    assert sorted(r["trial"] for r in records) == [0, 1, 2]
    first, second = directory / "journal-small.jsonl", directory / "journal-small.segment-2.jsonl"
    assert first.exists() and second.exists()
    assert len([r for r in journal_is_clean(second) if r["kind"] == "request"]) == 1  # only the trial run again
    journal_is_clean(first)
    rerun = [r for r in records if r["extra"].get("journal") == second.name]
    assert len(rerun) == 1
    runner.run(config)  # nothing left to do: no new segment, no new record
    assert trials.read_text() == text
    assert not (directory / "journal-small.segment-3.jsonl").exists()


def test_repair_torn_tail_keeps_whole_lines(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a":1}\n{"b":2}\n{"c":')
    assert rundir.repair_torn_tail(path) == 5
    assert path.read_bytes() == b'{"a":1}\n{"b":2}\n'
    assert rundir.repair_torn_tail(path) == 0
    path.write_bytes(b'{"only":')
    rundir.repair_torn_tail(path)
    assert path.read_bytes() == b""


def test_a_second_writer_with_the_same_run_id_is_refused(tmp_path, capsys):
    scenario_file = small_scenario(tmp_path, trials=2)
    slow = f"{sys.executable} {Path(__file__).parent / 'clients' / 'sleepy_client.py'} 2"
    args = [
        "run",
        "--scenarios",
        str(scenario_file),
        "--client-cmd",
        slow,
        "--client-name",
        "c",
        "--results",
        str(tmp_path / "results"),
        "--run-id",
        "shared",
    ]
    command = [*CLI, *args, "--workers", "2"]
    with open(tmp_path / "first.log", "wb") as log:
        first = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        lock = tmp_path / "results" / "shared" / ".lock"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (lock.exists() and lock.read_text().strip() == str(first.pid)):
            time.sleep(0.05)
        assert lock.read_text().strip() == str(first.pid)
        code = cli.main(args)  # the same run, a second writer
        assert code == 2
        err = " ".join(capsys.readouterr().err.split())
        assert "in use by another streamchaos run" in err and f"pid {first.pid}" in err
        assert first.wait(60) == 0, (tmp_path / "first.log").read_text()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)
    records = runner.load_records(tmp_path / "results" / "shared")
    assert sorted(r["trial"] for r in records) == [0, 1]  # each trial once
    # the lock is free again once its holder is gone
    with rundir.RunLock(tmp_path / "results" / "shared"):
        pass


def test_the_simulator_dying_mid_run_leaves_no_temp_directory(tmp_path, own_tmp):
    item = scenario.load(small_scenario(tmp_path, trials=2))
    killer = textwrap.dedent(f"""
        import os, signal, time
        for entry in os.listdir("/proc"):
            try:
                command = open(f"/proc/{{entry}}/cmdline", "rb").read().replace(b"\\0", b" ").decode()
            except (OSError, ValueError):
                continue
            if " serve " in command and {str(tmp_path / "results")!r} in command:
                os.kill(int(entry), signal.SIGKILL)
        time.sleep(0.3)
        raise SystemExit(1)
    """)
    script = tmp_path / "killer.py"
    script.write_text(killer)
    client = registry.command_client(f"{sys.executable} {script}", name="killer", output="text")
    directory = runner.run(runner.RunConfig((item,), (client,), results_dir=tmp_path / "results", run_id="dies", workers=2))
    records = runner.load_records(directory)
    assert len(records) == 2 and all(r["outcome"] == "error" for r in records), records
    assert not list(own_tmp.glob("streamchaos-trial-*")), list(own_tmp.iterdir())


def test_the_sweep_removes_only_directories_of_dead_owners(own_tmp):
    dead = subprocess.Popen(["true"])
    dead.wait()
    mine = processes.trial_dir()
    alive = own_tmp / f"{processes.TRIAL_PREFIX}{os.getppid()}-live"
    gone = own_tmp / f"{processes.TRIAL_PREFIX}{dead.pid}-dead"
    old = own_tmp / f"{processes.TRIAL_PREFIX}abcdef"  # a name without a pid: its owner is unknown
    for path in (alive, gone, old):
        path.mkdir()
        (path / "plan.json").write_text("{}")
    removed = processes.sweep_temp_dirs(own_tmp)
    assert removed == [gone]
    assert mine.exists() and alive.exists() and old.exists() and not gone.exists()
    assert mine.name.startswith(f"{processes.TRIAL_PREFIX}{os.getpid()}-")


def test_the_watchdog_cleans_up_after_a_harness_killed_with_sigkill(tmp_path, own_tmp):
    """A process that registers a group and a directory with its watchdog, then dies by SIGKILL:
    the group is killed and the directory removed."""
    program = textwrap.dedent("""
        import subprocess, sys, time
        from harness import processes
        watchdog = processes.Watchdog().start()
        child = subprocess.Popen(["sleep", "60"], start_new_session=True)
        watchdog.group(child.pid)
        directory = processes.trial_dir()
        watchdog.directory(directory)
        print(child.pid, directory, watchdog.pid, flush=True)
        time.sleep(60)
    """)
    harness = subprocess.Popen([sys.executable, "-c", program], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        pid, directory, watchdog = harness.stdout.readline().split()
        assert Path(directory).is_dir()
        harness.kill()
        harness.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (processes.pid_alive(int(watchdog)) or Path(directory).exists()):
            time.sleep(0.05)
        assert not Path(directory).exists()
        assert not processes.pid_alive(int(watchdog))
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] if Path(f"/proc/{pid}").exists() else "gone"
        assert state in ("gone", "Z"), state
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait(10)
        harness.stdout.close()
