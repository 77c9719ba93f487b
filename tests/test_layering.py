"""Issue 12: the layering is checked, and the checks bite.

import-linter's contracts ([tool.importlinter] in pyproject.toml) hold on the tree; a deliberately
wrong import planted in a copy of the packages breaks the contract that forbids it, and ruff
reports an unused import planted in a copy of one file. `make lint` runs the same tools on the tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LINT_IMPORTS = BIN / "lint-imports"
RUFF = BIN / "ruff"

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists() or not RUFF.exists(), reason="make setup installs ruff and import-linter")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on ``tree`` (its pyproject.toml, its packages first on the path)."""
    env = {**os.environ, "PYTHONPATH": str(tree), "COLUMNS": "400"}  # wide: contract names on one line
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml"), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=120
    )


def copy_tree(tmp_path: Path) -> Path:
    """The Python files of simulator/ and harness/ and pyproject.toml (what import-linter reads)."""
    tree = tmp_path / "tree"
    for package in ("simulator", "harness"):
        for source in (ROOT / package).rglob("*.py"):
            if "node_modules" in source.parts:
                continue
            target = tree / source.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    shutil.copyfile(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def plant(tree: Path, module: str, line: str) -> None:
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}  # planted by tests/test_layering.py\n")


def contract_names() -> dict[str, str]:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["id"]: c["name"] for c in config["contracts"]}


def test_contracts_hold_on_the_tree():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


# (where the wrong import goes, the import, the contract it breaks, what the report must name)
WRONG_IMPORTS = [
    ("simulator/api/request.py", "import harness.drive.runner", "harness-above-simulator", "simulator.api.request -> harness.drive.runner"),
    ("simulator/faults/__init__.py", "from simulator.transport import h1", "api-faults-no-transport", "simulator.faults -> simulator.transport.h1"),
    ("simulator/api/answer.py", "from simulator import server", "api-faults-no-transport", "simulator.api.answer -> simulator.server"),
    ("simulator/api/request.py", "from simulator.faults import model", "api-below-faults", "simulator.api.request -> simulator.faults.model"),
    ("simulator/config.py", "import httpx", "simulator-no-harness-libraries", "simulator.config -> httpx"),
    ("harness/limits.py", "import tests.wire", "packages-not-tests", "harness.limits -> tests"),
    ("harness/drive/rundir.py", "from harness import cli", "entry-points-on-top", "harness.drive.rundir -> harness.cli"),
    ("harness/measure/strategies.py", "from harness.drive import runner", "harness-layers", "harness.measure.strategies -> harness.drive.runner"),
    # a cycle inside simulator.api (answer imports request): no other contract forbids it
    ("simulator/api/request.py", "from simulator.api import answer", "no-cycles", "No cycles are allowed in simulator.api."),
]


@pytest.mark.parametrize(("module", "line", "contract", "named"), WRONG_IMPORTS, ids=[f"{w[2]}:{w[0]}" for w in WRONG_IMPORTS])
def test_a_wrong_import_breaks_its_contract(tmp_path, module, line, contract, named):
    tree = copy_tree(tmp_path)
    clean = lint_imports(tree)
    assert clean.returncode == 0, "the copy is clean before the plant:\n" + clean.stdout + clean.stderr
    plant(tree, module, line)
    result = lint_imports(tree)
    out = " ".join(result.stdout.split())  # contract names may wrap
    name = contract_names()[contract]
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{name} BROKEN" in out, result.stdout
    broken = out[out.index("Broken contracts") :]
    assert name in broken and named in broken, result.stdout


def test_ruff_reports_a_planted_unused_import(tmp_path):
    source = ROOT / "harness" / "limits.py"
    copy = tmp_path / "harness" / "limits.py"
    copy.parent.mkdir(parents=True)
    shutil.copyfile(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copyfile(source, copy)
    run = [str(RUFF), "check", "--no-cache", "--output-format", "concise", str(copy)]
    before = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert "F401" not in before.stdout, before.stdout
    text = copy.read_text()
    head, _, rest = text.partition("\nimport ")
    copy.write_text(f"{head}\nimport textwrap\nimport {rest}")  # in the import block, never used
    after = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert after.returncode == 1
    assert "F401" in after.stdout and "textwrap" in after.stdout, after.stdout
