"""The shared cache on a file:// remote (a mounted team folder), the `kolorsc cache push|pull`
commands against the S3 server, and the messages a user sees when something is missing."""

from __future__ import annotations

import hashlib
import json
import sys

import pytest
from _build_fixtures import CountingEngine, make_project, story_path
from click.testing import CliRunner

from kolorsc import api
from kolorsc.cache import Cache
from kolorsc.cli import main
from kolorsc.errors import UsageError
from kolorsc.build.lockfile import lock_path
from kolorsc.remote import Remote, pull_keys, push_keys


def key_of(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def run(*args, **kw):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, **kw)


def test_file_remote_round_trip_and_layout(tmp_path):
    url = (tmp_path / "team").as_uri()
    alice = Cache(tmp_path / "alice")
    keys = [key_of(f"k{i}") for i in range(3)]
    for i, key in enumerate(keys):
        alice.put_bytes(key, b"same bytes", f"render/0{i}", "render")  # three keys, one content
    report = push_keys(alice, url, keys)
    assert report.ok and sorted(report.transferred) == sorted(keys)
    objects = [p for p in (tmp_path / "team" / "objects").rglob("*") if p.is_file()]
    assert [p.name for p in objects] == [hashlib.sha256(b"same bytes").hexdigest()]  # stored once
    sidecar = json.loads((tmp_path / "team" / "keys" / keys[0][:2] / f"{keys[0]}.json").read_text())
    assert sidecar == {"sha256": objects[0].name, "size": 10, "node": "render/00", "kind": "render"}
    bob = Cache(tmp_path / "bob")
    assert pull_keys(bob, url, keys).ok and all(bob.read_bytes(k) == b"same bytes" for k in keys)


def test_file_remote_interrupted_upload_leaves_no_object_and_stray_temps_are_ignored(tmp_path, monkeypatch):
    url = (tmp_path / "team").as_uri()
    key = key_of("lora")
    alice = Cache(tmp_path / "alice")
    alice.put_bytes(key, b"x" * 100_000, "lora", "lora")
    remote = Remote(url)
    assert not remote.atomic_put  # a plain filesystem: temp name, then rename
    real_put = remote.fs.put_file

    def half_then_die(lpath, rpath, **kw):
        with open(lpath, "rb") as src, open(rpath, "wb") as dst:
            dst.write(src.read(50_000))
        raise OSError("No space left on device (simulated)")

    monkeypatch.setattr(remote.fs, "put_file", half_then_die)
    report = push_keys(alice, remote, [key])
    assert "No space left" in report.failed[key]
    assert [p for p in (tmp_path / "team").rglob("*") if p.is_file()] == []  # the half file was removed

    # a push killed with SIGKILL leaves its temp file: it has a name no reader opens
    sha = alice.lookup(key).entry.sha256
    stray = tmp_path / "team" / "objects" / sha[:2] / f".{sha}.0123.tmp"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"x" * 10)
    assert pull_keys(Cache(tmp_path / "bob"), url, [key]).missing == [key]
    monkeypatch.setattr(remote.fs, "put_file", real_put)
    assert push_keys(alice, remote, [key]).transferred == [key]
    assert pull_keys(Cache(tmp_path / "bob"), url, [key]).transferred == [key]


def test_bad_keys_and_damaged_sidecars_are_refused(tmp_path):
    url = (tmp_path / "team").as_uri()
    key = key_of("x")
    alice = Cache(tmp_path / "alice")
    alice.put_bytes(key, b"data", "render/01/seed-1", "render")
    assert push_keys(alice, url, [key]).ok
    (tmp_path / "team" / "keys" / key[:2] / f"{key}.json").write_text('{"sha256": "../../etc/passwd", "size": 4}')
    bob = Cache(tmp_path / "bob")
    report = pull_keys(bob, url, [key, "../../x"])
    assert "invalid sha256" in report.refused[key] and "not a cache key" in report.refused["../../x"]
    assert not bob.lookup(key).hit
    assert "corrupt on the remote" in push_keys(alice, url, [key]).refused[key]  # and not overwritten blindly


def test_a_corrupt_local_entry_is_neither_pushed_nor_kept(tmp_path):
    url = (tmp_path / "team").as_uri()
    key = key_of("y")
    alice = Cache(tmp_path / "alice")
    alice.put_bytes(key, b"good", "render/01/seed-1", "render")
    alice.object_path(key).write_bytes(b"bad!")
    assert push_keys(alice, url, [key]).missing == [key]  # a corrupt entry is a miss
    assert not (tmp_path / "team").exists() or not any(p.is_file() for p in (tmp_path / "team").rglob("*"))


def test_cli_push_and_pull_with_the_project_config(s3, tmp_path, monkeypatch):
    client, bucket = s3
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")  # the endpoint comes from kolorsc.toml this time
    project = make_project(tmp_path / "project")
    (project / "kolorsc.toml").write_text(
        f'[remote]\nurl = "s3://{bucket}/cache"\n\n[remote.options]\nendpoint_url = "{client.meta.endpoint_url}"\n',
        encoding="utf-8")
    assert api.build([story_path(project)], engine=CountingEngine(), cache_dir=tmp_path / "a").exit_code == 0

    pushed = run("cache", "push", project / "stories", "--cache-dir", tmp_path / "a")
    assert pushed.exit_code == 0, pushed.output
    assert pushed.output.startswith("pushed ") and f"(s3://{bucket}/cache)" in pushed.output
    pulled = run("cache", "pull", story_path(project), "--cache-dir", tmp_path / "b", "--json")
    assert pulled.exit_code == 0, pulled.output
    data = json.loads(pulled.output)
    recorded = [n for n in json.loads(lock_path(story_path(project)).read_text())["nodes"].values() if n["output"]]
    assert data["ok"] and len(data["transferred"]) == len(recorded)
    assert data["bytes"] > 0

    # the object behind one key goes bad on the remote: pull says so and exits 1
    victim = data["transferred"][0]
    sha = json.loads(client.get_object(Bucket=bucket, Key=f"cache/keys/{victim[:2]}/{victim}.json")["Body"].read())["sha256"]
    client.put_object(Bucket=bucket, Key=f"cache/objects/{sha[:2]}/{sha}", Body=b"tampered")
    bad = run("cache", "pull", story_path(project), "--cache-dir", tmp_path / "c")
    assert bad.exit_code == 1
    assert f"{victim[:16]}: corrupt on the remote" in bad.output
    assert not Cache(tmp_path / "c").lookup(victim).hit


def test_cli_messages_without_a_remote_or_a_lock_file(tmp_path, monkeypatch):
    monkeypatch.delenv("KOLORSC_REMOTE", raising=False)
    project = make_project(tmp_path / "project")
    no_lock = run("cache", "pull", story_path(project), "--cache-dir", tmp_path / "c")
    assert no_lock.exit_code == 2 and "no lock file classroom-dream.lock (build the story first)" in no_lock.output
    assert api.build([story_path(project)], engine=CountingEngine(), cache_dir=tmp_path / "c").exit_code == 0
    monkeypatch.chdir(project)
    no_remote = run("cache", "push", "stories", "--cache-dir", tmp_path / "c")
    assert no_remote.exit_code == 2
    assert "no remote cache: pass --remote URL" in no_remote.output and "kolorsc.toml" in no_remote.output
    (project / "kolorsc.toml").write_text('[remot]\nurl = "s3://b"\n', encoding="utf-8")
    typo = run("cache", "push", "stories", "--cache-dir", tmp_path / "c")
    assert typo.exit_code == 2 and "unknown section [remot] (did you mean [remote]?)" in typo.output


def test_missing_backends_say_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "fsspec", None)  # as on a machine without the remote extra
    with pytest.raises(UsageError, match=r"pip install 'kolorsc\[remote\]'"):
        Remote((tmp_path / "x").as_uri())
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "ossfs", None)
    with pytest.raises(UsageError, match=r"oss:// remotes need ossfs: pip install 'kolorsc\[remote\]'"):
        Remote("oss://bucket/prefix")
    with pytest.raises(UsageError, match="cannot open remote"):
        Remote("nosuchproto://x/y")
