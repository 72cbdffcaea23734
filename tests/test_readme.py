"""README's quick start and CI stay in step: CI runs exactly README's test command."""

from __future__ import annotations

import re

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


def test_ci_runs_readme_test_command():
    ci_lines = [l for l in (REPO / ".ci" / "run").read_text().splitlines() if l and not l.startswith("#")]
    readme_test = quick_start_commands()[1].split("&&")[-1].strip()
    assert ci_lines[-1].strip() == readme_test
