"""`<story>.lock`: what the last successful build measured, beside the story (like dvc.lock).

The story file is the intent; the lock file is the record: every node's key, the sha256 of
its output, and a readable summary of each of its inputs, so that the next `plan` can say
which input changed and how ("seed 3 → 5", "pdf code changed"). Small values (numbers,
short strings) are recorded as they are, larger ones as a short digest (a mapping with an
`id`, such as the story's style, as "ink-wash#<digest>"), and a mapping input (the engine's
identity, the scorer's) one level deep, so a change names its part.
JSON with sorted keys keeps git diffs minimal: editing one scene changes only that scene's
nodes and the outputs downstream of them. Written atomically, and only after a fully
successful build; commit it with the story (a reviewer sees what a change re-renders).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from kolorsc.atomic import atomic_write_bytes
from kolorsc.hashing import short_digest

LOCKFILE_VERSION = 2
_SHORT = 48  # strings up to this long are recorded as they are (keys, 64 hex digits, are not)


@dataclass(frozen=True)
class LockEntry:
    key: str
    output: str | None  # sha256 of the output
    inputs: dict = field(default_factory=dict)  # input name -> value, digest, or {part: ...}


@dataclass(frozen=True)
class LockFile:
    story: str
    nodes: dict[str, LockEntry]  # node id text ("render/03/seed-3") -> entry
    engine: str = ""


@dataclass(frozen=True)
class LockRead:
    """A lock file as read: `lock` None when absent or unusable; `problem` says why it was
    unusable (absent is not a problem)."""

    lock: LockFile | None
    problem: str | None = None


def lock_path(story_path: Path) -> Path:
    """stories/ink-dream.yaml -> stories/ink-dream.lock"""
    return Path(story_path).with_suffix(".lock")


def summarize(value):
    """What the lock records of one input: small scalars as they are, else a short digest;
    a mapping one level deep (so "engine" changes can name the part that changed)."""
    if isinstance(value, dict):
        return {str(k): _leaf(v) for k, v in value.items()}
    return _leaf(value)


def _leaf(value):
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str) and len(value["id"]) <= _SHORT:
        # a style: its id and a digest of the rest, so a change can say "style ink-wash → anime"
        return f"{value['id']}#{short_digest(value)}"
    if isinstance(value, str) and len(value) <= _SHORT and "\n" not in value:
        return value
    return "#" + short_digest(value)


def read(path: Path) -> LockRead:
    """The lock file, or why it cannot be used. Never raises for a damaged file."""
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return LockRead(None)
    except (OSError, UnicodeDecodeError) as exc:
        return LockRead(None, f"unreadable ({exc})")
    try:
        raw = json.loads(text)
        if not isinstance(raw, dict) or not isinstance(raw.get("nodes"), dict):
            raise ValueError("no 'nodes' mapping")
        nodes = {}
        for nid, e in raw["nodes"].items():
            if not isinstance(e, dict) or not isinstance(e.get("key"), str):
                raise ValueError(f"node {nid!r} has no key")
            inputs = e.get("inputs", {})
            nodes[str(nid)] = LockEntry(e["key"], e.get("output"), dict(inputs) if isinstance(inputs, dict) else {})
        return LockRead(LockFile(str(raw.get("story", "")), nodes, str(raw.get("engine", ""))))
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        return LockRead(None, f"not a valid lock file ({exc})")


def dumps(lock: LockFile) -> str:
    doc = {
        "lockfile": LOCKFILE_VERSION,
        "story": lock.story,
        "engine": lock.engine,
        "nodes": {
            nid: {"key": e.key, "output": e.output, "inputs": e.inputs}
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
