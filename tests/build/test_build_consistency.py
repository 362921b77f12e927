"""`kolorsc build` on a story with character consistency, through the build core, with engines
that draw drafts (no torch): what the engine is given (pictures and sheets, one call per story
that shares attention), what is cached and rebuilt, what the plan says, what build/<id>/ holds.
The kolors engine on tiny real modules: tests/engines/test_kolors_consistency_build.py."""

from __future__ import annotations

import io
import json

import pytest
from _build_fixtures import REPO, CountingEngine, RealishEngine, edit, make_project, story_path, use_lora_file_style
from PIL import Image

from kolorsc import api
from kolorsc.build import lockfile
from kolorsc.build.executors import LocalExecutor
from kolorsc.build.stages.base import Env
from kolorsc.hashing import sha256_bytes

STORY = "hero-dragon"  # hero in every panel, the dragon in 3 and 5, the princess in 7 and 8
DRAGON = "    look: 巨大的守护龙，鳞片闪耀\n"
PRINCESS = "    look: 公主，穿着破旧的礼服\n"


class Recording(RealishEngine):
    """A non-preview engine drawing drafts, keeping every job it was given, per render call."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.calls: list[list] = []

    def render(self, jobs, lora, progress=None):
        self.calls.append(list(jobs))
        yield from super().render(jobs, lora, progress)

    def jobs(self) -> dict:
        return {(j.panel.index, j.seed): j for call in self.calls for j in call}


class Drafts(CountingEngine):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.jobs = []

    def render(self, jobs, lora, progress=None):
        self.jobs += list(jobs)
        yield from super().render(jobs, lora, progress)


def picture(colour) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 40), colour).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def project(tmp_path):
    project = make_project(tmp_path / "project", stories=(STORY,))
    use_lora_file_style(project).write_bytes(b"lora weights" * 100)
    path = story_path(project, STORY)
    (project / "stories" / "dragon.png").write_bytes(picture((200, 30, 30)))
    edit(path, DRAGON, DRAGON + "    reference: dragon.png\n")
    edit(path, PRINCESS, PRINCESS + "    reference: generate\n")
    edit(path, "defaults:\n", "consistency:\n  ip_adapter: {scale: 0.5}\ndefaults:\n")
    return project


def build(project, tmp_path, engine, **kw):
    summary = api.build([story_path(project, STORY)], engine=engine, cache_dir=tmp_path / "cache",
                        models_dir=tmp_path / "models", **kw)
    assert summary.exit_code == 0, summary.to_json()
    return summary.outcomes[0]


def test_the_engine_gets_the_pictures_and_the_sheet_before_the_panels(project, tmp_path):
    engine = Recording()
    outcome = build(project, tmp_path, engine)
    sheet_call, panel_call = engine.calls  # the sheet wave, then every panel of the story in one call
    [sheet] = sheet_call
    assert sheet.panel.index == 0 and "公主" in sheet.panel.prompt and not sheet.consistent
    out = project / "build" / STORY
    sheet_png = (out / "characters" / "princess.png").read_bytes()
    jobs = engine.jobs()
    dragon = (project / "stories" / "dragon.png").read_bytes()
    for i in (3, 5):
        [ref] = jobs[(i, 100 + i)].references
        assert (ref.character, ref.scale, ref.image, ref.sha256) == ("dragon", 0.5, dragon, sha256_bytes(dragon))
    for i in (7, 8):
        [ref] = jobs[(i, 100 + i)].references
        assert (ref.character, ref.image) == ("princess", sheet_png)
    assert all(not jobs[(i, 100 + i)].consistent for i in (1, 2, 4, 6))
    assert outcome.report.result.sheets[0].image_hash == sha256_bytes(sheet_png)
    assert [lora.scale for lora in engine.loras] == [1.5, 1.5]  # the sheet is drawn in the story's style too

    lock = lockfile.read(lockfile.lock_path(story_path(project, STORY))).lock
    assert {"picture/dragon", "sheet/princess", "reference/dragon", "reference/princess"} <= set(lock.nodes)
    assert lock.nodes["picture/dragon"].output == sha256_bytes(dragon)
    assert lock.nodes["render/03/seed-103"].inputs["pictures"]["dragon"].startswith("#")

    again = Recording()
    outcome = build(project, tmp_path, again)
    assert again.calls == [] and outcome.status == "up-to-date" and outcome.report.ran == {}


def test_a_new_reference_picture_re_renders_exactly_its_characters_panels_and_says_why(project, tmp_path):
    build(project, tmp_path, Recording())
    (project / "stories" / "dragon.png").write_bytes(picture((20, 30, 230)))
    plan = api.plan(story_path(project, STORY), engine=Recording(), cache_dir=tmp_path / "cache",
                    models_dir=tmp_path / "models")
    line = plan.story.locs["characters.dragon.reference"].line
    renders = {str(n.id): n.why for n in plan.to_run() if n.kind == "render"}
    assert renders == {f"render/0{i}/seed-10{i}": (f"reference picture of dragon changed at {plan.story.path}:{line}",)
                       for i in (3, 5)}
    assert plan.node("picture/dragon").why == (f"reference picture changed at {plan.story.path}:{line}",)
    assert plan.node("sheet/princess").status == "cached"

    engine = Recording()
    outcome = build(project, tmp_path, engine)
    assert sorted(engine.jobs()) == [(3, 103), (5, 105)] and outcome.report.ran["render"] == 2


def test_a_sheet_is_cached_shown_and_removed_with_its_reference(project, tmp_path):
    build(project, tmp_path, Recording())
    out = project / "build" / STORY
    assert (out / "characters" / "princess.png").is_file()
    board = Image.open(out / "storyboard.png")
    path = story_path(project, STORY)
    edit(path, "    reference: generate\n", "    reference: dragon.png\n")  # the princess gets a file instead
    engine = Recording()
    build(project, tmp_path, engine)
    assert not (out / "characters" / "princess.png").exists()
    assert all(c.panel.index != 0 for call in engine.calls for c in call)  # no sheet rendered
    assert sorted(engine.jobs()) == [(7, 107), (8, 108)]
    assert Image.open(out / "storyboard.png").height < board.height  # no cast row any more


def test_a_story_that_shares_attention_is_one_whole_task(project, tmp_path):
    """The renders of a story that shares attention reach the engine in one call and one task
    marked `unsplittable` (an executor must not split it); other stories' renders are not marked."""
    edit(story_path(project, STORY), "  ip_adapter: {scale: 0.5}\n", "  ip_adapter: {scale: 0.5}\n"
                                                                    "  shared_attention: {identity: 2}\n")
    plain = (REPO / "stories" / f"{STORY}.yaml").read_text("utf-8").replace("id: hero-dragon", "id: plain")
    (project / "stories" / "plain.yaml").write_text(plain, "utf-8")  # the same story, without consistency

    class Spy(LocalExecutor):
        tasks = []

        def run(self, tasks):
            Spy.tasks += [t for t in tasks if t.kind == "render"]
            return super().run(tasks)

    engine = Recording()
    env = Env(engine, tmp_path / "models")
    summary = api.build([story_path(project, STORY), project / "stories" / "plain.yaml"], engine=engine,
                        cache_dir=tmp_path / "cache", models_dir=tmp_path / "models", executor=Spy(env))
    assert summary.exit_code == 0, summary.to_json()
    whole = [t for t in Spy.tasks if t.unsplittable]
    assert len(whole) == 1 and {w.graph.story.id for w in whole[0].work} == {STORY} and len(whole[0].work) == 8
    assert all(w.graph.story.id == "plain" for t in Spy.tasks if not t.unsplittable for w in t.work)
    assert whole[0].detached().unsplittable  # what a worker without the cache gets keeps the mark
    shared = [call for call in engine.calls if any(j.shared for j in call)]
    assert len(shared) == 1 and len(shared[0]) == 8
    assert [m.panel.index for m in shared[0][4].shared.identity] == [1, 2]


def test_the_preview_notes_references_on_its_drafts_and_draws_the_sheet(project, tmp_path):
    engine = Drafts()
    outcome = build(project, tmp_path, engine)
    assert {n.kind for n in outcome.plan.nodes} & {"picture", "reference"} == set()
    jobs = {j.panel.index: j for j in engine.jobs}
    assert [(r.character, r.scale, r.image) for r in jobs[3].references] == [("dragon", 0.5, b"")]
    assert not jobs[1].consistent and jobs[0].panel.caption == "公主"  # the sheet, drafted
    out = project / "build" / STORY
    assert (out / "characters" / "princess.png").is_file()
    # the note is drawn: panel 3's draft differs from the same draft without the reference
    from kolorsc.engines.base import RenderJob
    from kolorsc.engines.preview import consistency_note, draw_preview

    assert consistency_note(jobs[3]) == "IP-Adapter: dragon ×0.5"
    assert draw_preview(jobs[3], 128).tobytes() != draw_preview(RenderJob(jobs[3].panel, jobs[3].seed), 128).tobytes()
    assert draw_preview(jobs[1], 128).tobytes() == draw_preview(RenderJob(jobs[1].panel, jobs[1].seed), 128).tobytes()

    # a new picture: the drafts do not show it, nothing is drawn again
    (project / "stories" / "dragon.png").write_bytes(picture((20, 30, 230)))
    again = Drafts()
    assert build(project, tmp_path, again).status == "up-to-date" and again.rendered == []
    # a new scale: the plan says which, from where; the drafts that note it are drawn again, and only those
    edit(story_path(project, STORY), "ip_adapter: {scale: 0.5}", "ip_adapter: {scale: 0.7}")
    plan = api.plan(story_path(project, STORY), engine=Drafts(), cache_dir=tmp_path / "cache",
                    models_dir=tmp_path / "models")
    line = plan.story.locs["consistency.ip_adapter.scale"].line
    assert plan.node("render/07/seed-107").why == (
        f"ip_adapter scale of princess 0.5 → 0.7 at {plan.story.path}:{line}",)
    assert plan.node("sheet/princess").status == "cached"  # the sheet does not use the adapter
    scaled = Drafts()
    build(project, tmp_path, scaled)
    assert sorted(scaled.rendered) == [(3, 103), (5, 105), (7, 107), (8, 108)]


def test_scores_compare_each_character_with_its_panels_and_picture(project, tmp_path):
    from _extras import require_models

    require_models()
    from _scoring_fixtures import make_aesthetic_model

    from kolorsc.cache import Cache

    make_aesthetic_model(tmp_path / "models")
    outcome = build(project, tmp_path, Recording())
    result = outcome.report.result
    chars = {c.character: c for c in result.scores.characters}
    assert list(chars) == ["hero", "princess", "dragon"]  # story order
    assert chars["dragon"].panels == (3, 5) and chars["hero"].reference is None
    assert chars["dragon"].reference is not None and chars["princess"].reference is not None

    # the numbers are the cosines of what the score and reference nodes recorded
    import numpy as np

    cache = Cache(tmp_path / "cache")
    lock = lockfile.read(lockfile.lock_path(story_path(project, STORY))).lock

    def vector(node, field):
        return np.array(json.loads(cache.read_bytes(lock.nodes[node].key))[field])

    def cos(a, b):
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    ref = vector("reference/dragon", "embedding")
    panels = [json.loads(cache.read_bytes(lock.nodes[f"score/0{i}/seed-10{i}"].key))["score"]["embedding"] for i in (3, 5)]
    assert chars["dragon"].reference == pytest.approx(np.mean([cos(np.array(p), ref) for p in panels]))
    assert chars["dragon"].mean == pytest.approx(cos(np.array(panels[0]), np.array(panels[1])))
    # a candidate's consistency: to the other chosen panels of its characters and their pictures
    three = result.panels[2].chosen
    assert three.consistency is not None and result.panels[1].chosen.consistency is not None
    scores = json.loads((project / "build" / STORY / "scores.json").read_bytes())
    assert [c["character"] for c in scores["characters"]] == ["hero", "princess", "dragon"]
    assert scores["panels"][2]["consistency"] == three.consistency
    from kolorsc.emit.common import consistency_line

    assert consistency_line(result).startswith("consistency: 女勇者 ")


def test_the_plan_names_the_sharing_setting_that_changed(project, tmp_path):
    path = story_path(project, STORY)
    edit(path, "  ip_adapter: {scale: 0.5}\n", "  shared_attention: {identity: 2, rate: 0.5}\n")
    build(project, tmp_path, Drafts())
    edit(path, "rate: 0.5}", "rate: 0.3}")
    plan = api.plan(path, engine=Drafts(), cache_dir=tmp_path / "cache", models_dir=tmp_path / "models")
    line = plan.story.locs["consistency.shared_attention.rate"].line
    for i in range(1, 9):  # every panel shares, and each holds the identity panels' rates too
        assert plan.node(f"render/0{i}/seed-10{i}").why == (
            "shared_attention identity changed", f"shared_attention rate 0.5 → 0.3 at {plan.story.path}:{line}")
