"""The shared cache against a real S3 API server (moto on 127.0.0.1) through s3fs: a build
pushed from one cache and pulled into an empty one renders nothing; corrupt, conflicting and
interrupted transfers leave nothing half-written on either side."""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest
from _build_fixtures import STORY, CountingEngine, make_project, story_path
from _remote_fixtures import bucket_keys

from kolorsc import api
from kolorsc.cache import Cache
from kolorsc.build.lockfile import lock_path
from kolorsc.remote import Remote, keys_from_locks, pull_keys, push_keys, transfer
from kolorsc.remote.commands import cache_pull, cache_push


def key_of(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


@pytest.fixture(params=["in memory", "through a temp file"])
def download_path(request, monkeypatch):
    """Small objects are downloaded into memory, large ones through <cache>/incoming/: both."""
    if request.param == "through a temp file":
        monkeypatch.setattr(transfer, "IN_MEMORY", 0)
    return request.param


def built_project(tmp_path):
    project = make_project(tmp_path / "alice")
    summary = api.build([story_path(project)], engine=CountingEngine(), cache_dir=tmp_path / "alice-cache")
    assert summary.exit_code == 0, summary.to_json()
    return project


def clone(project, dest):
    """What a teammate has after `git clone`: stories, styles and lock files, no build/."""
    copy = make_project(dest)
    shutil.copy(lock_path(story_path(project)), lock_path(story_path(copy)))
    return copy


def test_push_then_pull_into_an_empty_cache_and_the_rebuild_renders_nothing(s3, tmp_path):
    client, bucket = s3
    url = f"s3://{bucket}/kolorsc"
    project = built_project(tmp_path)
    recorded = keys_from_locks([story_path(project)])
    assert len(recorded) >= 8 + 8 + 4  # renders, panels, storyboard/pdf/scores/bundle (+ selections)

    pushed = cache_push([story_path(project)], remote=url, cache_dir=tmp_path / "alice-cache")
    assert pushed.ok and sorted(pushed.transferred) == sorted(recorded)
    assert len([k for k in bucket_keys(client, bucket) if "/keys/" in k]) == len(recorded)
    again = cache_push([story_path(project)], remote=url, cache_dir=tmp_path / "alice-cache")
    assert again.ok and again.transferred == [] and sorted(again.present) == sorted(recorded) and again.bytes == 0

    bob = clone(project, tmp_path / "bob")
    pulled = cache_pull([story_path(bob)], remote=url, cache_dir=tmp_path / "bob-cache")
    assert pulled.ok and sorted(pulled.transferred) == sorted(recorded) and pulled.bytes == pushed.bytes
    assert not list((tmp_path / "bob-cache" / "incoming").iterdir())

    engine = CountingEngine()
    summary = api.build([story_path(bob)], engine=engine, cache_dir=tmp_path / "bob-cache")
    assert summary.exit_code == 0, summary.to_json()
    assert engine.rendered == [] and summary.outcomes[0].report.ran == {}
    assert (bob / "build" / STORY / "storyboard.png").read_bytes() == (project / "build" / STORY / "storyboard.png").read_bytes()


def test_a_corrupted_remote_object_is_refused_on_pull(s3, tmp_path, download_path):
    client, bucket = s3
    url = f"s3://{bucket}/c"
    alice = Cache(tmp_path / "alice")
    good, evil, long = key_of("good"), key_of("evil"), key_of("long")
    alice.put_bytes(good, b"panel bytes" * 100, "render/01/seed-1", "render")
    alice.put_bytes(evil, b"lora bytes" * 100, "lora", "lora")
    alice.put_bytes(long, b"bundle" * 100, "bundle", "bundle")
    assert push_keys(alice, url, [good, evil, long]).ok
    # someone (or a broken disk) changes the object behind `evil` (same size) and `long` (longer)
    sha = alice.lookup(evil).entry.sha256
    client.put_object(Bucket=bucket, Key=f"c/objects/{sha[:2]}/{sha}", Body=b"LORA BYTES" * 100)
    sha = alice.lookup(long).entry.sha256
    client.put_object(Bucket=bucket, Key=f"c/objects/{sha[:2]}/{sha}", Body=b"bundle" * 100_000)

    bob = Cache(tmp_path / "bob")
    report = pull_keys(bob, url, [good, evil, long])
    assert report.transferred == [good]
    assert "corrupt on the remote" in report.refused[evil] and "content hash mismatch" in report.refused[evil]
    assert "601+ bytes instead of 600" in report.refused[long]  # reading stopped one byte past the record
    assert not report.ok
    for key in (evil, long):
        assert not bob.lookup(key).hit and not bob.object_path(key).exists() and not bob.sidecar_path(key).exists()
    assert bob.read_bytes(good) == b"panel bytes" * 100
    assert not list((bob.root / "incoming").iterdir())


def test_a_rewritten_key_is_refused_when_the_lock_file_records_other_bytes(s3, tmp_path):
    _, bucket = s3
    url = f"s3://{bucket}/c"
    key = key_of("render")
    alice = Cache(tmp_path / "alice")
    alice.put_bytes(key, b"what the lock file records", "render/01/seed-1", "render")
    recorded = alice.lookup(key).entry.sha256
    mallory = Cache(tmp_path / "mallory")
    mallory.put_bytes(key, b"something else entirely", "render/01/seed-1", "render")
    assert push_keys(mallory, url, [key]).ok  # the remote's sidecar and object now agree with each other

    bob = Cache(tmp_path / "bob")
    report = pull_keys(bob, url, [key], expected={key: recorded})
    assert "not the one the lock file records" in report.refused[key] and not bob.lookup(key).hit
    assert pull_keys(bob, url, [key]).transferred == [key]  # without a lock file, the sidecar is the record


def test_push_never_overwrites_an_object_with_different_bytes(s3, tmp_path):
    client, bucket = s3
    url = f"s3://{bucket}/c"
    key = key_of("render/03")
    alice, carol = Cache(tmp_path / "alice"), Cache(tmp_path / "carol")
    alice.put_bytes(key, b"alice's GPU render", "render/03/seed-3", "render")
    carol.put_bytes(key, b"carol's GPU render, other bits", "render/03/seed-3", "render")
    assert push_keys(alice, url, [key]).ok
    before = {k: client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in bucket_keys(client, bucket)}

    report = push_keys(carol, url, [key])
    assert "conflict" in report.refused[key] and "not overwritten" in report.refused[key]
    after = {k: client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in bucket_keys(client, bucket)}
    assert after == before  # nothing replaced, nothing added
    assert pull_keys(Cache(tmp_path / "bob"), url, [key]).ok


def test_an_interrupted_multipart_upload_leaves_nothing_on_the_remote(s3, tmp_path, monkeypatch):
    import s3fs

    client, bucket = s3
    url = f"s3://{bucket}/c"
    key = key_of("lora")
    alice = Cache(tmp_path / "alice")
    alice.put_bytes(key, os.urandom(11 << 20), "lora", "lora")  # three 5 MiB parts
    remote = Remote(url, chunksize=5 << 20)

    real = s3fs.S3FileSystem._call_s3
    parts = []

    async def flaky(self, method, *args, **kwargs):
        if method == "upload_part":
            parts.append(kwargs["PartNumber"])
            if kwargs["PartNumber"] == 2:
                raise ConnectionResetError("connection reset by peer (simulated)")
        return await real(self, method, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", flaky)
    report = push_keys(alice, remote, [key], workers=1)
    assert "ConnectionResetError" in report.failed[key]
    assert 2 in parts  # the failure happened inside the multipart upload
    assert bucket_keys(client, bucket) == []  # no object, no sidecar
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []  # aborted

    monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", real)
    assert pull_keys(Cache(tmp_path / "bob"), remote, [key]).missing == [key]  # readers see nothing
    assert push_keys(alice, remote, [key]).transferred == [key]
    bob = Cache(tmp_path / "bob")
    assert pull_keys(bob, remote, [key]).transferred == [key]
    assert bob.read_bytes(key) == alice.read_bytes(key)


def test_the_sidecar_is_written_last(s3, tmp_path, monkeypatch):
    client, bucket = s3
    url = f"s3://{bucket}/c"
    key = key_of("bundle")
    alice = Cache(tmp_path / "alice")
    alice.put_bytes(key, b"zip" * 1000, "bundle", "bundle")

    def killed(self, entry):
        raise KeyboardInterrupt  # the push dies between the object and its sidecar

    with monkeypatch.context() as m:
        m.setattr(Remote, "put_sidecar", killed)
        with pytest.raises(KeyboardInterrupt):
            push_keys(alice, url, [key])
    assert [k for k in bucket_keys(client, bucket) if "/keys/" in k] == []
    assert len([k for k in bucket_keys(client, bucket) if "/objects/" in k]) == 1
    assert pull_keys(Cache(tmp_path / "bob"), url, [key]).missing == [key]  # no sidecar: not there yet

    done = push_keys(alice, url, [key])
    assert done.transferred == [key] and done.bytes == 0  # the object was there: only the sidecar went up
    assert pull_keys(Cache(tmp_path / "bob"), url, [key]).transferred == [key]


def test_an_interrupted_download_leaves_nothing_in_the_local_cache(s3, tmp_path, monkeypatch, download_path):
    _, bucket = s3
    url = f"s3://{bucket}/c"
    keys = [key_of(f"render/{i}") for i in range(3)]
    alice = Cache(tmp_path / "alice")
    for i, key in enumerate(keys):
        alice.put_bytes(key, os.urandom(300_000 + i), f"render/0{i}", "render")
    assert push_keys(alice, url, keys).ok

    remote = Remote(url)
    real_open = remote.fs.open

    class Dropping:
        """The connection drops after the first 64 KiB of the object."""

        def __init__(self, f):
            self.f, self.sent = f, 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def read(self, n):
            if self.sent >= 65536:
                raise ConnectionResetError("connection dropped (simulated)")
            data = self.f.read(min(n, 65536))
            self.sent += len(data)
            return data

    monkeypatch.setattr(remote.fs, "open", lambda path, *a, **kw: Dropping(real_open(path, *a, **kw)))
    bob = Cache(tmp_path / "bob")
    report = pull_keys(bob, remote, keys)
    assert set(report.failed) == set(keys) and all("ConnectionResetError" in r for r in report.failed.values())
    assert not any(bob.lookup(k).hit or bob.object_path(k).exists() for k in keys)
    assert not list((bob.root / "incoming").iterdir())

    # a Ctrl-C between keys: what finished is whole and verified, the rest is absent
    monkeypatch.setattr(remote.fs, "open", real_open)

    def interrupt(done, total, label):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pull_keys(bob, remote, keys, interrupt, workers=1)
    whole = [k for k in keys if bob.lookup(k).hit]
    assert 1 <= len(whole) < len(keys)  # the keys not started were cancelled
    assert all(bob.read_bytes(k) == alice.read_bytes(k) for k in whole)
    assert not any(bob.object_path(k).exists() for k in keys if k not in whole)
    assert not list((bob.root / "incoming").iterdir())
    assert sorted(pull_keys(bob, remote, keys).transferred) == sorted(set(keys) - set(whole))
