"""The core imports no other package of this project (ARCHITECTURE.md: arrows point one way)."""

from __future__ import annotations

import ast
import re
from importlib.metadata import entry_points
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUTER = ("api", "capture", "legal_forms")
# The core reaches an outer package only through an interface and an entry point group.
GROUP = re.compile(r'^ENTRY_POINT_GROUP = "([a-z_.]+)"$', re.MULTILINE)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_core_imports_no_outer_package() -> None:
    offenders = {}
    for path in sorted((ROOT / "evidence").rglob("*.py")):
        outer = sorted(_imports(path).intersection(OUTER))
        if outer:
            offenders[path.relative_to(ROOT).as_posix()] = outer
    assert offenders == {}


def test_every_interface_of_the_core_is_implemented() -> None:
    groups = {match.group(1): path.name for path in sorted((ROOT / "evidence").rglob("*.py"))
              for match in GROUP.finditer(path.read_text("utf-8"))}
    assert {"evidence.platform_registry", "evidence.legal_instruments"} <= set(groups)
    for group, module in groups.items():
        points = list(entry_points(group=group))
        assert points, f"{module}: nothing fills the entry point group {group!r} (pyproject.toml)"
        for point in points:
            assert point.value.split(".")[0] in OUTER, point
            assert callable(point.load()), point
