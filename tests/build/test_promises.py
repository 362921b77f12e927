"""Issue 10's promises, each pinned by the defect that broke it: a key holds everything that
makes its output (the code, the models), looking changes nothing, a damaged lock file is
said out loud, ModelScope data is keyed by what the hub holds, and the file-hash memo lives
in the cache that was chosen."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kolorsc import api
from kolorsc.build import lockfile
from kolorsc.build.lockfile import lock_path
from kolorsc.cache import HASHES_FILE, Cache

from _cli_fixtures import run as cli
from _build_fixtures import REPO, CountingEngine, RealishEngine, make_project, story_path, use_lora_file_style


def listing(folder: Path) -> dict[str, str]:
    """Every file under `folder` with the sha256 of its bytes and its mtime: what 'unchanged' means."""
    return {p.relative_to(folder).as_posix(): f"{hashlib.sha256(p.read_bytes()).hexdigest()} {p.stat().st_mtime_ns}"
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_editing_an_emitters_source_reruns_that_node_and_only_it(tmp_path):
    """The PDF emitter's source changes (in a copy of the package): the next build re-makes
    the PDF and nothing else, and the plan says why. No version was bumped by hand."""
    code = tmp_path / "code"
    shutil.copytree(REPO / "kolorsc", code / "kolorsc", ignore=shutil.ignore_patterns("__pycache__"))
    project = make_project(tmp_path / "project")
    env = {**os.environ, "PYTHONPATH": str(code)}

    def build(*extra):
        out = subprocess.run([sys.executable, "-m", "kolorsc.cli", "build", str(story_path(project)), "--cache-dir",
                              str(tmp_path / "cache"), "--json", *extra], capture_output=True, text=True, env=env,
                             timeout=300, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)["stories"][0]

    assert build()["ran"]["pdf"] == 1
    pdf = code / "kolorsc" / "emit" / "pdf.py"
    pdf.write_text(pdf.read_text("utf-8").replace("MARGIN = ", "MARGIN = 1 + ", 1), "utf-8")
    planned = {n["id"]: n for n in build("--dry-run")["nodes"]}
    assert [i for i, n in planned.items() if n["status"] == "to-run"] == ["pdf"]
    assert planned["pdf"]["why"] == ["pdf code changed"]
    assert build()["ran"] == {"pdf": 1}


def test_plan_and_dry_run_leave_a_damaged_cache_byte_identical(tmp_path):
    project = make_project(tmp_path / "project")
    cache = tmp_path / "cache"
    assert cli("build", story_path(project), "--cache-dir", cache, "--quiet").exit_code == 0
    lock = lockfile.read(lock_path(story_path(project))).lock
    damaged = Cache(cache).object_path(lock.nodes["render/02/seed-2"].key)
    damaged.write_bytes(b"not a png")
    (Cache(cache).objects / "ab").mkdir(exist_ok=True)
    (Cache(cache).objects / "ab" / ("ab" + "0" * 62 + ".json")).write_text("{broken")  # unreadable sidecar
    before = listing(cache)

    planned = cli("plan", story_path(project), "--cache-dir", cache)
    assert planned.exit_code == 0 and "cache entry corrupt" in planned.output
    dry = cli("build", story_path(project), "--cache-dir", cache, "--dry-run")
    assert dry.exit_code == 0 and "render/02/seed-2" in dry.output
    assert listing(cache) == before

    rebuilt = cli("build", story_path(project), "--cache-dir", cache, "--json")
    assert json.loads(rebuilt.output)["stories"][0]["ran"]["render"] == 1  # the run discards and rebuilds


def test_planning_a_lora_file_writes_no_memo_and_the_build_memoises_in_the_chosen_cache(tmp_path):
    project = make_project(tmp_path / "project", stories=("hero-dragon",))
    lora = use_lora_file_style(project)
    lora.write_bytes(b"lora weights" * 100)
    os.utime(lora, ns=(1_700_000_000_000_000_000,) * 2)  # not "racy": memoisable
    cache = tmp_path / "chosen-cache"
    api.plan(story_path(project, "hero-dragon"), engine=RealishEngine(), cache_dir=cache, models_dir=tmp_path / "m")
    assert not cache.exists()
    summary = api.build([story_path(project, "hero-dragon")], engine=RealishEngine(), cache_dir=cache,
                        models_dir=tmp_path / "m")
    assert summary.exit_code == 0, summary.to_json()
    memo = json.loads((cache / HASHES_FILE).read_text())
    assert str(lora) in memo and memo[str(lora)][2] == hashlib.sha256(lora.read_bytes()).hexdigest()

    # gc: a memo entry of a deleted file is forgotten; the old `state/` memo folder goes
    (cache / "state").mkdir()
    (cache / "state" / "x.sha256").write_text("00")
    lora.unlink()
    report = api.cache_gc(cache, older_than_days=30)
    assert "state" in {p.split("/")[0] for p in report.paths} and not (cache / "state").exists()
    assert str(lora) not in json.loads((cache / HASHES_FILE).read_text())


def test_build_files_hashes_are_remembered_and_a_hand_edit_is_still_restored(tmp_path):
    """A no-op build does not re-read build/<id>/'s files whose size and mtime it remembers (in
    the chosen cache's memo); a file edited since, even to the same size, is written back."""
    project, cache = make_project(tmp_path / "project"), tmp_path / "cache"
    assert api.build([story_path(project)], engine=CountingEngine(), cache_dir=cache).exit_code == 0
    out = project / "build" / "classroom-dream"
    board, good = out / "storyboard.png", (out / "storyboard.png").read_bytes()
    past = 1_600_000_000_000_000_000  # older than the memo's racy window, as any file after 2 s
    for f in out.rglob("*"):
        os.utime(f, ns=(past, past))
    assert api.build([story_path(project)], engine=CountingEngine(), cache_dir=cache).outcomes[0].report.written == []
    memo = json.loads((cache / HASHES_FILE).read_text())
    assert memo[str(board)] == [len(good), past, hashlib.sha256(good).hexdigest()]

    board.write_bytes(bytes(len(good)))  # same size, new mtime
    summary = api.build([story_path(project)], engine=CountingEngine(), cache_dir=cache)
    assert summary.outcomes[0].report.written == ["storyboard.png"]
    assert board.read_bytes() == good


@pytest.mark.parametrize("damage", ["{ not json", '{"nodes": {"render/01/seed-1": {"output": "x"}}}', "\udcff"])
def test_a_damaged_lock_file_is_a_warning_then_a_correct_build(tmp_path, damage):
    project = make_project(tmp_path / "project")
    lock = lock_path(story_path(project))
    lock.write_bytes(damage.encode("utf-8", "surrogateescape"))
    result = cli("build", story_path(project), "--cache-dir", tmp_path / "cache")
    assert result.exit_code == 0
    assert f"warning: {lock}: " in result.output and "building as if for the first time" in result.output
    rewritten = lockfile.read(lock)
    assert rewritten.problem is None and len(rewritten.lock.nodes) == 30


def test_a_modelscope_dataset_is_keyed_by_what_the_hub_holds(tmp_path, monkeypatch):
    """The hub's listing of the dataset's revision is an input of the dataset node (and so of
    the LoRA and every render). Offline, the listing recorded in the lock file stands, with a
    warning. (No hub here: its answer is simulated at kolorsc's one call to it.)"""
    import kolorsc.data

    project = make_project(tmp_path / "project", stories=("idol-diary",))
    story = story_path(project, "idol-diary")
    kw = {"engine": RealishEngine(), "cache_dir": tmp_path / "cache", "models_dir": tmp_path / "m"}

    monkeypatch.setattr(kolorsc.data, "modelscope_listing", lambda dataset: None)  # offline, no lock yet
    offline = api.plan(story, **kw)
    assert any("could not be checked" in w and "would not be noticed" in w for w in offline.warnings)

    monkeypatch.setattr(kolorsc.data, "modelscope_listing", lambda dataset: "a" * 32)
    first = api.plan(story, **kw)
    assert first.node("dataset").node.inputs["source"]["listing"] == "a" * 32 and not first.warnings
    lockfile.write(lock_path(story), api_lock(first))

    monkeypatch.setattr(kolorsc.data, "modelscope_listing", lambda dataset: "b" * 32)  # upstream changed
    moved = api.plan(story, **kw)
    assert moved.node("dataset").why == ("dataset listing changed",)
    assert moved.node("lora").key != first.node("lora").key
    render = first.of_kind("render")[0].id
    assert moved.node(render).key != first.node(render).key

    monkeypatch.setattr(kolorsc.data, "modelscope_listing", lambda dataset: None)  # offline again
    recorded = api.plan(story, **kw)
    assert recorded.node("dataset").key == first.node("dataset").key
    assert any("recorded in the lock file" in w for w in recorded.warnings)


def api_lock(plan):
    from kolorsc.build.run import lock_of
    from kolorsc.build.stages.base import Blob

    return lock_of(plan, {n.id: Blob("0" * 64) for n in plan.nodes})


def test_no_op_rebuild_runs_nothing_and_imports_no_emitter(tmp_path):
    project = make_project(tmp_path / "project")
    assert api.build([story_path(project)], engine=CountingEngine(), cache_dir=tmp_path / "cache").exit_code == 0
    code = ("import sys, json; from kolorsc import api; from _build_fixtures import CountingEngine; "
            f"s = api.build([{str(story_path(project))!r}], engine=CountingEngine(), cache_dir={str(tmp_path / 'cache')!r}); "
            "print(json.dumps([s.outcomes[0].status, sorted(m for m in sys.modules if m.startswith('kolorsc.emit'))]))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), str(REPO)])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == ["up-to-date", []]
