"""The content-addressed build cache: every node's output stored under the node's key.

Layout (under `paths.cache_dir()`, or --cache-dir / $KOLORSC_CACHE):

    objects/ab/<key>        the output bytes (write-once)
    objects/ab/<key>.json   sidecar: sha256 and size of the bytes, node id and kind
    locks/ab/<key>.lock     per-key lock file (fcntl.flock): one builder computes a key
    store.lock              builds hold it shared, `gc` holds it exclusive
    file-hashes.json        sha256 of project files (LoRA files, dataset images) and of the
                            build/ files, remembered by (path, size, mtime) so a no-op build
                            does not re-read them
    work/<lora key>/        a training run in progress (kept to resume a killed one)
    kolors-embeddings/      the Kolors engine's prompt embeddings, by text + encoder

`gc` covers all of it: unkept objects by age, work folders nobody resumed, embeddings nobody
read, memo entries of files that are gone.

Reading never changes anything: `lookup` and `read_bytes` report a corrupt entry as a miss
with its reason, and only the build's run (kolorsc.build.run) discards it, so `plan` and
`build --dry-run` leave the cache byte-identical. Why a sidecar: a read re-hashes the bytes
and compares, so a truncated or bit-flipped object is caught. Writes go to a temp file in
the same folder, are fsynced, then `os.replace`d (data first, sidecar last): an interrupted
build leaves at worst data without a sidecar, which every reader treats as a miss.

Locks use POSIX `fcntl.flock` (Linux, macOS); the lock files themselves are never deleted
while the store is shared, because deleting a flock'd file lets a second locker in.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kolorsc import paths
from kolorsc.atomic import atomic_copy_file, atomic_write_bytes, atomic_write_text
from kolorsc.hashing import sha256_bytes, sha256_file

HASHES_FILE = "file-hashes.json"
RACY_NS = 2_000_000_000  # a file modified this recently is not memoised (as git's index does)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@dataclass(frozen=True)
class Entry:
    """A verified cache entry."""

    key: str
    path: Path  # the output bytes
    sha256: str
    size: int


@dataclass(frozen=True)
class Lookup:
    """Result of looking a key up: `entry` when present and verified, else why it is a miss."""

    entry: Entry | None
    reason: str | None = None  # "missing" or "corrupt: <what>"

    @property
    def hit(self) -> bool:
        return self.entry is not None

    @property
    def corrupt(self) -> bool:
        return bool(self.reason and self.reason.startswith("corrupt"))


@dataclass(frozen=True)
class CacheInfo:
    path: Path
    entries: int
    size: int  # bytes of outputs


@dataclass(frozen=True)
class GcReport:
    removed: int
    freed: int  # bytes
    kept: int
    dry_run: bool
    paths: tuple[str, ...] = ()  # what was (or would be) removed, relative to the cache


class FileHashes:
    """sha256 of files remembered by (path, size, mtime_ns), in the cache's file-hashes.json.

    `sha256` only reads (the memo, or the file): planning uses it and writes nothing; the
    run calls `save` to remember what it hashed. A damaged memo is a miss, not a crash."""

    def __init__(self, path: Path):
        self.path = path
        self._entries: dict | None = None
        self._new: dict = {}

    def _load(self) -> dict:
        if self._entries is None:
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                self._entries = data if isinstance(data, dict) else {}
            except (OSError, ValueError):
                self._entries = {}
        return self._entries

    def sha256(self, file: Path) -> str:
        st = os.stat(file)
        name = os.path.abspath(file)
        value = self.known(name, st)
        if value is None:
            value = sha256_file(file)
            self.remember(name, st, value)
        return value

    def known(self, name: str, st: os.stat_result) -> str | None:
        """The remembered sha256 of the file `name` (absolute) whose stat is `st`, or None."""
        entry = self._new.get(name) or self._load().get(name)
        if isinstance(entry, list) and len(entry) == 3 and entry[:2] == [st.st_size, st.st_mtime_ns]:
            return entry[2]
        return None

    def remember(self, name: str, st: os.stat_result, value: str) -> None:
        # A file changed again within the clock's granularity would keep its size and mtime:
        # only a file older than that is remembered.
        if time.time_ns() - st.st_mtime_ns > RACY_NS:
            self._new[name] = [st.st_size, st.st_mtime_ns, value]

    @property
    def dirty(self) -> bool:
        return bool(self._new)

    def save(self) -> None:
        """Remember what was hashed; forget files that are gone. Only the run calls this."""
        if not self._new:
            return
        merged = {**self._load(), **self._new}
        live = {k: v for k, v in merged.items() if os.path.exists(k)}
        try:
            atomic_write_text(self.path, json.dumps(live, sort_keys=True))
            self._entries, self._new = live, {}
        except OSError:
            pass  # the memo only saves time: a read-only cache must not fail a build

    def stale(self) -> list[str]:
        """Memo entries whose file no longer exists (gc forgets them)."""
        return [k for k in self._load() if not os.path.exists(k)]

    def forget(self, names: Iterable[str]) -> None:
        entries = {k: v for k, v in self._load().items() if k not in set(names)}
        atomic_write_text(self.path, json.dumps(entries, sort_keys=True))
        self._entries = entries


class Cache:
    def __init__(self, root: str | Path | None = None):
        self.root = paths.cache_dir(root)
        self.objects = self.root / "objects"
        self.locks = self.root / "locks"
        self.hashes = FileHashes(self.root / HASHES_FILE)

    # -- layout ---------------------------------------------------------------------------

    def object_path(self, key: str) -> Path:
        return self.objects / key[:2] / key

    def sidecar_path(self, key: str) -> Path:
        return self.objects / key[:2] / f"{key}.json"

    def work_dir(self, key: str) -> Path:
        return self.root / paths.WORK_DIR / key[:24]

    # -- reading (never changes anything) -------------------------------------------------

    def lookup(self, key: str, verify: bool = True) -> Lookup:
        """Find `key`; with `verify`, re-hash the bytes. A corrupt entry is a miss with its reason."""
        meta, problem = self._read_sidecar(key)
        if meta is None:
            return Lookup(None, f"corrupt: {problem}" if problem else "missing")
        obj = self.object_path(key)
        problem = self._check(obj, meta, verify)
        if problem:
            return Lookup(None, f"corrupt: {problem}")
        return Lookup(Entry(key, obj, meta["sha256"], meta["size"]))

    def get(self, key: str) -> Entry | None:
        return self.lookup(key).entry

    def read_bytes(self, key: str) -> bytes | None:
        """The verified bytes of `key` (one read, hashed in memory), or None on a miss."""
        meta, _ = self._read_sidecar(key)
        if meta is None:
            return None
        try:
            data = self.object_path(key).read_bytes()
        except FileNotFoundError:
            return None
        return data if sha256_bytes(data) == meta["sha256"] else None

    def _read_sidecar(self, key: str) -> tuple[dict | None, str | None]:
        try:
            meta = json.loads(self.sidecar_path(key).read_text("utf-8"))
        except FileNotFoundError:
            return None, None
        except (ValueError, OSError):
            return None, "unreadable sidecar"
        if not isinstance(meta, dict) or "sha256" not in meta or "size" not in meta:
            return None, "sidecar without sha256 and size"
        return meta, None

    @staticmethod
    def _check(obj: Path, meta: dict, verify: bool) -> str | None:
        try:
            size = obj.stat().st_size
        except FileNotFoundError:
            return "output file missing"
        if size != meta["size"]:
            return f"size {size} != recorded {meta['size']}"
        if verify and sha256_file(obj) != meta["sha256"]:
            return "content hash mismatch"
        return None

    # -- writing --------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes, node: str = "", kind: str = "") -> Entry:
        digest = sha256_bytes(data)
        atomic_write_bytes(self.object_path(key), data)
        return self._commit(key, digest, len(data), node, kind)

    def put_file(self, key: str, src: Path, node: str = "", kind: str = "") -> Entry:
        """Store a file made elsewhere (a trained LoRA); the cache keeps its own copy."""
        dst = self.object_path(key)
        atomic_copy_file(Path(src), dst)
        return self._commit(key, sha256_file(dst), dst.stat().st_size, node, kind)

    def _commit(self, key: str, digest: str, size: int, node: str, kind: str) -> Entry:
        # The sidecar is written last: until it exists the entry does not exist.
        meta = {"sha256": digest, "size": size, "node": node, "kind": kind}
        atomic_write_bytes(self.sidecar_path(key), json.dumps(meta, sort_keys=True).encode())
        return Entry(key, self.object_path(key), digest, size)

    def discard(self, key: str) -> None:
        for p in (self.sidecar_path(key), self.object_path(key)):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    def touch(self, key: str) -> None:
        """Mark an entry as used now, so age-based gc keeps what builds still read."""
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.object_path(key))

    # -- locking --------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock_keys(self, keys: Iterable[str]) -> Iterator[None]:
        """Hold exclusive locks on `keys` (taken in sorted order, so two builders never deadlock).

        A second build that needs the same keys waits here, then finds them in the cache."""
        files = []
        try:
            for key in sorted(set(keys)):
                path = self.locks / key[:2] / f"{key}.lock"
                path.parent.mkdir(parents=True, exist_ok=True)
                f = open(path, "a+b")
                files.append(f)
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            yield
        finally:
            for f in reversed(files):
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
                f.close()

    @contextlib.contextmanager
    def store_lock(self, exclusive: bool = False) -> Iterator[None]:
        """Builds hold the store shared; `gc` holds it exclusive so it never deletes mid-build."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "store.lock", "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    # -- maintenance ----------------------------------------------------------------------

    def keys(self) -> Iterator[str]:
        if not self.objects.is_dir():
            return
        for sub in sorted(self.objects.iterdir()):
            for side in sorted(sub.glob("*.json")):
                yield side.name[: -len(".json")]

    def info(self) -> CacheInfo:
        entries = size = 0
        for key in self.keys():
            meta, _ = self._read_sidecar(key)
            if meta is not None:
                entries += 1
                size += int(meta["size"])
        return CacheInfo(self.root, entries, size)

    def gc(self, keep: set[str], older_than_days: float, dry_run: bool = False) -> GcReport:
        """Remove entries not in `keep` whose output was last written or used over N days ago.

        Entries referenced by a kept lock file always stay; so do recent ones (another
        story's build may need them soon). Temp files of interrupted writes older than a
        day, data files without a sidecar, abandoned work folders, unread embeddings and
        memo entries of deleted files go too. `dry_run` lists and removes nothing."""
        cutoff = time.time() - older_than_days * 86400
        removed, freed, kept = 0, 0, 0
        gone: list[str] = []
        with self.store_lock(exclusive=True):
            for key in list(self.keys()):
                obj = self.object_path(key)
                # mtime, not atime: builds touch() what they use, and atime depends on mount options
                if key in keep or _mtime(obj) >= cutoff:
                    kept += 1
                    continue
                removed += 1
                freed += _size(obj)
                gone.append(obj.relative_to(self.root).as_posix())
                if not dry_run:
                    self.discard(key)
            for path, size in [*self._orphans(time.time() - 86400), *self._stale_side_files(keep, cutoff)]:
                removed += 1
                freed += size
                gone.append(path.relative_to(self.root).as_posix())
                if not dry_run:
                    _remove(path)
            stale = self.hashes.stale()
            if stale and not dry_run:
                self.hashes.forget(stale)
        return GcReport(removed, freed, kept, dry_run, tuple(gone))

    def _stale_side_files(self, keep: set[str], cutoff: float) -> Iterator[tuple[Path, int]]:
        """(path, bytes) of work folders and embeddings not touched since `cutoff`. A work
        folder belonging to a kept LoRA key stays (its training may be resumed). `state/`
        is where kolorsc before 0.2 kept its LoRA hash memo: always removable."""
        work = self.root / paths.WORK_DIR
        if work.is_dir():
            for folder in work.iterdir():
                files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else [folder]
                newest = max((_mtime(p) for p in [folder, *files]), default=0.0)
                if newest < cutoff and not any(k.startswith(folder.name) for k in keep):
                    yield folder, sum(_size(p) for p in files)
        embeddings = self.root / paths.EMBEDDINGS_DIR
        if embeddings.is_dir():
            for p in embeddings.rglob("*"):
                if p.is_file() and _mtime(p) < cutoff:
                    yield p, _size(p)
        legacy = self.root / "state"
        if legacy.is_dir():
            yield legacy, sum(_size(p) for p in legacy.rglob("*") if p.is_file())

    def _orphans(self, cutoff: float) -> Iterator[tuple[Path, int]]:
        """Temp files of interrupted writes and data files without a sidecar, older than `cutoff`."""
        if not self.objects.is_dir():
            return
        for sub in self.objects.iterdir():
            for p in sub.iterdir():
                orphan = p.name.endswith(".tmp") or (
                    not p.name.endswith(".json") and not (sub / f"{p.name}.json").exists()
                )
                if orphan and _mtime(p) < cutoff:
                    yield p, _size(p)
