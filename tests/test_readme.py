"""README's quick start and CI stay in step: CI runs exactly README's test command."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from testkit import REPO


def quick_start_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_quick_start_is_two_commands_demo_then_tests():
    commands = quick_start_commands()
    assert len(commands) == 2
    assert commands[0].endswith("dalinorm demo")
    assert "pytest" in commands[1]


def ci_lines() -> list[str]:
    text = (REPO / ".ci" / "run").read_text()
    lines = (l.split("  # ", 1)[0].strip() for l in text.splitlines())  # without comments
    return [l for l in lines if l and not l.startswith("#")]


def test_ci_runs_readme_test_command_verbatim():
    # the whole line (installs included), last, so its exit status is the script's
    assert ci_lines()[-1] == quick_start_commands()[1]


def test_ci_uses_a_fresh_virtual_environment():
    lines = ci_lines()
    venv = [i for i, l in enumerate(lines) if re.search(r"python3? -m venv ", l)]
    activate = [i for i, l in enumerate(lines) if re.match(r"(source|\.) \S*/bin/activate", l)]
    assert venv and activate and venv[0] < activate[0] < len(lines) - 1, lines
    text = "\n".join(lines)
    assert "--system-site-packages" not in text and "set -euo pipefail" in text
    # every run starts from nothing: a new temporary folder, or the old venv removed first
    assert "mktemp -d" in lines[venv[0] - 2] + lines[venv[0] - 1] or "rm -rf" in lines[venv[0] - 1]
    # nothing before the venv installs anything into the machine's own Python
    assert not any("pip install" in l for l in lines[:activate[0]])


def _third_party_imports(paths: list[Path]) -> set[str]:
    names: set[str] = set()
    skipped: set[str] = set()
    for path in paths:
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):  # also the imports inside functions
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        skipped |= set(re.findall(r"importorskip\(\"([A-Za-z_]\w*)", text))
    local = {p.stem for p in paths} | {"dalinorm", "testkit", "conftest"}
    return {n for n in names - skipped - local if n not in sys.stdlib_module_names}


def test_the_test_extra_installs_everything_the_tests_import():
    """README's test command installs ".[test]": the dependencies and the test extra must cover
    every module the tests and examples import (matplotlib was once missing here)."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["test"]
    distributions = {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() for r in requirements}
    # import name -> distribution name, where the two differ
    provided_by = {"PIL": "pillow", "yaml": "pyyaml", "nvidia": "nvidia-dali-cuda120", "numba": "numba"}
    paths = sorted((REPO / "tests").glob("*.py")) + sorted((REPO / "examples").glob("*.py"))
    imported = _third_party_imports(paths)
    assert {"matplotlib", "scipy", "torch", "PIL"} <= imported  # the scan sees the tests' imports
    missing = {n for n in imported if provided_by.get(n, n).lower() not in distributions}
    assert not missing, f"imported by tests/ or examples/ but not installed by '.[test]': {missing}"
