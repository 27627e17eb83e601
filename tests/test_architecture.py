"""The architecture docs/architecture.md draws, enforced: import-linter's contracts (in
pyproject.toml) hold on the package, and fail on a copy with one upward import planted."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).parent / "lint-imports"


def lint(package_parent: Path) -> subprocess.CompletedProcess:
    """lint-imports with the project's contracts on the ``clviz`` package under
    ``package_parent``."""
    if not LINT.exists():
        pytest.fail(f"lint-imports is not installed beside {sys.executable}: pip install -e .[dev]")
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run(
        [str(LINT), str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=package_parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def copy_package(to: Path) -> Path:
    shutil.copytree(ROOT / "clviz", to / "clviz", ignore=shutil.ignore_patterns("weights"))
    return to


def test_every_contract_is_kept():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("core/planted.py", "import clviz.experiments.runs", "nothing imports upwards"),
        ("methods/replay.py", "from clviz.world import tasks", "never reads data itself"),
        ("methods/lwf.py", "from clviz.methods.zscl import ZSCLOptions", "another method's"),
    ],
)
def test_a_planted_import_breaks_its_contract(tmp_path, module, line, contract):
    """The check is not vacuous: one forbidden import in a copy of the package fails it, and
    the report names that import."""
    parent = copy_package(tmp_path)
    path = parent / "clviz" / module
    path.write_text((path.read_text() if path.exists() else "") + f"\n{line}\n")
    result = lint(parent)
    assert result.returncode != 0, result.stdout
    broken = [row for row in result.stdout.splitlines() if row.endswith("BROKEN")]
    assert len(broken) == 1 and contract in broken[0], result.stdout
    planted = "clviz." + module.removesuffix(".py").replace("/", ".")
    assert f"{planted} ->" in result.stdout, result.stdout
