"""One simulator for every fault wire test, and a fixture that loads a plan for one test."""

from __future__ import annotations

import time

import pytest

from harness.drive.simulator_process import SimulatorProcess


@pytest.fixture(scope="package")
def sim():
    with SimulatorProcess(["--seed", "5"]) as process:
        yield process


@pytest.fixture
def plan(sim):
    """``plan(*rules, seed=1)`` loads a plan and returns the monotonic times just before and after
    the load; the test's end loads the empty one."""

    def load(*faults, seed=1):
        before = time.monotonic()
        sim.load_plan({"seed": seed, "faults": list(faults)})
        return before, time.monotonic()

    yield load
    sim.load_plan({"faults": []})
