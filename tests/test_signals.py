"""Issue 11: kill -9, SIGHUP, SIGTERM or SIGINT at a random (seeded) moment of a real run.

The run: ``streamchaos run`` as a process of its own, the network_blip scenario (real toxiproxy
between client and simulator) and a slow ``--client-cmd`` client that leaves a grandchild in its
process group. Afterwards: the conventional exit status, no process of the run (every process
that carries the run's marker in its environment: harness, watchdog, simulator, toxiproxy,
clients and their children), no ``streamchaos-trial-*`` directory; and a resume completes with
exactly the expected trials, once each, and journals whose every line parses with unique
sequence numbers.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.support import CLI, require

ROOT = Path(__file__).resolve().parent.parent
SLEEPY = Path(__file__).parent / "clients" / "sleepy_client.py"
TRIALS = 2
SEED = 11  # the moments are random but reproducible


def marked_processes(marker: str) -> list[tuple[int, str]]:
    """Live (not zombie) processes whose environment holds ``marker``: (pid, command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() not in (entry / "environ").read_bytes():
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if state != "Z":
            found.append((int(entry.name), command))
    return found


def wait_until(predicate, timeout_s: float, step_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step_s)
    return predicate()


def start_run(tmp_path: Path, marker: str, sleep_s: float, log: Path, time_scale: float, workers: int) -> subprocess.Popen:
    env = {**os.environ, "SCTEST_MARK": marker, "TMPDIR": str(tmp_path / "tmp"), "PYTHONPATH": str(ROOT)}
    command = [
        *CLI,
        "run",
        "--scenarios",
        "network_blip",
        "--client-cmd",
        f"{sys.executable} {SLEEPY} {sleep_s}",
        "--client-name",
        "sleepy",
        "--trials",
        str(TRIALS),
        "--workers",
        str(workers),
        "--time-scale",
        str(time_scale),
        "--results",
        str(tmp_path / "results"),
        "--run-id",
        "sig",
    ]
    with open(log, "wb") as output:  # a file, not a pipe: nothing has to read it while the run goes on
        return subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)


def check_nothing_left(tmp_path: Path, marker: str) -> None:
    left = wait_until(lambda: not marked_processes(marker), 10.0)
    assert left, f"processes of the run still alive: {marked_processes(marker)}"
    assert not list((tmp_path / "tmp").glob("streamchaos-trial-*")), list((tmp_path / "tmp").iterdir())


def check_results(directory: Path) -> None:
    lines = (directory / "trials.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b""  # ends with a newline: no torn line left
    records = [json.loads(line) for line in lines[:-1] if line.strip()]
    keys = [(r["scenario"], r["client"], r["trial"]) for r in records]
    assert sorted(keys) == [("network_blip", "sleepy", i) for i in range(TRIALS)], keys  # exactly these, once each
    journals = sorted(directory.glob("journal-network_blip*.jsonl"))
    assert journals
    for journal in journals:
        records = [json.loads(line) for line in journal.read_text().splitlines()]  # every line parses
        seqs = [r["seq"] for r in records]
        assert len(seqs) == len(set(seqs)), f"{journal.name}: duplicate sequence numbers"
        conns = [r["conn"] for r in records if r["kind"] == "connection"]
        assert len(conns) == len(set(conns)), f"{journal.name}: duplicate connection ids"
    named = {r["extra"].get("journal") for r in (json.loads(line) for line in lines[:-1] if line.strip())}
    assert named <= {j.name for j in journals}, named


@pytest.mark.slow
@pytest.mark.parametrize(
    "signum,status",
    [
        (signal.SIGKILL, -signal.SIGKILL),
        (signal.SIGHUP, 129),
        (signal.SIGTERM, 143),
        (signal.SIGINT, 130),
    ],
    ids=["kill-9", "SIGHUP", "SIGTERM", "SIGINT"],
)
def test_a_signal_at_a_random_moment_leaves_nothing_and_resume_completes(tmp_path, signum, status):
    require(ROOT / "tools" / "bin" / "toxiproxy-server", "toxiproxy")
    (tmp_path / "tmp").mkdir()
    marker = f"sctest-{uuid.uuid4().hex}"
    # one worker, so the two trials run one after the other: each client sleeps 2 s and then
    # talks to the simulator through toxiproxy for a second or more, so the run lasts > 6 s
    # from the first client's start and the moment lands in a sleep, a request, the outage,
    # the recording of a trial or the start of the next
    moment = random.Random(f"{SEED}-{signum}").uniform(0.0, 5.0)
    first_log, second_log = tmp_path / "first.log", tmp_path / "resume.log"
    harness = start_run(tmp_path, marker, 2.0, first_log, time_scale=1.0, workers=1)
    try:
        # the run is underway once a client (it carries the marker and sleeps) exists
        assert wait_until(lambda: any(c.startswith(f"{sys.executable} {SLEEPY}") for _, c in marked_processes(marker)), 30.0), first_log.read_text()
        time.sleep(moment)
        os.kill(harness.pid, signum)
        code = harness.wait(30)
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait(10)
    stderr = first_log.read_text(errors="replace")
    assert code == status, stderr
    assert "Traceback" not in stderr, stderr
    check_nothing_left(tmp_path, marker)

    resumed = start_run(tmp_path, marker, 0.0, second_log, time_scale=0.2, workers=2)
    try:
        assert resumed.wait(60) == 0, second_log.read_text(errors="replace")
    finally:
        if resumed.poll() is None:
            resumed.kill()
            resumed.wait(10)
    check_results(tmp_path / "results" / "sig")
    check_nothing_left(tmp_path, marker)
