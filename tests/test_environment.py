"""environment.yml and pyproject.toml describe the same environment."""

from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _pip_section(text: str) -> list[str]:
    lines, inside = [], False
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if line.strip() == "- pip:":
            inside = True
        elif inside and line.strip().startswith("- "):
            lines.append(line.strip()[2:].strip())
    return [x for x in lines if not x.startswith("-e")]


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    listed = _pip_section((ROOT / "environment.yml").read_text())
    assert sorted(listed) == sorted(wanted)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and ci.strip().endswith("make test")
    assert "make run" in readme
