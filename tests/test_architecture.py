"""Imports point one way (STYLE.md): cli -> api -> build/run -> build/stages -> (engines,
training, scoring, emit) -> build/status, cache -> build/graph -> prompts -> spec -> errors.

A module may import kolorsc modules of its own layer or lower ones, never higher. Lazy
imports inside functions count too: they are still dependencies. Beyond the layers, a few
pairs are forbidden outright (`RULES`): the graph is pure and never sees the cache; stages
never reach the CLI, the API or the run that drives them.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kolorsc"

# Lower number = lower layer. The longest matching prefix wins.
LAYERS = {
    "kolorsc.cli": 10,
    "kolorsc.api": 9,
    "kolorsc.build.run": 8,
    "kolorsc.review": 8,  # kolorsc diff: keys through the build core (review/keys.py), lock files
    "kolorsc.publish": 8,  # kolorsc publish: reads lock files and build outputs, verifies the bundle
    "kolorsc.build.executors": 8,  # local and Ray: stage tasks in, bytes out (ray imported lazily)
    "kolorsc.build.stages": 7,
    "kolorsc.build.inputs": 7,
    "kolorsc.build.outputs": 7,
    "kolorsc.build": 7,  # the package's __init__: a docstring
    "kolorsc.engines": 6,
    "kolorsc.data": 6,
    "kolorsc.train": 6,
    "kolorsc.scoring": 6,
    "kolorsc.emit": 6,
    "kolorsc.remote": 6,  # cache push/pull: the cache and lock files, fsspec
    "kolorsc.build.status": 5,
    "kolorsc.build.where": 5,  # the line of the story or style a node input comes from (plan reasons)
    "kolorsc.cache": 5,
    "kolorsc.build.graph": 4,
    "kolorsc.build.lockfile": 4,
    "kolorsc.results": 3,
    "kolorsc.models": 3,
    "kolorsc.lora": 3,
    "kolorsc.prompts": 2,
    "kolorsc.consistency": 2,  # per-panel characters, references and sharing, from the story
    "kolorsc.spec": 1,
    "kolorsc.config": 1,  # kolorsc.toml
    "kolorsc.errors": 0,
    "kolorsc.paths": 0,
    "kolorsc.extras": 0,  # which extra a missing package belongs to, and the tidy error
    "kolorsc.i18n": 0,  # gettext catalogs: every layer translates its messages
    "kolorsc.i18n_click": 0,  # Babel extraction of cli.py's help texts (used by pybabel and tests only)
    "kolorsc.atomic": 0,
    "kolorsc.hashing": 0,
    "kolorsc.codeid": 0,
    "kolorsc.tensorfile": 0,  # the one safetensors header reader
    "kolorsc.safefs": 0,  # outputs written without following planted links
    "kolorsc.images": 0,  # the pixel budget, checked from the header
    "kolorsc.optional": 0,  # optional packages, or the pip command that installs them
    "kolorsc.fonts": 0,  # a leaf (errors only): spec.check asks it which characters no font has
    "kolorsc": 0,  # the package itself: __version__ only
}

# (importer prefix, imported prefix): never, whatever the layers say.
RULES = [
    ("kolorsc.build.graph", "kolorsc.cache"),  # the graph is pure
    ("kolorsc.build.graph", "kolorsc.build.lockfile"),
    ("kolorsc.build.status", "kolorsc.build.stages"),  # planning runs nothing
    ("kolorsc.build.stages", "kolorsc.cache"),  # stages turn inputs into bytes; the run commits
    ("kolorsc.build.stages", "kolorsc.build.run"),
    ("kolorsc.build.stages", "kolorsc.build.lockfile"),
    ("kolorsc.build.executors", "kolorsc.cache"),
    ("kolorsc.engines", "kolorsc.cache"),
]


def _match(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer(module: str) -> int:
    best = max((p for p in LAYERS if _match(module, p)), key=len, default=None)
    if best is None:
        raise AssertionError(f"{module} has no layer: add it to LAYERS in {__file__}")
    return LAYERS[best]


def module_name(path: Path, package: Path) -> str:
    rel = path.relative_to(package.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def kolorsc_imports(path: Path, package: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = module_name(path, package)
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
                # `from kolorsc.build import lockfile` imports kolorsc.build.lockfile
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    is_module = (package.parent / sub.replace(".", "/")).with_suffix(".py").is_file() or (
                        package.parent / sub.replace(".", "/") / "__init__.py").is_file()
                    found.append((node.lineno, sub if is_module else target))
    return found


def violations(package: Path) -> list[str]:
    """Every import that points up a layer or breaks a rule, as 'module line N: target (why)'."""
    out = []
    for path in sorted(package.rglob("*.py")):
        me = module_name(path, package)
        mine = layer(me)
        for line, target in kolorsc_imports(path, package):
            if layer(target) > mine:
                out.append(f"{me} line {line}: {target} (layer {layer(target)} above {mine})")
            for importer, imported in RULES:
                if _match(me, importer) and _match(target, imported):
                    out.append(f"{me} line {line}: {target} (forbidden: {importer} never imports {imported})")
    return out


def test_imports_point_down_and_follow_the_rules() -> None:
    assert violations(PACKAGE) == []


def test_every_module_has_a_layer() -> None:
    for path in PACKAGE.rglob("*.py"):
        layer(module_name(path, PACKAGE))


@pytest.mark.parametrize(
    "module, line, complaint",
    [
        ("build/graph.py", "from kolorsc.cache import Cache", "forbidden: kolorsc.build.graph never imports kolorsc.cache"),
        ("build/stages/pdf.py", "from kolorsc import cli", "layer 10 above 7"),
        ("spec/model.py", "from kolorsc.build import graph", "layer 4 above 1"),
        ("engines/preview.py", "import kolorsc.cache", "forbidden: kolorsc.engines never imports kolorsc.cache"),
    ],
)
def test_the_check_fails_on_a_deliberate_violation(tmp_path, module, line, complaint) -> None:
    copy = tmp_path / "kolorsc"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n\ndef _violation():\n    {line}\n", encoding="utf-8")
    found = violations(copy)
    assert found and all(f.startswith(module_name(target, copy)) for f in found), found
    assert any(complaint in f for f in found), found
