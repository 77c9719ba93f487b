"""Shared fixtures: simulators run as real processes on loopback, stopped by pid."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from harness.simulator_process import SimulatorProcess

# Shared CI machines stall now and then: no per-example deadline and no "generation is slow"
# verdict, which measure the machine rather than the code. Every property is still checked.
settings.register_profile("shared-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("shared-machine")

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
