"""The core imports no other package of this project (ARCHITECTURE.md: arrows point one way)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUTER = ("api", "capture", "legal_forms")
# Known debt, to be removed, never added to: the legal request service builds legal_forms'
# typed input itself; its input types belong in the core and the instruments behind an
# interface, as evidence.platforms does for the platform registry.
KNOWN = {"evidence/requests.py"}


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
        relative = path.relative_to(ROOT).as_posix()
        outer = sorted(_imports(path).intersection(OUTER))
        if outer and relative not in KNOWN:
            offenders[relative] = outer
    assert offenders == {}


def test_the_known_exceptions_still_need_their_place() -> None:
    # When the debt is paid, this fails: then empty KNOWN.
    for relative in KNOWN:
        assert _imports(ROOT / relative).intersection(OUTER), f"{relative} no longer needs it"
