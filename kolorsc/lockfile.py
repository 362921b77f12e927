"""`<story>.lock`: what the last successful build measured, beside the story (like dvc.lock).

The story file is the intent; the lock file is the record: every node's key, the sha256 of
its output, and a short digest of each of its inputs, so that the next `plan` can say which
input changed. JSON with sorted keys and one entry per line block keeps git diffs minimal:
editing one scene changes only that scene's nodes and the outputs downstream of them.
The runner writes it atomically and only after a fully successful build.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from kolorsc import __version__
from kolorsc.atomic import atomic_write_bytes

LOCKFILE_VERSION = 1


@dataclass(frozen=True)
class LockEntry:
    key: str
    output: str | None  # sha256 of the output; None when the node produced nothing (skipped)
    inputs: dict[str, str] = field(default_factory=dict)  # input name -> short digest


@dataclass(frozen=True)
class LockFile:
    story: str
    nodes: dict[str, LockEntry]
    engine: str = ""
    kolorsc: str = __version__


def lock_path(story_path: Path) -> Path:
    """stories/ink-dream.yaml -> stories/ink-dream.lock"""
    story_path = Path(story_path)
    return story_path.with_suffix(".lock")


def read(path: Path) -> LockFile | None:
    """The lock file, or None when absent or unreadable (then every node is 'new')."""
    try:
        raw = json.loads(Path(path).read_text("utf-8"))
        nodes = {
            nid: LockEntry(e["key"], e.get("output"), dict(e.get("inputs", {})))
            for nid, e in raw.get("nodes", {}).items()
        }
        return LockFile(raw.get("story", ""), nodes, raw.get("engine", ""), raw.get("kolorsc", ""))
    except (FileNotFoundError, ValueError, KeyError, TypeError, AttributeError):
        return None


def dumps(lock: LockFile) -> str:
    doc = {
        "lockfile": LOCKFILE_VERSION,
        "kolorsc": lock.kolorsc,
        "story": lock.story,
        "engine": lock.engine,
        "nodes": {
            nid: {"key": e.key, "output": e.output, "inputs": dict(sorted(e.inputs.items()))}
            for nid, e in sorted(lock.nodes.items())
        },
    }
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(path: Path, lock: LockFile) -> bool:
    """Write atomically; leave the file untouched when nothing changed. True if written."""
    text = dumps(lock)
    path = Path(path)
    try:
        if path.read_text("utf-8") == text:
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    atomic_write_bytes(path, text.encode("utf-8"))
    return True
