"""The content-addressed store: verified reads, atomic writes, locks, info and gc."""

from __future__ import annotations

import os
import threading
import time

import pytest

from kolorsc import api
from kolorsc.build import lockfile
from kolorsc.atomic import atomic_write_bytes
from kolorsc.cache import Cache
from kolorsc.hashing import sha256_bytes
from kolorsc.errors import UsageError
from kolorsc.build.lockfile import LockEntry, LockFile

KEY_A = "ab" + "0" * 62
KEY_B = "cd" + "1" * 62


def test_put_then_lookup_verifies_content(tmp_path):
    cache = Cache(tmp_path)
    entry = cache.put_bytes(KEY_A, b"panel bytes", node="render/01/seed-1", kind="render")
    assert entry.path == tmp_path / "objects" / "ab" / KEY_A
    found = cache.lookup(KEY_A)
    assert found.hit and found.entry.sha256 == sha256_bytes(b"panel bytes")
    assert cache.read_bytes(KEY_A) == b"panel bytes"
    assert cache.lookup(KEY_B).reason == "missing"


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda obj, side: obj.write_bytes(b"panel bytez"), "content hash mismatch"),
        (lambda obj, side: obj.write_bytes(b"short"), "size"),
        (lambda obj, side: obj.unlink(), "output file missing"),
    ],
)
def test_corrupt_entry_is_a_miss_and_reading_changes_nothing(tmp_path, damage, reason):
    cache = Cache(tmp_path)
    cache.put_bytes(KEY_A, b"panel bytes")
    damage(cache.object_path(KEY_A), cache.sidecar_path(KEY_A))
    before = sorted((p.name, p.read_bytes()) for p in tmp_path.rglob("*") if p.is_file())
    found = cache.lookup(KEY_A)
    assert not found.hit and found.corrupt and reason in found.reason
    assert cache.read_bytes(KEY_A) is None
    assert sorted((p.name, p.read_bytes()) for p in tmp_path.rglob("*") if p.is_file()) == before
    cache.discard(KEY_A)  # what the build's run does with it
    assert cache.lookup(KEY_A).reason == "missing"


def test_unreadable_sidecar_is_a_miss(tmp_path):
    cache = Cache(tmp_path)
    cache.put_bytes(KEY_A, b"x")
    cache.sidecar_path(KEY_A).write_text("{not json")
    assert not cache.lookup(KEY_A).hit
    assert cache.read_bytes(KEY_A) is None


def test_interrupted_write_leaves_no_entry(tmp_path, monkeypatch):
    """os.replace failing on the sidecar (a crash between data and sidecar): no entry, no temp."""
    cache = Cache(tmp_path)
    real = os.replace
    calls = []

    def flaky(src, dst):
        calls.append(dst)
        if str(dst).endswith(".json"):
            raise OSError("killed")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(OSError):
        cache.put_bytes(KEY_A, b"data")
    monkeypatch.setattr(os, "replace", real)
    assert not cache.lookup(KEY_A).hit
    assert not list((tmp_path / "objects" / "ab").glob("*.tmp"))
    cache.put_bytes(KEY_A, b"data")  # the next build writes it normally
    assert cache.read_bytes(KEY_A) == b"data"


def test_atomic_write_keeps_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("killed")))
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_atomic_write_honours_the_umask(tmp_path):
    """mkstemp makes 0600 files; outputs are meant to be shared, like a plain open() would make them."""
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "storyboard.png", b"png")
    finally:
        os.umask(old)
    assert (tmp_path / "storyboard.png").stat().st_mode & 0o777 == 0o644


def test_key_lock_makes_a_second_builder_wait(tmp_path):
    cache = Cache(tmp_path)
    order = []
    inside = threading.Event()

    def first():
        with cache.lock_keys([KEY_B, KEY_A]):
            inside.set()
            time.sleep(0.3)
            order.append("first done")

    t = threading.Thread(target=first)
    t.start()
    inside.wait()
    with Cache(tmp_path).lock_keys([KEY_A]):  # flock: separate open file -> blocks
        order.append("second in")
    t.join()
    assert order == ["first done", "second in"]


def test_info_counts_entries_and_bytes(tmp_path):
    cache = Cache(tmp_path)
    assert api.cache_info(tmp_path).entries == 0
    cache.put_bytes(KEY_A, b"12345")
    cache.put_bytes(KEY_B, b"123")
    info = api.cache_info(tmp_path)
    assert (info.path, info.entries, info.size) == (tmp_path, 2, 8)


def _age(cache: Cache, key: str, days: float) -> None:
    t = time.time() - days * 86400
    os.utime(cache.object_path(key), (t, t))


def test_gc_keeps_locked_and_recent_entries(tmp_path):
    cache = Cache(tmp_path / "cache")
    for key in (KEY_A, KEY_B, "ef" + "2" * 62):
        cache.put_bytes(key, key.encode())
    _age(cache, KEY_A, 40)
    _age(cache, KEY_B, 40)
    lock = tmp_path / "story.lock"
    lockfile.write(lock, LockFile("s", {"render/01/seed-1": LockEntry(KEY_A, "x")}))

    dry = api.cache_gc(tmp_path / "cache", keep=[lock], older_than_days=30, dry_run=True)
    assert (dry.removed, dry.kept) == (1, 2) and cache.lookup(KEY_B).hit
    report = api.cache_gc(tmp_path / "cache", keep=[lock], older_than_days=30)
    assert (report.removed, report.kept) == (1, 2)
    assert cache.lookup(KEY_A).hit  # old but referenced by the lock file
    assert not cache.lookup(KEY_B).hit  # old and unreferenced
    assert cache.lookup("ef" + "2" * 62).hit  # unreferenced but recent


def test_gc_refuses_a_path_without_a_lock(tmp_path):
    story = tmp_path / "story.yaml"
    story.write_text("id: x\n")
    with pytest.raises(UsageError):
        api.cache_gc(tmp_path / "cache", keep=[story])


def _age_path(path, days: float) -> None:
    t = time.time() - days * 86400
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p, (t, t))


def test_gc_sweeps_abandoned_training_folders_and_unused_embeddings(tmp_path):
    from kolorsc.paths import EMBEDDINGS_DIR, WORK_DIR

    root = tmp_path / "cache"
    cache = Cache(root)
    cache.put_bytes(KEY_A, b"x")
    work = root / WORK_DIR
    old_run, kept_run, new_run = work / ("a1" * 12), work / KEY_A[:24], work / ("b2" * 12)
    for folder in (old_run, kept_run, new_run):
        (folder / "lora" / "work" / "checkpoints").mkdir(parents=True)
        (folder / "lora" / "work" / "checkpoints" / "last.ckpt").write_bytes(b"c" * 1000)
    _age_path(old_run, 40)
    _age_path(kept_run, 40)
    emb = root / EMBEDDINGS_DIR / "ab"
    emb.mkdir(parents=True)
    (emb / "old.safetensors").write_bytes(b"e" * 500)
    (emb / "new.safetensors").write_bytes(b"e" * 7)
    _age_path(emb / "old.safetensors", 40)
    lock = tmp_path / "story.lock"
    lockfile.write(lock, LockFile("s", {"lora": LockEntry(KEY_A, "x")}))

    dry = api.cache_gc(root, keep=[lock], older_than_days=30, dry_run=True)
    assert (dry.removed, dry.freed) == (2, 1500) and old_run.is_dir()
    report = api.cache_gc(root, keep=[lock], older_than_days=30)
    assert (report.removed, report.freed) == (2, 1500)
    assert not old_run.exists() and not (emb / "old.safetensors").exists()
    assert kept_run.is_dir()  # old, but its LoRA key is in a kept lock file: may be resumed
    assert new_run.is_dir() and (emb / "new.safetensors").exists()


def test_an_embedding_read_counts_as_used(tmp_path):
    torch = pytest.importorskip("torch", reason="needs the models extra: pip install -e '.[models,test]'")

    from kolorsc.engines.kolors.encoding import Embedding, EmbeddingCache

    store = EmbeddingCache(tmp_path)
    key = "cd" + "3" * 62
    store.put(key, Embedding(torch.zeros(1, 4, 2), torch.zeros(1, 2)))
    path = store._path(key)
    _age_path(path, 40)
    assert EmbeddingCache(tmp_path).get(key) is not None
    assert time.time() - path.stat().st_mtime < 60
