"""Story and style files: load with positions, validate, resolve, and check collections.

Public API (other stages call these):
    load_story(path) -> Story            raises SpecError with every diagnostic of the file
    load_style(path) -> Style
    find_project_root(path) -> Path      nearest folder up holding styles/, .git or kolorsc.toml
    iter_story_files(paths) -> list[Path]
    check_paths(paths) -> CheckReport    loads each story and renders its templates
    schema_text(name) -> str             the published JSON schema ("story" or "style")

The names are loaded on first use (PEP 562), so `import kolorsc.spec.model` (which every
stage does) costs no YAML or jsonschema import: `kolorsc --help` stays fast.
"""

from __future__ import annotations

import importlib

from kolorsc.errors import Diagnostic, SpecError

_WHERE = {
    "CheckReport": "check",
    "FileReport": "check",
    "check_file": "check",
    "check_paths": "check",
    "is_style_file": "check",
    "iter_story_files": "check",
    "find_project_root": "loader",
    "load_story": "loader",
    "load_style": "loader",
    "schema_text": "validate",
}

__all__ = ["Diagnostic", "SpecError", *_WHERE]


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f"kolorsc.spec.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kolorsc.spec' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
