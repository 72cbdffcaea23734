"""The package's layout stays true: imports point down the rooms, no file imports another in a
cycle (lazy imports included), and no module reaches into another's private names.

The rooms, lowest first (README's development section says what each holds). A file may import
files of its own room or of a room below it, never above; within a room, no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOT_PACKAGE = {"tests", "benchmarks", "examples", "tools", "docs", "configs", "sample_data", "build"}

# (room, module prefixes). Order is the layering: index = height.
ROOMS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("dalinorm.version", "dalinorm.errors", "dalinorm.atomic", "dalinorm.progress",
              "dalinorm.config")),
    ("data listing", ("dalinorm.data",)),
    ("graphs", ("dalinorm.pipelines",)),
    ("statistics", ("dalinorm.stats",)),
    ("PyTorch side", ("dalinorm.integration",)),
    ("commands", ("dalinorm.commands",)),
    ("command line", ("dalinorm.cli", "dalinorm.__main__")),
    ("public names", ("dalinorm",)),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["dalinorm", *parts])


def _package_files() -> dict[str, Path]:
    files = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).parts
        if rel[0] in NOT_PACKAGE or rel[0].startswith("."):
            continue
        files[_module_name(path)] = path
    return files


FILES = _package_files()


def _imports(module: str, path: Path) -> list[tuple[str, str, int]]:
    """(imported module, imported name or '', line) for every import in the file, lazy ones
    inside functions included."""
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in FILES:
                    found.append((sub, "", node.lineno))
                else:
                    found.append((target, alias.name, node.lineno))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, "", node.lineno) for alias in node.names)
    return found


def _room(module: str) -> int:
    best, best_len = None, -1
    for height, (_, prefixes) in enumerate(ROOMS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = height, len(prefix)
    if best is None:
        raise AssertionError(f"{module}: in no room of tests/test_layout.py's ROOMS")
    return best


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for module, path in FILES.items():
        edges[module] = {
            target for target, _, _ in _imports(module, path)
            if target in FILES and target != module and FILES[target].name != "__init__.py"
        }
    return edges


def test_every_file_is_in_a_room() -> None:
    for module in FILES:
        _room(module)


def test_imports_point_down_the_rooms() -> None:
    upward = []
    for module, path in FILES.items():
        here = _room(module)
        for target, _, line in _imports(module, path):
            if target in FILES and _room(target) > here:
                upward.append(
                    f"{path.relative_to(ROOT)}:{line}: {ROOMS[here][0]} imports {target} "
                    f"({ROOMS[_room(target)][0]})"
                )
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_import_cycles_between_files() -> None:
    edges = _edges()
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_private_names_cross_modules() -> None:
    leaks = []
    for module, path in FILES.items():
        for target, name, line in _imports(module, path):
            if target.startswith("dalinorm") and name.startswith("_") and name != "__version__":
                leaks.append(f"{path.relative_to(ROOT)}:{line}: imports {target}.{name}")
    assert not leaks, "private names imported from another module:\n" + "\n".join(leaks)


@pytest.mark.parametrize("bare", ["config", "pipelines", "stats", "integration", "data", "commands", "cli"])
def test_no_bare_imports_of_the_package_rooms(bare: str) -> None:
    # `import stats` works from the repository root by accident and breaks once installed.
    bad = [
        f"{path.relative_to(ROOT)}:{line}"
        for module, path in FILES.items()
        for target, _, line in _imports(module, path)
        if target == bare or target.startswith(bare + ".")
    ]
    assert not bad, f"bare imports of {bare!r}: {bad}"


def test_every_room_ships_in_the_wheel() -> None:
    # pyproject lists the packages explicitly (the root is the package): a room left out
    # installs nowhere, which an editable install in this checkout would not show.
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    rooms = {m for m, p in FILES.items() if p.name == "__init__.py"}
    assert listed == rooms, f"pyproject packages {sorted(listed)} != package folders {sorted(rooms)}"
