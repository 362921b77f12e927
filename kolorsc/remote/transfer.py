"""push_keys / pull_keys: move cache entries between the local cache and a remote, verified.

    pull_keys(cache, remote, keys, progress, expected=...) -> TransferReport
        Each key absent from the local cache (or corrupt there) is fetched: sidecar, then the
        object streamed into memory (over IN_MEMORY: a temp file under <cache>/incoming/)
        while it is hashed. Only when sha256 and size match the sidecar, and the lock file's
        hash when `expected` gives one, is it committed with Cache.put_bytes / put_file
        (atomic, sidecar last, under the key's lock). Anything else is refused and leaves
        nothing in the local cache.
    push_keys(cache, remote, keys, progress) -> TransferReport
        Each key verified in the local cache is uploaded: the object (skipped when the remote
        has it already), then the sidecar. A key whose remote sidecar names other bytes is a
        conflict, reported and left alone: push never replaces what a key means on the remote.

Keys move in parallel (`workers` threads; the fsspec backends are thread-safe); `progress`
(done, total, label) is called from the calling thread as keys finish. Both hold the local
store lock shared, like a build, so `cache gc` never runs in the middle.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from kolorsc.cache import Cache
from kolorsc.i18n import _
from kolorsc.remote.store import Remote, RemoteCorrupt, RemoteEntry, is_digest

Progress = Callable[[int, int, str], None]
INCOMING = "incoming"  # <cache>/incoming/: large downloads in progress, never trusted
IN_MEMORY = 256 << 20  # objects up to this size are downloaded into memory: one write, not two
STALE_SECONDS = 86400

# outcomes of one key
TRANSFERRED, PRESENT, MISSING, REFUSED, FAILED = "transferred", "present", "missing", "refused", "failed"


@dataclass
class TransferReport:
    direction: str  # "push" or "pull"
    remote: str
    transferred: list[str] = field(default_factory=list)  # keys copied
    present: list[str] = field(default_factory=list)  # already there with the same bytes
    missing: list[str] = field(default_factory=list)  # not on the source side
    refused: dict[str, str] = field(default_factory=dict)  # key -> why (corrupt, conflict...)
    failed: dict[str, str] = field(default_factory=dict)  # key -> I/O error (network, permission)
    bytes: int = 0  # bytes copied
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.refused and not self.failed

    @property
    def total(self) -> int:
        return len(self.transferred) + len(self.present) + len(self.missing) + len(self.refused) + len(self.failed)

    def add(self, key: str, outcome: str, reason: str = "", nbytes: int = 0) -> None:
        if outcome in (REFUSED, FAILED):
            getattr(self, outcome)[key] = reason
        else:
            getattr(self, outcome).append(key)
        self.bytes += nbytes

    def to_json(self) -> dict:
        return {
            "direction": self.direction, "remote": self.remote, "ok": self.ok,
            "transferred": sorted(self.transferred), "present": sorted(self.present), "missing": sorted(self.missing),
            "refused": dict(sorted(self.refused.items())), "failed": dict(sorted(self.failed.items())),
            "bytes": self.bytes, "seconds": round(self.seconds, 3),
        }


def _remote(remote: str | Remote, options: dict | None) -> Remote:
    return remote if isinstance(remote, Remote) else Remote(remote, options)


def _run(direction: str, remote: Remote, keys: Iterable[str], one, progress: Progress | None, workers: int) -> TransferReport:
    report = TransferReport(direction, remote.url)
    todo = list(dict.fromkeys(keys))  # unique, in order
    start = time.perf_counter()
    for key in [k for k in todo if not is_digest(k)]:
        report.add(key, REFUSED, _("not a cache key (64 hex digits)"))
    todo = [k for k in todo if is_digest(k)]
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=f"kolorsc-{direction}")
    try:
        futures = {pool.submit(one, key): key for key in todo}
        for done, future in enumerate(as_completed(futures), 1):
            key = futures[future]
            try:
                outcome, reason, nbytes = future.result()
            except Exception as exc:  # noqa: BLE001 - backends raise many types (network, auth, disk): this key fails, not the run
                outcome, reason, nbytes = FAILED, f"{type(exc).__name__}: {exc}", 0
            report.add(key, outcome, reason, nbytes)
            if progress:
                progress(done, len(todo), f"{key[:12]} {outcome}")
    finally:
        # an interrupt (Ctrl-C, or an exception from `progress`) cancels the keys not started;
        # the ones running finish or clean up after themselves
        pool.shutdown(wait=True, cancel_futures=True)
        report.seconds = time.perf_counter() - start
    return report


# -- pull ----------------------------------------------------------------------------------


def pull_keys(
    cache: Cache,
    remote: str | Remote,
    keys: Iterable[str],
    progress: Progress | None = None,
    *,
    expected: Mapping[str, str | None] | None = None,
    options: dict | None = None,
    workers: int = 4,
) -> TransferReport:
    """Fetch `keys` from `remote` into `cache` (see the module docstring). `expected` maps a
    key to the sha256 a lock file records for it: the remote's bytes must be those."""
    remote = _remote(remote, options)
    expected = expected or {}
    incoming = cache.root / INCOMING
    incoming.mkdir(parents=True, exist_ok=True)
    _sweep(incoming)
    with cache.store_lock():
        return _run("pull", remote, keys, lambda key: _pull_one(cache, remote, key, expected.get(key), incoming),
                    progress, workers)


def _pull_one(cache: Cache, remote: Remote, key: str, expected: str | None, incoming: Path):
    found = cache.lookup(key)
    if found.hit:  # verified
        return PRESENT, "", 0
    if found.corrupt:  # a damaged local entry is replaced by the remote's verified bytes
        cache.discard(key)
    try:
        meta = remote.read_sidecar(key)
    except RemoteCorrupt as exc:
        return REFUSED, f"corrupt on the remote: {exc}", 0
    if meta is None:
        return MISSING, "", 0
    if expected and meta.sha256 != expected:
        return REFUSED, (f"the remote's output ({meta.sha256[:12]}) is not the one the lock file records "
                         f"({expected[:12]}); not trusted"), 0
    if meta.size <= IN_MEMORY:
        buf = io.BytesIO()
        try:
            digest, size = remote.download(meta.sha256, meta.size, buf)
        except FileNotFoundError:
            return REFUSED, f"incomplete on the remote: its object {meta.sha256[:12]} is missing", 0
        problem = _mismatch(meta, digest, size)
        return (REFUSED, problem, 0) if problem else _commit(cache, key, meta, digest, lambda: cache.put_bytes(
            key, buf.getvalue(), meta.node, meta.kind))
    fd, tmp = tempfile.mkstemp(prefix=f"{key[:16]}.", suffix=".tmp", dir=incoming)
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                digest, size = remote.download(meta.sha256, meta.size, f)
            except FileNotFoundError:
                return REFUSED, f"incomplete on the remote: its object {meta.sha256[:12]} is missing", 0
        problem = _mismatch(meta, digest, size)
        return (REFUSED, problem, 0) if problem else _commit(cache, key, meta, digest, lambda: cache.put_file(
            key, Path(tmp), meta.node, meta.kind))
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _mismatch(meta: RemoteEntry, digest: str, size: int) -> str | None:
    if size != meta.size:
        return f"corrupt on the remote: object {meta.sha256[:12]}: {size}{'+' if size > meta.size else ''} bytes instead of {meta.size}"
    if digest != meta.sha256:
        return f"corrupt on the remote: object {meta.sha256[:12]}: content hash mismatch"
    return None


def _commit(cache: Cache, key: str, meta: RemoteEntry, digest: str, put):
    """Store verified bytes under the key's lock (atomic, sidecar last: Cache's own rules)."""
    with cache.lock_keys([key]):
        if cache.lookup(key).hit:  # another process pulled or built it meanwhile
            return PRESENT, "", 0
        entry = put()
        if entry.sha256 != digest:  # the local disk changed the bytes under us
            cache.discard(key)
            return FAILED, "the local copy does not match what was downloaded (disk problem?)", 0
    return TRANSFERRED, "", meta.size


def _sweep(incoming: Path) -> None:
    """Remove downloads a killed pull left behind (a day old: a running pull's are fresh)."""
    cutoff = time.time() - STALE_SECONDS
    for p in incoming.glob("*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            if p.stat().st_mtime < cutoff:
                p.unlink()


# -- push ----------------------------------------------------------------------------------


def push_keys(
    cache: Cache,
    remote: str | Remote,
    keys: Iterable[str],
    progress: Progress | None = None,
    *,
    options: dict | None = None,
    workers: int = 4,
) -> TransferReport:
    """Upload `keys` from `cache` to `remote` (see the module docstring)."""
    remote = _remote(remote, options)
    with cache.store_lock():
        return _run("push", remote, keys, lambda key: _push_one(cache, remote, key), progress, workers)


def _push_one(cache: Cache, remote: Remote, key: str):
    found = cache.lookup(key)  # verified: corrupt local bytes are never pushed
    if not found.hit:
        return MISSING, "", 0
    local = found.entry
    try:
        meta = remote.read_sidecar(key)
    except RemoteCorrupt as exc:
        return REFUSED, f"corrupt on the remote: {exc}; remove {remote.sidecar_path(key)} to push again", 0
    if meta is not None and meta.sha256 != local.sha256:
        return REFUSED, (f"conflict: the remote has other bytes for this key ({meta.sha256[:12]}, local "
                         f"{local.sha256[:12]}); not overwritten"), 0
    sent = 0
    if remote.object_size(local.sha256) != local.size:  # absent, or a damaged one named by our hash
        remote.put_object(local.path, local.sha256)
        sent = local.size
    if meta is not None:
        return (TRANSFERRED if sent else PRESENT), "", sent
    node, kind = _local_names(cache, key)
    remote.put_sidecar(RemoteEntry(key, local.sha256, local.size, node, kind))
    return TRANSFERRED, "", sent


def _local_names(cache: Cache, key: str) -> tuple[str, str]:
    """node id and kind from the local sidecar (informational: shown by the remote's readers)."""
    try:
        meta = json.loads(cache.sidecar_path(key).read_text("utf-8"))
        return str(meta.get("node", "")), str(meta.get("kind", ""))
    except (OSError, ValueError, AttributeError):
        return "", ""
