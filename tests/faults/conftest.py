"""One simulator for every fault type's wire test, and a fixture that loads a plan for one test."""

from __future__ import annotations

import pytest

from harness.drive.simulator_process import SimulatorProcess


@pytest.fixture(scope="package")
def sim():
    with SimulatorProcess(["--seed", "5"]) as process:
        yield process


@pytest.fixture
def plan(sim):
    """``plan(*rules, seed=1)`` loads a plan; the test's end loads the empty one."""

    def load(*faults, seed=1):
        sim.load_plan({"seed": seed, "faults": list(faults)})

    yield load
    sim.load_plan({"faults": []})
