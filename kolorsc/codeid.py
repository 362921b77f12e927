"""The identity of kolorsc's own code that makes an output, derived from the source.

A cache key must change when the code that makes its output changes, and nobody should have
to remember to bump a version for that (issue 10: an edit to emit/pdf.py used to be served
the old PDF). `code_identity("kolorsc.build.stages.pdf")` hashes the source of that module
and of every kolorsc module it imports, transitively.

Third-party libraries can change the bytes too (a Pillow or reportlab upgrade): their
versions are named by the identity that depends on them (`library_versions("pillow",
"reportlab")` in the PDF stage's key, torch and diffsynth in the Kolors engine's). Those
lists are written by hand on purpose: a scan finds every lazy import (modelscope for
downloads, torch in a helper), and a needless version in a render key would re-render every
panel on a GPU after an unrelated upgrade.

How the import closure is found: a regular-expression scan of each file's import statements,
lazy imports inside functions included (they are dependencies all the same). Not `ast`:
parsing the package costs ~100 ms, the scan a few, and it runs on every `kolorsc` start.
Rules, chosen to follow what Python executes without dragging in every sibling:
- `import kolorsc.a.b` and `from kolorsc.a import b` (b a module) depend on kolorsc/a/b.py;
- `from kolorsc.a import name` (name not a module) depends on kolorsc.a itself;
- a package's `__init__` is not a dependency of its submodules unless named like that
  (kolorsc/emit/__init__.py re-exports every emitter; the PDF stage does not run them).
- the front end (kolorsc.spec, kolorsc.prompts, and kolorsc.consistency, which resolves each
  panel's references and sharing from the story: scales, pictures and settings are render
  inputs, a sheet's prompt its inputs), the graph (kolorsc.build.graph) and the
  messages (kolorsc.errors, kolorsc.i18n: no output holds a translated text) are left out:
  what they produce reaches a node only as values that are in its key already (prompt text, seed, size, upstream keys...), and counting them would
  re-render every panel on a GPU when the compiler, the graph or a message changes.
Sources are hashed as bytes: a comment-only edit changes the identity too. That is the
safe side of the promise (an edit re-runs what it might affect, never less).
Computed once per process per root (functools.cache): well under 20 ms (bench/bench_build.py).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import sys
from pathlib import Path

PACKAGE = "kolorsc"
# Modules whose effect on an output is only through values already in its key (see above).
NOT_CODE = ("kolorsc.spec", "kolorsc.prompts", "kolorsc.consistency", "kolorsc.build.graph", "kolorsc.errors",
            "kolorsc.i18n")
_ROOT = Path(__file__).resolve().parent  # kolorsc/

# `import kolorsc.a.b as c` | `from kolorsc.a import (x, y as z)` | `from .a import x` — names
# may span lines in parentheses. Only kolorsc's own and relative imports are looked for.
_IMPORT = re.compile(r"^[ \t]*import[ \t]+(kolorsc[\w. \t,]*)", re.M)
_FROM = re.compile(r"^[ \t]*from[ \t]+(kolorsc[\w.]*|\.+[\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n]+)", re.M)


@functools.cache
def _modules() -> dict[str, str]:
    """Every module of the package by dotted name -> its file, from one walk of its folder
    (plain strings: pathlib's overhead shows at this scale)."""
    found = {}
    root = str(_ROOT)
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith((".", "__"))]
        rel = os.path.relpath(folder, root)
        package = PACKAGE if rel == "." else PACKAGE + "." + rel.replace(os.sep, ".")
        for name in files:
            if name.endswith(".py"):
                found[package if name == "__init__.py" else f"{package}.{name[:-3]}"] = os.path.join(folder, name)
    return found


def module_file(name: str) -> Path | None:
    """kolorsc.a.b -> kolorsc/a/b.py or kolorsc/a/b/__init__.py, None when it is not a module."""
    found = _modules().get(name)
    return Path(found) if found else None


def _absolute(module: str, target: str) -> str:
    """Resolve a relative import `from ..x import` made inside `module`."""
    dots = len(target) - len(target.lstrip("."))
    if not dots:
        return target
    is_package = module_file(module) is not None and module_file(module).name == "__init__.py"
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (dots - 1)]
    rest = target[dots:]
    return ".".join(base + ([rest] if rest else []))


def _statements(source: str):
    """The import statements that can name kolorsc modules, a parenthesised list joined into
    one line. A scan for the two words first: most of a file is neither."""
    lines = source.splitlines()
    for n, line in enumerate(lines):
        text = line.lstrip()
        if not (text.startswith(("from kolorsc", "from .", "import kolorsc"))):
            continue
        if "(" in text and ")" not in text:  # from x import (\n a,\n b)
            rest = []
            for more in lines[n + 1:]:
                rest.append(more.split("#")[0])
                if ")" in more:
                    break
            text = text + " ".join(rest)
        yield text


def imports_of(module: str, source: str) -> set[str]:
    """The kolorsc modules that `source` (the text of `module`) imports."""
    ours: set[str] = set()
    for text in _statements(source):
        match = _IMPORT.match(text)
        if match:
            ours.update(item.split(" as ")[0].strip() for item in match.group(1).split(",") if item.strip())
            continue
        match = _FROM.match(text)
        if not match:
            continue
        target = _absolute(module, match.group(1))
        names = [n.split(" as ")[0].strip() for n in match.group(2).split("#")[0].strip().strip("()").split(",")]
        names = [n for n in names if n and n != "*"]
        if target.split(".")[0] != PACKAGE:
            continue
        attributes = False
        for name in names:
            if f"{target}.{name}" in _modules():
                ours.add(f"{target}.{name}")
            else:
                attributes = True
        if attributes or not names:
            ours.add(target)
    return {name for name in ours if name.split(".")[0] == PACKAGE}


def _front_end(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in NOT_CODE)


@functools.cache
def _source(name: str) -> bytes | None:
    path = _modules().get(name)
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


@functools.cache
def _imports(name: str) -> frozenset[str]:
    return frozenset(imports_of(name, _source(name).decode("utf-8")))


@functools.cache
def closure(root: str) -> tuple[str, ...]:
    """The kolorsc modules reachable from `root` (itself included), sorted."""
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen or _front_end(name) or _source(name) is None:
            continue
        seen.add(name)
        todo.extend(_imports(name) - seen)
    return tuple(sorted(seen))


@functools.cache
def code_identity(*roots: str) -> str:
    """A short hash of the source of every kolorsc module reachable from `roots`.
    Same code -> same identity; any edit to one of those files -> a new one."""
    h = hashlib.sha256()
    modules: set[str] = set()
    for root in roots:
        if module_file(root) is None:
            raise ValueError(f"{root} is not a kolorsc module")
        modules.update(closure(root))
    for name in sorted(modules):
        h.update(name.encode() + b"\0" + _source(name) + b"\0")
    return h.hexdigest()[:16]


@functools.cache
def library_versions(*distributions: str) -> dict[str, str | None]:
    """Installed versions of the named distributions (None when absent)."""
    found = _installed()
    return {name: found.get(_normal(name)) for name in distributions}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


@functools.cache
def _installed() -> dict[str, str]:
    """Distribution -> version, read from the `<name>-<version>.dist-info` folder names on
    sys.path: one directory listing per path entry (~1 ms) where importlib.metadata takes
    ~10 ms to import and ~1 ms per lookup, on every `kolorsc` start. The first entry on
    sys.path wins, as for imports."""
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info") and "-" in name:
                dist, version = name[: -len(".dist-info")].rsplit("-", 1)
                found.setdefault(_normal(dist), version)
    return found


def describe(*roots: str) -> list[str]:
    """The modules an identity covers (for tests and for `kolorsc plan --json`)."""
    return sorted({m for root in roots for m in closure(root)})
