"""Which keys to move: everything the lock files of the given stories record; and which
lock files a list of paths names (`cache gc --keep` uses the same rule).

A path is a story file (its `<story>.lock` beside it), a lock file, or a folder (every
`*.lock` below it that is a kolorsc lock file; other tools' lock files are skipped). Nodes
that produced nothing (skipped, or scores that could not be computed) have no output and
are left out. The recorded output hash travels with each key: pull refuses a remote object
whose bytes are not the ones the lock file, reviewed in git, records.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kolorsc.build import lockfile
from kolorsc.errors import UsageError
from kolorsc.i18n import _


def lock_files(paths: Sequence[Path]) -> list[tuple[Path, bool]]:
    """(lock file, found by scanning a folder) for each path given."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += [(f, True) for f in sorted(p.rglob("*.lock"))]
        elif p.suffix == ".lock":
            out.append((p, False))
        elif lockfile.lock_path(p).is_file():
            out.append((lockfile.lock_path(p), False))
        elif p.exists():
            raise UsageError(_("{p}: no lock file {name} (build the story first)").format(p=p, name=lockfile.lock_path(p).name))
        else:
            raise UsageError(_("{p}: no such file or folder").format(p=p))
    return out


def keys_from_locks(paths: Sequence[Path]) -> dict[str, str]:
    """key -> recorded output sha256, for every node with an output in the lock files."""
    keys: dict[str, str] = {}
    for path, found in lock_files(paths):
        lock = lockfile.read(path).lock
        if lock is None:
            if found:
                continue
            raise UsageError(_("{path}: not a readable kolorsc lock file").format(path=path))
        for entry in lock.nodes.values():
            if entry.output:
                keys[entry.key] = entry.output
    return keys
