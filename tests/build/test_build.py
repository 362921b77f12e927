"""The build's incremental behaviour, end to end with the preview engine and the real emitters.

One cold build is made per module; each test starts from a copy of its project and cache
and counts the engine's work on the next build.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kolorsc import api
from kolorsc.build import lockfile
from kolorsc.cache import Cache
from kolorsc.build.lockfile import lock_path

from _build_fixtures import STORY, CountingEngine, edit, make_project, story_path, tree_bytes


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A project and cache after one cold preview build of the example story."""
    base = tmp_path_factory.mktemp("built")
    project = make_project(base / "project")
    engine = CountingEngine()
    summary = api.build([story_path(project)], engine=engine, cache_dir=base / "cache")
    assert summary.exit_code == 0, summary.to_json()
    assert len(engine.rendered) == 8
    return base


@pytest.fixture
def fresh(built, tmp_path):
    """A private copy of the built project and cache: (project, cache dir)."""
    shutil.copytree(built / "project", tmp_path / "project")
    shutil.copytree(built / "cache", tmp_path / "cache")
    return tmp_path / "project", tmp_path / "cache"


def rebuild(project: Path, cache: Path, engine=None, **kw):
    engine = engine or CountingEngine()
    summary = api.build([story_path(project)], engine=engine, cache_dir=cache, **kw)
    return summary, engine


def out_dir(project: Path) -> Path:
    return project / "build" / STORY


def test_cold_build_writes_every_output_and_the_lock(built):
    out = out_dir(built / "project")
    names = set(tree_bytes(out))
    assert {f"panels/{i:02d}.png" for i in range(1, 9)} <= names
    assert {"storyboard.png", "storyboard.pdf", "scores.json", f"kolorsc-可图Kolors训练-{STORY}.zip"} <= names
    lock = lockfile.read(lock_path(story_path(built / "project"))).lock
    assert lock is not None and lock.story == STORY and lock.engine == "preview"
    # every output file in build/ is what the lock file recorded
    for node_id in ("storyboard", "pdf", "panel/03"):
        entry = lock.nodes[node_id]
        name = {"storyboard": "storyboard.png", "pdf": "storyboard.pdf", "panel/03": "panels/03.png"}[node_id]
        assert Cache(built / "cache").lookup(entry.key).entry.sha256 == entry.output
        assert (out / name).stat().st_size > 0


def test_second_build_with_no_change_does_no_work(fresh):
    project, cache = fresh
    lock_before = lock_path(story_path(project)).read_bytes()
    outputs_before = tree_bytes(out_dir(project))
    summary, engine = rebuild(project, cache)
    outcome = summary.outcomes[0]
    assert engine.rendered == []
    assert outcome.status == "up-to-date" and outcome.report.ran == {} and outcome.report.written == []
    assert lock_path(story_path(project)).read_bytes() == lock_before
    assert tree_bytes(out_dir(project)) == outputs_before


def test_changing_one_prompt_rerenders_exactly_that_panel(fresh):
    project, cache = fresh
    edit(story_path(project), "盯着黑板，深思", "盯着窗外，发呆")  # scene 1 only (first match)
    plan = api.plan(story_path(project), engine=CountingEngine(), cache_dir=cache)
    to_run = {str(n.id): n.why for n in plan.to_run() if n.kind == "render"}
    assert list(to_run) == ["render/01/seed-1"]
    (why,) = to_run["render/01/seed-1"]  # old → new, as the lock file recorded it
    text, at = why.split(" at ")  # and the line that holds it
    assert text.startswith("prompt ") and text.endswith("盯着窗外，发呆，上半身") and "盯着黑板，深思" in text
    assert at == f"{story_path(project)}:29"
    summary, engine = rebuild(project, cache)
    assert summary.exit_code == 0
    assert engine.rendered == [(1, 1)]


def test_changing_the_style_rerenders_all_eight(fresh):
    project, cache = fresh
    edit(project / "styles" / "ink-wash.yaml", "trigger: 古风，水墨画", "trigger: 古风，工笔画")
    summary, engine = rebuild(project, cache)
    assert summary.exit_code == 0
    assert sorted(engine.rendered) == [(i, i) for i in range(1, 9)]


def test_changing_only_a_caption_reemits_the_storyboard_and_renders_nothing(fresh):
    project, cache = fresh
    board_before = (out_dir(project) / "storyboard.png").read_bytes()
    edit(story_path(project), "caption: 王子骑马而来", "caption: 王子骑着白马来了")
    plan = api.plan(story_path(project), engine=CountingEngine(), cache_dir=cache)
    assert [n for n in plan.to_run() if n.kind in ("render", "select")] == []
    assert plan.node("storyboard").why == ("captions changed",)
    summary, engine = rebuild(project, cache)
    assert engine.rendered == []
    ran = summary.outcomes[0].report.ran
    assert ran.get("storyboard") == 1 and "render" not in ran
    assert (out_dir(project) / "storyboard.png").read_bytes() != board_before


def test_crash_inside_render_leaves_nothing_trusted_and_next_build_completes(fresh):
    project, cache = fresh
    lock_before = lock_path(story_path(project)).read_bytes()
    board_before = (out_dir(project) / "storyboard.png").read_bytes()
    edit(project / "styles" / "ink-wash.yaml", "trigger: 古风，水墨画", "trigger: 水彩画")

    crashing = CountingEngine(fail_after=3)
    summary = api.build([story_path(project)], engine=crashing, cache_dir=cache)
    assert summary.exit_code == 1 and "simulated crash" in summary.outcomes[0].error
    # the lock file and the outputs are those of the last successful build
    assert lock_path(story_path(project)).read_bytes() == lock_before
    assert (out_dir(project) / "storyboard.png").read_bytes() == board_before

    summary, engine = rebuild(project, cache)
    assert summary.exit_code == 0
    assert len(engine.rendered) == 5  # the three panels stored before the crash are reused
    assert lock_path(story_path(project)).read_bytes() != lock_before


def test_crash_inside_emit_writes_no_lock_and_next_build_completes(fresh, monkeypatch):
    project, cache = fresh
    lock_before = lock_path(story_path(project)).read_bytes()
    edit(story_path(project), "caption: 开始睡着了", "caption: 睡着了")
    import kolorsc.build.stages.pdf as pdf_stage

    def broken(*args, **kwargs):
        raise OSError("disk full while writing the PDF")

    real = pdf_stage.storyboard_pdf
    monkeypatch.setattr(pdf_stage, "storyboard_pdf", broken)
    summary, _ = rebuild(project, cache)
    assert summary.exit_code == 1 and "pdf" in summary.outcomes[0].error
    assert lock_path(story_path(project)).read_bytes() == lock_before

    monkeypatch.setattr(pdf_stage, "storyboard_pdf", real)
    plan = api.plan(story_path(project), engine=CountingEngine(), cache_dir=cache)
    assert plan.node("pdf").status == "to-run"
    assert plan.node("storyboard").status == "cached"  # made before the crash, kept
    summary, engine = rebuild(project, cache)
    assert summary.exit_code == 0 and engine.rendered == []
    ran = summary.outcomes[0].report.ran
    assert ran["pdf"] == 1 and "storyboard" not in ran and "panel" not in ran


def test_keep_going_stores_every_output_that_does_not_need_the_failed_one(fresh, monkeypatch):
    project, cache = fresh
    lock_before = lock_path(story_path(project)).read_bytes()
    edit(story_path(project), "title: 课堂上的梦", "title: 课堂里的梦")
    import kolorsc.build.stages.pdf as pdf_stage

    monkeypatch.setattr(pdf_stage, "storyboard_pdf", lambda *a: (_ for _ in ()).throw(OSError("broken")))
    summary, _ = rebuild(project, cache, keep_going=True)
    assert summary.exit_code == 1 and "pdf: broken" in summary.outcomes[0].error
    assert lock_path(story_path(project)).read_bytes() == lock_before

    monkeypatch.undo()
    plan = api.plan(story_path(project), engine=CountingEngine(), cache_dir=cache)
    assert [str(n.id) for n in plan.to_run()] == ["pdf"]


def test_corrupted_cache_entry_is_detected_and_rebuilt(fresh):
    project, cache = fresh
    lock = lockfile.read(lock_path(story_path(project))).lock
    obj = Cache(cache).object_path(lock.nodes["render/04/seed-4"].key)
    data = bytearray(obj.read_bytes())
    data[100] ^= 0xFF
    obj.write_bytes(bytes(data))

    plan = api.plan(story_path(project), engine=CountingEngine(), cache_dir=cache)
    node = plan.node("render/04/seed-4")
    assert node.status == "to-run" and node.why[0].startswith("cache entry corrupt")
    summary, engine = rebuild(project, cache)
    assert summary.exit_code == 0 and engine.rendered == [(4, 4)]
    assert Cache(cache).lookup(node.key).hit


def test_two_clean_builds_are_byte_identical(built, tmp_path):
    project = make_project(tmp_path / "other")
    summary, _ = rebuild(project, tmp_path / "cache2")
    assert summary.exit_code == 0
    assert tree_bytes(out_dir(project)) == tree_bytes(out_dir(built / "project"))
    assert lock_path(story_path(project)).read_bytes() == lock_path(story_path(built / "project")).read_bytes()


def test_team_rename_replaces_the_bundle_and_renders_nothing(fresh):
    project, cache = fresh
    edit(story_path(project), "team: kolorsc", "team: ink-lab")
    summary, engine = rebuild(project, cache)
    assert summary.exit_code == 0 and engine.rendered == []
    assert [p.name for p in out_dir(project).glob("*.zip")] == [f"ink-lab-可图Kolors训练-{STORY}.zip"]


def test_dry_run_runs_nothing_and_explains(fresh):
    project, cache = fresh
    edit(story_path(project), "seed: 0", "seed: 10")
    lock_before = lock_path(story_path(project)).read_bytes()
    summary, engine = rebuild(project, cache, dry_run=True)
    assert engine.rendered == [] and summary.outcomes[0].status == "planned"
    renders = [n for n in summary.outcomes[0].plan.nodes if n.kind == "render"]
    # ids carry the seed: each render replaces the one of its panel, and says which line moved it
    seed = summary.outcomes[0].plan.story.locs["defaults.seed"]
    assert [n.why for n in renders] == [(f"seed {i} → {i + 10} at {seed.file}:{seed.line}",) for i in range(1, 9)]
    assert all(n.status == "to-run" for n in renders)
    assert lock_path(story_path(project)).read_bytes() == lock_before


def test_collection_keeps_going_past_an_invalid_story(fresh):
    project, cache = fresh
    bad = project / "stories" / "broken.yaml"
    bad.write_text("kolorsc: 1\nid: broken\nscenes: []\n", "utf-8")
    summary = api.build([project / "stories"], engine=CountingEngine(), cache_dir=cache)
    statuses = {o.path.name: o.status for o in summary.outcomes}
    assert statuses == {"broken.yaml": "invalid", f"{STORY}.yaml": "up-to-date"}
    assert summary.exit_code == 2
    assert summary.outcomes[0].diagnostics  # broken.yaml sorts first and says why


CONCURRENT = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from _build_fixtures import CountingEngine
from kolorsc import api
engine = CountingEngine(marker_dir=Path(sys.argv[3]), delay=0.05)
summary = api.build([Path(sys.argv[1])], engine=engine, cache_dir=Path(sys.argv[2]), out=Path(sys.argv[4]))
sys.exit(summary.exit_code)
"""


def test_two_concurrent_builds_on_one_cache_render_each_panel_once(tmp_path):
    project = make_project(tmp_path / "project")
    markers = tmp_path / "markers"
    markers.mkdir()
    script = CONCURRENT.format(tests=str(Path(__file__).parents[1]))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(story_path(project)), str(tmp_path / "cache"), str(markers),
             str(tmp_path / f"out{i}")],
            stderr=subprocess.PIPE,
        )
        for i in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    rendered = sorted(m.name.split("-")[0] for m in markers.iterdir())
    assert rendered == [f"{i:02d}" for i in range(1, 9)]
    assert tree_bytes(tmp_path / "out0" / STORY) == tree_bytes(tmp_path / "out1" / STORY)
    assert json.loads((tmp_path / "out0" / STORY / "scores.json").read_bytes())


def test_build_killed_mid_render_is_completed_by_the_next_build(built, tmp_path):
    """A real SIGKILL while panels are being rendered: the next build trusts nothing half
    written, reuses what was stored, and ends with the same bytes as an uninterrupted build."""
    import signal
    import time

    project = make_project(tmp_path / "project")
    markers = tmp_path / "markers"
    markers.mkdir()
    script = CONCURRENT.format(tests=str(Path(__file__).parents[1])).replace("delay=0.05", "delay=0.4")
    proc = subprocess.Popen([sys.executable, "-c", script, str(story_path(project)), str(tmp_path / "cache"),
                             str(markers), str(project / "build")])
    deadline = time.time() + 60
    while len(list(markers.iterdir())) < 3 and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not lock_path(story_path(project)).exists()

    summary, engine = rebuild(project, tmp_path / "cache")
    assert summary.exit_code == 0
    assert 0 < len(engine.rendered) <= 6  # at least two panels were stored before the kill
    assert tree_bytes(out_dir(project)) == tree_bytes(out_dir(built / "project"))
