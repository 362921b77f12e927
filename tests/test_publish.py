"""`kolorsc publish`: the folder and metadata pushed to ModelScope, built from what the lock file
records, and the upload through the hub's three calls. ModelScope itself is not reachable
from this machine: the upload tests give publish() a recorder in the hub's place and check
what it was asked to do; the folder is checked file by file."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
import yaml
from _cli_fixtures import run
from _build_fixtures import (
    REPO,
    CountingEngine,
    RealishEngine,
    make_project,
    story_path,
    use_lora_file_style,
)

from kolorsc import api
from kolorsc.errors import BuildError, UsageError
from kolorsc.lora import LoraLayer, kohya_metadata, write_diffsynth, write_kohya
from kolorsc.publish import dataset_line, lora_facts, publish
from kolorsc.spec import load_story

STORY = "hero-dragon"
REPO_ID = "kolorsc-team/kolorsc-Kolors-hero-dragon"
BUNDLE = "kolorsc-可图Kolors训练-hero-dragon"


def tiny_lora(path, rank=4, alpha=2.0):
    g = torch.Generator().manual_seed(0)
    layers = {"blocks.7.transformer_blocks.0.attn1.to_q": LoraLayer(torch.randn(rank, 8, generator=g),
                                                                    torch.randn(8, rank, generator=g), alpha)}
    write_kohya(path, layers, kohya_metadata(rank, alpha))
    return path.read_bytes()


@pytest.fixture
def built(tmp_path, monkeypatch):
    """hero-dragon built with a real (tiny) kohya LoRA by an engine that is not a preview."""
    monkeypatch.delenv("MODELSCOPE_API_TOKEN", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no saved `modelscope login`
    monkeypatch.delenv("MODELSCOPE_HOME", raising=False)
    project = make_project(tmp_path / "project", stories=(STORY,))
    lora = tiny_lora(use_lora_file_style(project))
    summary = api.build([story_path(project, STORY)], engine=RealishEngine(), cache_dir=tmp_path / "cache",
                        models_dir=tmp_path / "models")
    assert summary.exit_code == 0, summary.to_json()
    return project, lora


def files_of(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_dry_run_writes_the_exact_folder_and_metadata(built, tmp_path):
    project, lora = built
    story = story_path(project, STORY)
    result = run("publish", story, "--dry-run", "--owner", "kolorsc-team", "--cache-dir", tmp_path / "cache")
    assert result.exit_code == 0, result.output
    assert f'would publish to {REPO_ID} as "{BUNDLE}" (public)' in result.output
    assert "the aesthetic gate could not be checked" in result.output  # a warning: no scorer weights here

    folder = project / "build" / STORY / "modelscope"
    files = files_of(folder)
    assert sorted(files) == ["README.md", "configuration.json", "fairytale-3d.safetensors",
                             *[f"images/{i:02d}.png" for i in range(1, 9)],
                             "prompts.json", "prompts.md", "scores.json", "workflow_comfyui.json"]
    assert files["fairytale-3d.safetensors"] == lora
    panels = project / "build" / STORY / "panels"
    assert all(files[f"images/{i:02d}.png"] == (panels / f"{i:02d}.png").read_bytes() for i in range(1, 9))
    assert json.loads(files["configuration.json"]) == {"framework": "pytorch", "task": "text-to-image-synthesis"}

    card = files["README.md"].decode("utf-8")
    _, front, body = card.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["base_model"] == ["Kwai-Kolors/Kolors"] and meta["tasks"] == ["text-to-image-synthesis"]
    assert meta["base_model_relation"] == "adapter" and "可图Kolors训练" in meta["tags"]
    assert f"# {BUNDLE}" in body and f"`{BUNDLE}.zip`" in body
    assert "| Trigger | 高精度3D渲染，宫崎骏风格，童话插画，高清细节，动态光影 |" in body
    assert "`fairytale-3d.safetensors`, rank 4, alpha 2.0; render scale 1.5" in body
    assert "| Dataset | not trained by this build: the style reuses a file |" in body
    assert "![01](images/01.png)<br>勇者出发" in body and "![08](images/08.png)" in body
    assert "`lora/" not in body  # the bundle's card, pointed at the repository's layout

    meta = json.loads((project / "build" / STORY / "modelscope.json").read_text("utf-8"))
    assert meta["repo_id"] == REPO_ID and meta["chinese_name"] == BUNDLE and meta["visibility"] == "public"
    assert meta["files"] == {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    bundle = project / "build" / STORY / f"{BUNDLE}.zip"
    assert meta["bundle"]["sha256"] == hashlib.sha256(bundle.read_bytes()).hexdigest()

    again = run("publish", story, "--dry-run", "--owner", "kolorsc-team", "--cache-dir", tmp_path / "cache")
    assert again.exit_code == 0 and files_of(folder) == files  # same build, same folder


class Hub:
    """Records what publish asks ModelScope to do."""

    def __init__(self, exists=False, fail=None):
        self.calls, self.exists_, self.fail, self.uploaded = [], exists, fail, None

    def exists(self, repo):
        self.calls.append(("exists", repo))
        return self.exists_

    def create(self, repo, private, chinese_name):
        self.calls.append(("create", repo, private, chinese_name))

    def upload(self, repo, folder, message):
        if self.fail:
            raise self.fail
        self.calls.append(("upload", repo, folder.name, message))
        self.uploaded = files_of(folder)


def test_upload_creates_the_repository_once_then_pushes_the_folder(built, tmp_path):
    project, _ = built
    story = story_path(project, STORY)
    hub = Hub()
    pub = publish(story, hub=hub, owner="kolorsc-team", cache_dir=tmp_path / "cache", private=True)
    assert pub.url == f"https://modelscope.cn/models/{REPO_ID}"
    assert hub.calls[:2] == [("exists", REPO_ID), ("create", REPO_ID, True, BUNDLE)]
    assert hub.calls[2][:3] == ("upload", REPO_ID, "modelscope") and hub.calls[2][3].startswith("kolorsc publish hero-dragon")
    assert hub.uploaded == files_of(project / "build" / STORY / "modelscope")

    again = Hub(exists=True)
    publish(story, hub=again, owner="kolorsc-team", cache_dir=tmp_path / "cache")
    assert [c[0] for c in again.calls] == ["exists", "upload"]
    with pytest.raises(BuildError, match="upload to ModelScope kolorsc-team/.* failed: ConnectionError"):
        publish(story, hub=Hub(fail=ConnectionError("modelscope.cn unreachable")), owner="kolorsc-team",
                cache_dir=tmp_path / "cache")


def test_without_a_token_the_message_says_how_to_log_in(built, tmp_path):
    project, _ = built
    result = run("publish", story_path(project, STORY), "--owner", "kolorsc-team", "--cache-dir", tmp_path / "cache")
    assert result.exit_code == 2
    assert "not logged in to ModelScope" in result.output and "MODELSCOPE_API_TOKEN=<token>" in result.output
    assert "modelscope login" in result.output and "https://modelscope.cn/my/myaccesstoken" in result.output


def test_what_cannot_be_published(built, tmp_path, monkeypatch):
    project, _ = built
    story = story_path(project, STORY)
    no_owner = run("publish", story, "--dry-run", "--cache-dir", tmp_path / "cache")
    assert no_owner.exit_code == 2 and "Pass --owner NAME" in no_owner.output
    (project / "kolorsc.toml").write_text('[publish]\nowner = "from-config"\n', "utf-8")
    assert "from-config/kolorsc-Kolors-hero-dragon" in run("publish", story, "--dry-run", "--cache-dir", tmp_path / "cache").output
    assert "repository name 'bad name'" in run("publish", story, "--dry-run", "--name", "bad name").output

    # the bundle in build/ is not the one the lock file records, and the cache is elsewhere
    bundle = project / "build" / STORY / f"{BUNDLE}.zip"
    bundle.write_bytes(bundle.read_bytes() + b"\0")
    from_cache = run("publish", story, "--dry-run", "--cache-dir", tmp_path / "cache")
    assert from_cache.exit_code == 0  # the cache holds the bundle the lock records
    stale = run("publish", story, "--dry-run", "--cache-dir", tmp_path / "elsewhere")
    assert stale.exit_code == 2 and "is neither in" in stale.output

    preview = make_project(tmp_path / "preview", stories=(STORY,))
    use_lora_file_style(preview).write_bytes(b"x")
    assert api.build([story_path(preview, STORY)], engine=CountingEngine(), cache_dir=tmp_path / "c2").exit_code == 0
    out = run("publish", story_path(preview, STORY), "--dry-run", "--owner", "o", "--cache-dir", tmp_path / "c2")
    assert out.exit_code == 2 and "preview engine" in out.output


def test_a_fresh_clone_publishes_from_the_cache(tmp_path, monkeypatch):
    """No build/ folder (a clone after `kolorsc cache pull`): the bundle comes from the cache,
    where a build with scores stores it."""
    from _build_fixtures import edit
    from _scoring_fixtures import make_aesthetic_model

    project = make_project(tmp_path / "project", stories=(STORY,))
    tiny_lora(use_lora_file_style(project))
    edit(story_path(project, STORY), "team: kolorsc\n", "team: kolorsc\nthreshold: 0\n")  # a random tiny predictor
    make_aesthetic_model(tmp_path / "models")
    assert api.build([story_path(project, STORY)], engine=RealishEngine(), cache_dir=tmp_path / "cache",
                     models_dir=tmp_path / "models").exit_code == 0
    bundle = (project / "build" / STORY / f"{BUNDLE}.zip").read_bytes()
    import shutil

    shutil.rmtree(project / "build")
    pub = publish(story_path(project, STORY), dry_run=True, owner="o", cache_dir=tmp_path / "cache")
    meta = json.loads(pub.metadata_path.read_text("utf-8"))
    assert meta["bundle"]["sha256"] == hashlib.sha256(bundle).hexdigest() and pub.warnings == []


def test_a_bundle_breaking_the_rules_needs_force(tmp_path, monkeypatch):
    project = make_project(tmp_path / "project", stories=(STORY,))
    use_lora_file_style(project).write_bytes(b"not a safetensors file")
    assert api.build([story_path(project, STORY)], engine=RealishEngine(), cache_dir=tmp_path / "cache",
                     models_dir=tmp_path / "models").exit_code == 0
    with pytest.raises(BuildError, match="breaks the challenge's rules, not published: .*not a loadable safetensors"):
        publish(story_path(project, STORY), dry_run=True, owner="o", cache_dir=tmp_path / "cache")
    pub = publish(story_path(project, STORY), dry_run=True, owner="o", cache_dir=tmp_path / "cache", force=True)
    assert any("not a loadable safetensors" in w for w in pub.warnings)
    assert "rank unknown, alpha unknown" in (pub.folder / "README.md").read_text("utf-8")


def test_lora_facts_and_dataset_lines(tmp_path):
    assert lora_facts(tiny_lora(tmp_path / "k.safetensors", rank=8, alpha=4.0)) == {"rank": 8, "alpha": 4.0}
    layers = {"blocks.7.transformer_blocks.0.attn1.to_q": LoraLayer(torch.zeros(6, 8), torch.zeros(8, 6), None)}
    write_diffsynth(tmp_path / "d.safetensors", layers)
    assert lora_facts((tmp_path / "d.safetensors").read_bytes()) == {"rank": 6, "alpha": None}
    assert lora_facts(b"garbage") == {"rank": None, "alpha": None}

    idol = load_story(REPO / "stories" / "idol-diary.yaml")
    assert dataset_line(idol).startswith("ModelScope dataset [AI-ModelScope/lowres_anime](https://modelscope.cn/datasets/AI-ModelScope/lowres_anime)")
    assert "image_shape_filter, image_aspect_ratio_filter" in dataset_line(idol)
    ink = load_story(REPO / "stories" / "classroom-dream.yaml")
    assert dataset_line(ink).startswith("40 images rendered by Kwai-Kolors/Kolors from the trigger over 10 subjects")
    with pytest.raises(UsageError):
        from kolorsc.publish import repo_id

        repo_id(ink, None, None)
