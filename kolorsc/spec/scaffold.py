"""`kolorsc init`: write a new story (and its style when the project has none) that passes
`kolorsc check` exactly as written. Never overwrites a file."""

from __future__ import annotations

import json
import os
import re
import shlex
import tempfile
from pathlib import Path

from kolorsc.errors import UsageError
from kolorsc.i18n import _
from kolorsc.spec.loader import STYLES_DIR, display_name, find_project_root

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
DEFAULT_STYLE = "anime"
DEFAULT_TEAM = "my-team"  # a placeholder: check warns, bundle verify refuses it (kolorsc.emit.bundlename)

# The challenge baseline (same values as styles/anime.yaml of the kolorsc repository).
_ANIME_STYLE = """\
{schema_line}kolorsc: 1
id: {style}
name: 二次元
description: Japanese anime illustration; the challenge baseline LoRA trained on AI-ModelScope/lowres_anime.
trigger: 二次元，精致的动漫插画，细腻的线条，明亮的色彩
negative: 照片，写实，3D渲染，低分辨率，低质量，最差质量，文字，水印，变形，多余的手指，缺手指
lora:
  scale: 2.0
  train:
    rank: 16
    alpha: 4
    epochs: 1
    steps_per_epoch: 500
    precision: 16-mixed
    gradient_checkpointing: true
    center_crop: true
    resolution: 1024
  dataset:
    source: modelscope
    id: AI-ModelScope/lowres_anime
    subset: default
    split: train
    caption: constant
    caption_text: 二次元
    filters:
      - op: image_shape_filter
        min_width: 1024
        min_height: 1024
        any_or_all: any
      - op: image_aspect_ratio_filter
        min_ratio: 0.5
        max_ratio: 2.0
        any_or_all: any
"""

# Any other style name: a LoRA distilled from the base model rendering the style's trigger
# (dataset.source: generate), so the new style passes `kolorsc check` and builds from a fresh
# clone without an image collection; the comment says how to train on one's own images.
_NEW_STYLE = """\
{schema_line}kolorsc: 1
id: {style}
name: {style}
description: Describe the style here.
trigger: {style}
negative: 低分辨率，低质量，文字，水印，变形
lora:
  scale: 2.0
  train:
    rank: 16
    alpha: 4
    epochs: 1
    steps_per_epoch: 500
  dataset:
    # rendered by the base model from the trigger above; to train on your own images instead:
    #   source: local
    #   path: ../data/{style}      (x.jpg with its caption in x.txt)
    source: generate
"""

_STORY = """\
{schema_line}kolorsc: 1
id: {name}
title: {title}
team: {team}
style: {style}

characters:
  hero:
    name: 主角
    look: 一个黑色短发的少年，蓝色外套
    # reference: generate         # the same face in every panel: a picture (refs/hero.png) or a rendered character sheet

# consistency:                    # both off unless set; see README "Character consistency"
#   ip_adapter: {{scale: 0.5}}      # reference pictures through Kolors-IP-Adapter-Plus (`kolorsc models pull ip-adapter`)
#   shared_attention: {{identity: 2}}   # panels rendered together, self-attention shared (StoryDiffusion)

defaults:
  negative: 丑陋，变形，嘈杂，模糊，低对比度
  steps: 50
  cfg: 4
  size: [1024, 1024]
  seed: 0

scenes:
  - caption: 清晨出发
    prompt: "{{{{ hero }}}}，背着书包走出家门，清晨的阳光"
    shot: 全身
  - caption: 路上的偶遇
    prompt: "{{{{ hero }}}}，在街角遇到一只小猫，蹲下来看它"
    shot: 全身
  - caption: 跟着小猫
    prompt: "{{{{ hero }}}}，跟着小猫穿过小巷，好奇的表情"
  - caption: 发现秘密花园
    prompt: "{{{{ hero }}}}，推开一扇旧木门，门后是开满鲜花的花园"
    shot: 全身
  - caption: 花园里的午后
    prompt: "{{{{ hero }}}}，坐在花丛中，小猫在身边打盹，温暖的午后"
    shot: 上半身
  - caption: 下起了雨
    prompt: "{{{{ hero }}}}，抱着小猫在屋檐下躲雨，雨滴落在花瓣上"
    shot: 上半身
  - caption: 雨后的彩虹
    prompt: "{{{{ hero }}}}，抬头望着雨后的彩虹，开心的笑容"
  - caption: 回家
    prompt: "{{{{ hero }}}}，抱着小猫走在回家的路上，夕阳"
    shot: 全身
"""


def _schema_line(folder: Path, root: Path, name: str) -> str:
    schemas = root / "schemas" / f"{name}.schema.json"
    if not schemas.is_file():
        return ""
    rel = os.path.relpath(schemas, folder).replace(os.sep, "/")
    return f"# yaml-language-server: $schema={rel}\n"


def _write_new(path: Path, text: str) -> None:
    """Atomic create: temp file, then link into place so an existing file is never replaced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a story is meant to be shared
        os.link(tmp, path)  # fails with FileExistsError instead of overwriting
    except FileExistsError:
        raise UsageError(_("{path} already exists; refusing to overwrite it").format(path=path)) from None
    finally:
        os.unlink(tmp)


def _slug_problem(name: str, title: str | None) -> str:
    """What to type instead of a story name that is not a slug: a title in Chinese becomes
    `--title` and its pinyin the slug."""
    from kolorsc.spec.suggest import slug_for

    slug = slug_for(name)
    shown = json.dumps(name, ensure_ascii=False)
    suggestion = f"kolorsc init {slug}" + ("" if title else f" --title {shlex.quote(name)}")
    return _("story name {name} must be a slug (lowercase letters, digits and single hyphens: it names the "
             "file, the output folder and the bundle); try: {suggestion}").format(name=shown, suggestion=suggestion)


def _check_style(style: str, root: Path, new_style: bool) -> None:
    """Refuse a style name that is not a slug, or that looks like an existing style's."""
    from kolorsc.spec.suggest import style_hint, suggest_style

    meant = None if new_style else suggest_style(style, root / STYLES_DIR)
    shown = json.dumps(style, ensure_ascii=False)
    if meant is not None:
        raise UsageError(_("there is no style {name} in {folder}/: {hint} (--style {slug}; to create a new style "
                           "{name}, add --new-style)").format(name=shown, folder=display_name(root / STYLES_DIR),
                                                              hint=style_hint(*meant), slug=meant[0]))
    if not SLUG.match(style):
        raise UsageError(_("style name {name} must be a slug: lowercase letters, digits and single hyphens").format(
            name=shown))


def init_story(
    name: str,
    directory: Path | None = None,
    *,
    style: str = DEFAULT_STYLE,
    title: str | None = None,
    team: str = DEFAULT_TEAM,
    new_style: bool = False,
) -> list[Path]:
    """Write <directory>/<name>.yaml (and styles/<style>.yaml when missing). Returns the files
    written, story first. `directory` defaults to ./stories when it exists, else .

    A style name close to an existing style (`inkwash` beside `ink-wash`, or its display name
    水墨) is refused with the suggestion, unless `new_style`: a new placeholder style is
    rarely what such a typo meant."""
    if not SLUG.match(name):
        raise UsageError(_slug_problem(name, title))
    if not team or len(team) > 64 or re.search(r'[/\\:*?"<>|\x00-\x1f]', team):
        raise UsageError(_("team {name} must be 1-64 characters without / \\ : * ? \" < > |").format(
            name=json.dumps(team, ensure_ascii=False)))
    if directory is None:
        directory = Path("stories") if Path("stories").is_dir() else Path(".")
    directory = Path(directory)
    story_path = directory / f"{name}.yaml"
    if story_path.exists():
        raise UsageError(_("{path} already exists; refusing to overwrite it").format(path=story_path))
    directory.mkdir(parents=True, exist_ok=True)
    root = find_project_root(directory / f"{name}.yaml")
    _check_style(style, root, new_style)
    written: list[Path] = []
    style_path = root / STYLES_DIR / f"{style}.yaml"
    if not style_path.exists() and not (root / STYLES_DIR / f"{style}.yml").exists():
        template = _ANIME_STYLE if style == DEFAULT_STYLE else _NEW_STYLE
        _write_new(style_path, template.format(style=style, schema_line=_schema_line(style_path.parent, root, "style")))
        written.append(style_path)
    text = _STORY.format(
        name=name,
        title=json.dumps(title or name, ensure_ascii=False),  # a JSON string is valid YAML
        team=json.dumps(team, ensure_ascii=False),
        style=style,
        schema_line=_schema_line(directory.absolute(), root, "story"),
    )
    _write_new(story_path, text)
    return [story_path, *written]
