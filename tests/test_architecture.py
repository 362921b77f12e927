"""Imports point one way (STYLE.md): cli -> api -> runner -> stages -> plan -> prompts -> spec.

A module may import kolorsc modules of its own layer or lower ones, never higher. Lazy
imports inside functions count too: they are still dependencies.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kolorsc"

# Lower number = lower layer. The first matching prefix wins.
LAYERS = [
    ("kolorsc.cli", 8),
    ("kolorsc.api", 7),
    ("kolorsc.runner", 6),
    ("kolorsc.engines", 5),
    ("kolorsc.data", 5),
    ("kolorsc.train", 5),
    ("kolorsc.scoring", 5),
    ("kolorsc.emit", 5),
    ("kolorsc.plan", 4),
    ("kolorsc.cache", 4),
    ("kolorsc.lockfile", 4),
    ("kolorsc.results", 3),
    ("kolorsc.models", 3),
    ("kolorsc.fonts", 3),
    ("kolorsc.lora", 3),
    ("kolorsc.prompts", 2),
    ("kolorsc.consistency", 2),
    ("kolorsc.spec", 1),
    ("kolorsc.errors", 0),
    ("kolorsc.paths", 0),
    ("kolorsc.atomic", 0),
    ("kolorsc", 0),  # the package itself: __version__ only
]


def layer(module: str) -> int:
    for prefix, rank in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return rank
    raise AssertionError(f"{module} has no layer: add it to LAYERS in {__file__}")


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def kolorsc_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = module_name(path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("kolorsc")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against this module's package
                base = me.split(".")
                if path.name != "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("kolorsc"):
                found.append((node.lineno, target))
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_point_down(path: Path) -> None:
    me = module_name(path)
    mine = layer(me)
    upward = [
        f"line {line}: {target} (layer {layer(target)})"
        for line, target in kolorsc_imports(path)
        if layer(target) > mine
    ]
    assert not upward, f"{me} (layer {mine}) imports a higher layer: {upward}"


def test_every_module_has_a_layer() -> None:
    for path in MODULES:
        layer(module_name(path))
