"""`kolorsc diff` on a real git repository of the three example stories (built once with the
preview engine, lock files committed): edits of the working tree against HEAD or an older
revision, the report per story and panel, and that nothing is written while looking."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from kolorsc.cli import main
from kolorsc.errors import UsageError
from kolorsc.review.diff import ADDED, DROPPED, INVALID, MODIFIED, NEW, REMOVED, RENAMED, SAME, UNCHANGED, diff
from kolorsc.review.present import as_text

from _build_fixtures import CountingEngine, RealishEngine
from _review_fixtures import build, copy_collection, edit, git, make_collection, snapshot

STORY = "classroom-dream"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("collection")
    make_collection(base)
    return base


@pytest.fixture
def repo(built, tmp_path):
    """(repository, cache): a private copy of the built, committed collection."""
    return copy_collection(built, tmp_path)


def look(repo, cache, *args, cwd=None, engine="drafts"):
    """diff() with the engine the collection was built with (128 px drafts), unless told."""
    return diff(args, cwd=cwd or repo, cache_dir=cache, engine=CountingEngine() if engine == "drafts" else engine)


def story_file(repo, name=STORY):
    return repo / "stories" / f"{name}.yaml"


def only(report, story_id):
    found = [s for s in report.stories if s.id == story_id]
    assert len(found) == 1, [s.id for s in report.stories]
    return found[0]


def test_no_change_reports_nothing(repo):
    repo, cache = repo
    report = look(repo, cache)
    assert report.stories == [] and report.unchanged == 3
    assert report.rev == "HEAD" and len(report.commit) == 40
    assert "0 new renders" in as_text(report)


def test_one_changed_scene_is_one_new_render_with_the_prompt_diff(repo):
    repo, cache = repo
    edit(story_file(repo), "站在路边", "站在河边")
    report = look(repo, cache)
    assert report.unchanged == 2
    s = only(report, STORY)
    assert s.status == MODIFIED and s.engine == "preview" and s.changes == []
    [panel] = s.changed_panels
    assert panel.index == 3 and panel.reasons == ["prompt changed"]
    [change] = panel.changes
    assert change.field == "prompt"
    assert ("-", "站在路边") in change.ops and ("+", "站在河边") in change.ops and ("=", "远处有朦胧的山影") in change.ops
    [render] = panel.renders
    assert render.status == NEW and render.reasons == ["prompt changed"] and not render.in_cache
    assert render.old.image is not None  # the revision's render was built and is in the cache
    assert [r.panel for r in report.new_renders] == [3]
    text = as_text(report)
    assert "[-站在路边-]{+站在河边+}" in text and "1 new render (0 in the cache)" in text

    build(repo, cache, STORY)  # the author renders it: now the new render is in the cache
    render = only(look(repo, cache), STORY).changed_panels[0].renders[0]
    assert render.status == NEW and render.in_cache and render.new.image.is_file()


def test_seed_and_settings_changes_say_so(repo):
    repo, cache = repo
    text = story_file(repo).read_text("utf-8")
    text = text.replace("    prompt: \"{{ girl }}，坐在教室里，趴在桌子上睡着了\"",
                        "    prompt: \"{{ girl }}，坐在教室里，趴在桌子上睡着了\"\n    seed: 42\n    cfg: 6", 1)
    story_file(repo).write_text(text, "utf-8")
    panel = only(look(repo, cache), STORY).changed_panels[0]
    assert panel.index == 2
    assert {c.field: (c.old, c.new) for c in panel.changes} == {"seed": (2, 42), "cfg": (4.0, 6.0)}
    assert "seed changed" in panel.reasons and "settings changed (steps, cfg, size or refine)" in panel.reasons
    assert {r.seed: r.status for r in panel.renders} == {2: DROPPED, 42: NEW}
    render = panel.renders[-1]
    assert render.old is None and render.reasons == ["new candidate"]


def test_caption_change_renders_nothing(repo):
    repo, cache = repo
    edit(story_file(repo), "caption: 开始睡着了", "caption: 睡着了")
    s = only(look(repo, cache), STORY)
    [panel] = s.changed_panels
    assert panel.reasons == ["caption changed (no re-render)"]
    assert [r.status for r in panel.renders] == [SAME] and s.new_renders == []


def test_a_reference_and_the_adapter_touch_exactly_that_characters_panels(repo):
    repo, cache = repo
    edit(story_file(repo), "    look: 一个英俊少年，白色长袍\n", "    look: 一个英俊少年，白色长袍\n    reference: generate\n")
    assert only(look(repo, cache), STORY).changed_panels == []  # a picture nobody uses yet changes no render
    edit(story_file(repo), "defaults:\n", "consistency:\n  ip_adapter: {scale: 0.6}\ndefaults:\n")
    s = only(look(repo, cache), STORY)
    assert [p.index for p in s.changed_panels] == [4, 5, 6]  # the scenes that name the prince
    assert all(r.status == NEW and r.reasons == ["ip_adapter scales changed"] for p in s.changed_panels
               for r in p.renders)
    # without the engine (keys from the lock file), the story's own consistency inputs still count
    from kolorsc import api
    from kolorsc.review.keys import intent_digests

    digests = intent_digests(*api.load(story_file(repo)))
    assert sorted(i for (i, _seed), d in digests.items() if "ip_adapter" in d) == [4, 5, 6]


def test_style_change_touches_every_story_using_it(repo):
    repo, cache = repo
    edit(repo / "styles" / "ink-wash.yaml", "trigger: 古风，水墨画", "trigger: 古风，水墨画，留白")
    report = look(repo, cache)
    s = only(report, STORY)
    assert [c.field for c in s.changes] == ["style.trigger"]
    assert len(s.changed_panels) == 8 and len(s.new_renders) == 8
    assert all(p.reasons == ["prompt changed"] for p in s.changed_panels)
    # the other stories use other styles: parsed (styles/ changed) but nothing differs
    assert {x.id: x.status for x in report.stories if x.id != STORY} == {"hero-dragon": UNCHANGED, "idol-diary": UNCHANGED}
    assert "0 new" not in as_text(report) and "8 new renders" in as_text(report)


def test_lora_change_is_reported_and_renders_nothing_with_the_preview_engine(repo):
    repo, cache = repo
    edit(repo / "styles" / "fairytale-3d.yaml", "scale: 2.0", "scale: 1.2")
    s = only(look(repo, cache), "hero-dragon")
    assert [(c.field, c.old, c.new) for c in s.changes] == [("lora.scale", 2.0, 1.2)]
    assert s.new_renders == []  # preview drafts are drawn without the LoRA


def test_added_removed_and_renamed_stories(repo):
    repo, cache = repo
    text = story_file(repo).read_text("utf-8").replace("id: classroom-dream", "id: classroom-dream-2")
    (repo / "stories" / "classroom-dream-2.yaml").write_text(text, "utf-8")  # untracked
    (repo / "stories" / "hero-dragon.yaml").unlink()
    (repo / "stories" / "hero-dragon.lock").unlink()
    shutil.move(repo / "stories" / "idol-diary.yaml", repo / "stories" / "idol.yaml")
    report = look(repo, cache)
    by_id = {s.id: s for s in report.stories}
    assert by_id["classroom-dream-2"].status == ADDED and len(by_id["classroom-dream-2"].new_renders) == 8
    assert by_id["hero-dragon"].status == REMOVED and by_id["hero-dragon"].new_renders == []
    renamed = by_id["idol-diary"]
    assert renamed.status == RENAMED and renamed.new_renders == []
    assert (renamed.old_path, renamed.new_path) == ("stories/idol-diary.yaml", "stories/idol.yaml")
    text = as_text(report)
    assert "+ classroom-dream-2" in text and "- hero-dragon" in text
    assert "> idol-diary  stories/idol-diary.yaml -> stories/idol.yaml" in text


def test_invalid_story_is_reported_not_fatal(repo):
    repo, cache = repo
    edit(story_file(repo), "  seed: 0", "  seed: zero")
    s = only(look(repo, cache), STORY)
    assert s.status == INVALID
    assert any("defaults.seed" in d and "classroom-dream.yaml:" in d for d in s.diagnostics)


def test_comment_edit_is_unchanged(repo):
    repo, cache = repo
    path = story_file(repo)
    path.write_text("# reviewed\n" + path.read_text("utf-8"), "utf-8")
    s = only(look(repo, cache), STORY)
    assert s.status == UNCHANGED and s.changed_panels == []


def test_older_revision_and_paths(repo):
    repo, cache = repo
    edit(story_file(repo), "站在路边", "站在河边")
    git(repo, "commit", "-q", "-am", "river")
    edit(story_file(repo, "hero-dragon"), "title: 勇者斩龙救公主", "title: 勇者屠龙")
    assert [s.id for s in look(repo, cache).stories] == ["hero-dragon"]
    report = look(repo, cache, "HEAD~1")
    assert [s.id for s in report.stories] == [STORY, "hero-dragon"] and report.rev == "HEAD~1"
    # PATHs limit the stories, relative to the current folder
    report = look(repo, cache, "HEAD~1", "classroom-dream.yaml", cwd=repo / "stories")
    assert [s.id for s in report.stories] == [STORY]


def test_keys_come_from_the_lock_files_when_the_engine_is_not_here(repo):
    """A lock built by an engine this machine cannot key (the kolors engine in CI without its
    weights; here a test engine): both sides' render keys are what their lock files recorded."""
    repo, cache = repo
    edit(story_file(repo, "hero-dragon"), "style: fairytale-3d",
         "style: {name: 3D, trigger: 高精度3D渲染, negative: 低分辨率}")
    build(repo, cache, "hero-dragon", engine=RealishEngine())
    git(repo, "commit", "-q", "-am", "built with the test engine")
    edit(story_file(repo, "hero-dragon"), "手持宝剑", "手持长枪")
    s = only(look(repo, cache, engine=None), "hero-dragon")
    assert s.engine == "test-real"
    # the working tree's lock file is stale: the changed panels are new renders, key unknown
    assert any("changed since its lock file was written" in n for n in s.notes)
    stale = s.new_renders
    assert stale and all(r.new.key == "" and not r.in_cache and r.reasons == ["prompt changed"] for r in stale)
    build(repo, cache, "hero-dragon", engine=RealishEngine())
    s = only(look(repo, cache, engine=None), "hero-dragon")
    assert any("taken from its lock file" in n for n in s.notes)
    assert {r.panel for r in s.new_renders} == {r.panel for r in stale}
    assert all(r.in_cache and r.new.key and r.reasons == ["prompt changed"] for r in s.new_renders)


def test_looking_writes_nothing(repo):
    repo, cache = repo
    edit(story_file(repo), "站在路边", "站在河边")
    (repo / "stories" / "new.yaml").write_text(story_file(repo).read_text("utf-8").replace(
        "id: classroom-dream", "id: new"), "utf-8")
    git_status = git(repo, "status", "--porcelain")  # (git status itself refreshes the index)
    before, cache_before = snapshot(repo), snapshot(cache)
    look(repo, cache)
    assert snapshot(repo) == before and snapshot(cache) == cache_before
    assert git(repo, "status", "--porcelain") == git_status


def test_outside_a_repository_and_bad_arguments(repo, tmp_path):
    repo, cache = repo
    outside = tmp_path / "plain"
    outside.mkdir()
    with pytest.raises(UsageError, match="not inside a git repository"):
        diff(cwd=outside)
    with pytest.raises(UsageError, match="neither a revision nor a path"):
        diff(["no-such-rev"], cwd=repo)
    git(repo, "branch", "stories")
    with pytest.raises(UsageError, match="both a revision and a path"):
        diff(["stories"], cwd=repo)
    assert look(repo, cache, "./stories").stories == []


def test_cli(repo, monkeypatch):
    repo, cache = repo
    edit(story_file(repo), "站在路边", "站在河边")
    monkeypatch.chdir(repo)
    runner = CliRunner()
    result = runner.invoke(main, ["diff", "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    assert "~ classroom-dream" in result.output and "panel 03" in result.output
    data = json.loads(runner.invoke(main, ["diff", "HEAD", "stories", "--json", "--cache-dir", str(cache)]).output)
    assert data["new_renders"] == 1 and data["stories"][0]["panels"][0]["index"] == 3
    monkeypatch.chdir(repo.parent)
    (repo.parent / "elsewhere").mkdir()
    monkeypatch.chdir(repo.parent / "elsewhere")
    result = runner.invoke(main, ["diff"])
    assert result.exit_code == 2 and "not inside a git repository" in result.output
