"""Loading stories and styles: the typed model, positions, every bad-input class, paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from _spec_fixtures import EXAMPLE_STORIES, REPO, edit, line_of, story_text, write_story
from kolorsc.errors import SpecError
from kolorsc.spec import check_paths, find_project_root, iter_story_files, load_story, load_style
from kolorsc.spec.model import BASE_MODEL


def diags_of(path: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_story(path)
    return [d.format() for d in info.value.diagnostics]


def one(path: Path):
    with pytest.raises(SpecError) as info:
        load_story(path)
    assert len(info.value.diagnostics) == 1, info.value.diagnostics
    return info.value.diagnostics[0]


# --- the examples ------------------------------------------------------------------------


def test_classroom_dream_loads_into_the_model():
    story = load_story(REPO / "stories" / "classroom-dream.yaml")
    assert story.id == "classroom-dream" and story.title == "课堂上的梦"
    assert story.root == REPO.resolve()
    assert story.style.id == "ink-wash" and story.style.trigger == "古风，水墨画"
    assert story.style.source == (REPO / "styles" / "ink-wash.yaml").resolve()
    assert story.style.lora.dataset.source == "generate" and story.style.lora.dataset.generate.count == 40
    assert set(story.characters) == {"girl", "prince"}
    assert story.characters["girl"].name == "少女"
    assert len(story.scenes) == 8 and [s.index for s in story.scenes] == list(range(8))
    assert story.defaults.size == (1024, 1024) and story.defaults.cfg == 4.0
    assert story.bundle_name == "kolorsc-可图Kolors训练-classroom-dream"
    # the block-scalar prompt of scene 7 starts on the line below `prompt: |`
    text = story_text()
    assert story.scenes[6].prompt_loc.line == line_of(text, "{{ girl }}，坐在教室里，下课铃声响了")
    assert story.scenes[6].prompt_loc.col == 7
    assert story.scenes[0].prompt_loc.line == line_of(text, "盯着黑板，深思")


def test_anime_style_is_the_challenge_baseline():
    style = load_style(REPO / "styles" / "anime.yaml")
    lora = style.lora
    assert style.base_model == BASE_MODEL and lora.scale == 2.0 and lora.path is None
    t = lora.training
    assert (t.rank, t.alpha, t.epochs, t.steps_per_epoch, t.precision) == (16, 4.0, 1, 500, "16-mixed")
    assert t.gradient_checkpointing and t.center_crop and t.resolution == 1024
    assert isinstance(t.alpha, float) and isinstance(t.target_modules, tuple)
    d = lora.dataset
    assert (d.source, d.id, d.caption, d.caption_text) == ("modelscope", "AI-ModelScope/lowres_anime", "constant", "二次元")
    assert [f.op for f in d.filters] == ["image_shape_filter", "image_aspect_ratio_filter"]
    assert d.filters[0].args == {"min_width": 1024, "min_height": 1024, "any_or_all": "any"}


@pytest.mark.parametrize("path", EXAMPLE_STORIES, ids=lambda p: p.stem)
def test_every_example_story_loads(path):
    story = load_story(path)
    assert len(story.scenes) == 8 and story.style.lora is not None


def test_example_files_carry_the_schema_line():
    for path in [*EXAMPLE_STORIES, *sorted((REPO / "styles").glob("*.yaml"))]:
        first = path.read_text(encoding="utf-8").splitlines()[0]
        kind = "story" if path.parent.name == "stories" else "style"
        assert first == f"# yaml-language-server: $schema=../schemas/{kind}.schema.json", path
        assert (path.parent / first.split("=", 1)[1]).is_file()  # the symlink resolves


# --- bad input, one class at a time --------------------------------------------------------


def test_wrong_type_points_at_the_value(proj):
    text = edit(story_text(), "    shot: 全身\n", "    shot: 全身\n    seed: one\n")
    write_story(proj, text)
    d = one(Path("stories/s.yaml"))  # named as the user typed it
    assert (d.line, d.col, d.path) == (line_of(text, "seed: one"), 11, "scenes[3].seed")
    assert d.format() == f'stories/s.yaml:{d.line}:11: scenes[3].seed: expected integer, got "one"'


def test_unknown_key_suggests_the_nearest_name(proj):
    text = edit(story_text(), "    shot: 全身\n", "    sede: 3\n    shot: 全身\n")
    d = one(write_story(proj, text))
    assert (d.line, d.col, d.path, d.hint) == (line_of(text, "sede:"), 5, "scenes[3].sede", 'did you mean "seed"?')


def test_all_errors_of_a_file_are_reported_in_order(proj):
    text = edit(story_text(), "  steps: 50", "  steps: 500")
    text = edit(text, "  cfg: 4", "  cfg: many")
    text = edit(text, "title: 课堂上的梦", "titel: 课堂上的梦")
    write_story(proj, text)
    got = diags_of(Path("stories/s.yaml"))
    top, title, steps = line_of(text, "kolorsc: 1"), line_of(text, "titel:"), line_of(text, "steps: 500")
    assert got == [
        f'stories/s.yaml:{top}:1: missing required field "title"',  # the top mapping starts at `kolorsc:`
        f'stories/s.yaml:{title}:1: titel: unknown field "titel" (did you mean "title"?)',
        f"stories/s.yaml:{steps}:10: defaults.steps: must be at most 200, got 500",
        f'stories/s.yaml:{steps + 1}:8: defaults.cfg: expected number, got "many"',
    ]


def test_missing_required_field(proj):
    text = edit(story_text(), "team: kolorsc\n", "")
    d = one(write_story(proj, text))
    assert d.message == 'missing required field "team"' and d.path == ""


@pytest.mark.parametrize("n", [7, 9])
def test_exactly_eight_scenes(proj, n):
    text = story_text()
    head, scenes = text.split("scenes:\n")
    items = ["  - caption" + s for s in scenes.split("  - caption")[1:]]
    items = items[:n] if n < 8 else items + items[: n - 8]
    d = one(write_story(proj, head + "scenes:\n" + "".join(items)))
    assert d.message == f"a story has exactly 8 scenes, got {n}" and d.path == "scenes"


def test_duplicate_key(proj):
    text = edit(story_text(), "  steps: 50\n", "  steps: 50\n  steps: 30\n")
    d = one(write_story(proj, text))
    first = line_of(text, "steps: 50")
    assert (d.line, d.col, d.path) == (first + 1, 3, "defaults.steps")
    assert d.message == f'duplicate key "steps" (first at line {first})'


def test_malformed_yaml_points_at_the_problem(proj):
    text = edit(story_text(), "  size: [1024, 1024]", "  size: [1024, 1024")
    d = one(write_story(proj, text))
    assert d.message.startswith("invalid YAML: ") and d.line == line_of(text, "seed: 0")


def test_empty_file_and_comment_only_file(proj):
    for content in ("", "# just a comment\n", "\n\n"):
        d = one(write_story(proj, content))
        assert d.message == "file is empty"


def test_top_level_must_be_a_mapping(proj):
    d = one(write_story(proj, "- a\n- b\n"))
    assert d.message == "expected a mapping of fields at the top, got a list of 2"
    d = one(write_story(proj, "just text\n"))
    assert d.message == 'expected a mapping of fields at the top, got "just text"'


def test_non_utf8_file(proj):
    path = proj / "stories" / "s.yaml"
    path.write_bytes("title: 好\nteam: caf".encode() + b"\xe9\n")
    d = one(path)
    assert (d.line, d.col) == (2, 10) and d.message == "not valid UTF-8 (byte 0xe9)"


def test_huge_file_is_refused_before_parsing(proj):
    path = proj / "stories" / "s.yaml"
    path.write_bytes(b"a: " + b"x" * 1_200_000)
    d = one(path)
    assert d.line is None and d.message.startswith("file is too large (1,200,003 bytes")


def test_billion_laughs_is_bounded(proj):
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    d = one(write_story(proj, "\n".join(lines) + "\n"))
    assert "too many values" in d.message


def test_recursive_alias_is_bounded(proj):
    d = one(write_story(proj, "a: &x [1, *x]\n"))
    assert "too many values" in d.message or "nested more than" in d.message


def test_unsupported_tags_and_merge_keys(proj):
    d = one(write_story(proj, "a: !!python/object/apply:os.system [ls]\n"))
    assert d.message.startswith("unsupported YAML tag")
    d = one(write_story(proj, "base: &b {x: 1}\nother:\n  <<: *b\n"))
    assert d.message == "YAML merge keys (<<) are not supported"


def test_non_finite_numbers(proj):
    text = edit(story_text(), "  cfg: 4", "  cfg: .inf")
    d = one(write_story(proj, text))
    assert d.path == "defaults.cfg" and d.message == "expected a finite number, got .inf"


def test_bool_is_not_an_integer(proj):
    text = edit(story_text(), "  steps: 50", "  steps: yes")
    d = one(write_story(proj, text))
    assert d.message == "expected integer, got true"


def test_size_rules(proj):
    text = edit(story_text(), "  size: [1024, 1024]", "  size: [1000, 128, 64]")
    got = diags_of(write_story(proj, text))
    assert any("defaults.size: expected at most 2 item(s), got 3" in g for g in got)
    assert any("defaults.size[0]: must be a multiple of 64, got 1000" in g for g in got)
    assert any("defaults.size[1]: must be at least 256, got 128" in g for g in got)


def test_enum_gets_a_suggestion(proj):
    style = (proj / "styles" / "anime.yaml").read_text(encoding="utf-8")
    (proj / "styles" / "anime.yaml").write_text(edit(style, "source: modelscope", "source: modelscop"), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_style(proj / "styles" / "anime.yaml")
    (d,) = info.value.diagnostics
    assert d.path == "lora.dataset.source" and d.hint == 'did you mean "modelscope"?'


# --- style resolution and paths ------------------------------------------------------------


def test_unknown_style_suggests_one(proj):
    text = edit(story_text(), "style: ink-wash", "style: inkwash")
    d = one(write_story(proj, text))
    assert d.path == "style" and d.hint == "did you mean ink-wash (水墨)?"
    assert d.message == 'unknown style "inkwash": no styles/inkwash.yaml'


def test_a_style_named_by_its_display_name_points_at_its_slug(proj):
    text = edit(story_text(), "style: ink-wash", "style: 水墨")
    d = one(write_story(proj, text))
    assert (d.path, d.line, d.col) == ("style", line_of(text, "style: 水墨"), 8)
    assert d.hint == "did you mean ink-wash (水墨)?"


def test_style_errors_are_reported_with_the_story(proj):
    (proj / "styles" / "ink-wash.yaml").write_text(
        edit(story_text_style(proj), "  scale: 2.0", "  scale: big"), encoding="utf-8")
    got = diags_of(Path("stories/classroom-dream.yaml"))
    assert got[0].startswith("styles/ink-wash.yaml:") and 'lora.scale: expected number, got "big"' in got[0]
    assert got[-1].startswith("stories/classroom-dream.yaml:") and 'style "ink-wash" is invalid' in got[-1]


def story_text_style(proj):
    return (proj / "styles" / "ink-wash.yaml").read_text(encoding="utf-8")


def local_dataset_style(proj):
    """The ink-wash style trained on a local folder (the example generates its images)."""
    text = story_text_style(proj)
    return text[: text.index("    source: generate")] + "    source: local\n    path: ../data/ink-wash\n    caption: sidecar\n"


def test_style_id_must_match_its_file_name(proj):
    (proj / "styles" / "ink-wash.yaml").write_text(edit(story_text_style(proj), "id: ink-wash", "id: ink"), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_style(proj / "styles" / "ink-wash.yaml")
    assert info.value.diagnostics[0].path == "id"


def test_paths_resolve_relative_to_their_file_and_stay_inside(proj):
    local = local_dataset_style(proj)
    (proj / "styles" / "ink-wash.yaml").write_text(local, encoding="utf-8")
    style = load_style(proj / "styles" / "ink-wash.yaml")
    assert style.lora.dataset.path == (proj / "data" / "ink-wash").resolve()
    (proj / "styles" / "ink-wash.yaml").write_text(
        edit(local, "    path: ../data/ink-wash", "    path: ../../outside"), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_style(proj / "styles" / "ink-wash.yaml")
    (d,) = info.value.diagnostics
    assert d.path == "lora.dataset.path" and d.message == 'path "../../outside" leaves the project folder'


def test_absolute_path_outside_is_refused_and_symlinks_are_followed(proj, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (proj / "link").symlink_to(outside)
    for value in (str(outside / "x.safetensors"), "../link/x.safetensors"):
        text = edit(story_text(), "style: ink-wash", f"style:\n  name: n\n  trigger: t\n  lora: {{path: \"{value}\"}}")
        d = one(write_story(proj, text))
        assert d.path == "style.lora.path" and "leaves the project folder" in d.message


def test_inline_style_and_character_shorthand(proj):
    text = edit(story_text(), "style: ink-wash", "style:\n  name: 水彩\n  trigger: 水彩画\n  lora: {path: ../loras/w.safetensors, scale: 1}")
    text = edit(text, "  prince:\n    name: 王子\n    look: 一个英俊少年，白色长袍", "  prince: 一个英俊少年，白色长袍")
    story = load_story(write_story(proj, text))
    assert story.style.id == "s-style" and story.style.source is None  # "<story id>-style"
    assert story.style.lora.path == (proj / "loras" / "w.safetensors").resolve()
    assert story.characters["prince"].look == "一个英俊少年，白色长袍" and story.characters["prince"].name is None


# --- project root and collections ------------------------------------------------------------


def test_find_project_root_rule(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert find_project_root(tmp_path / "a" / "b" / "s.yaml") == (tmp_path / "a" / "b").resolve()
    (tmp_path / "a" / "styles").mkdir()
    assert find_project_root(tmp_path / "a" / "b" / "s.yaml") == (tmp_path / "a").resolve()
    assert find_project_root(tmp_path / "a" / "styles" / "x.yaml") == (tmp_path / "a").resolve()
    (tmp_path / "a" / "b" / ".git").mkdir()
    assert find_project_root(tmp_path / "a" / "b" / "s.yaml") == (tmp_path / "a" / "b").resolve()


def test_iter_story_files_is_sorted_and_skips_styles_and_hidden(tmp_path):
    root = tmp_path
    for rel in ["b.yaml", "a.yml", "sub/c.yaml", "styles/s.yaml", ".hidden/h.yaml", "build/x/o.yaml", "notes.txt", ".d.yaml"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x: 1\n")
    got = [p.relative_to(root).as_posix() for p in iter_story_files([root, root / "b.yaml"])]
    assert got == ["a.yml", "b.yaml", "sub/c.yaml"]
    assert iter_story_files([root / "missing.yaml"]) == [root / "missing.yaml"]


def test_check_paths_reports_per_file(proj):
    write_story(proj, edit(story_text(), "  cfg: 4", "  cfg: -1"), "bad.yaml")
    report = check_paths([Path("stories"), Path("styles/anime.yaml"), Path("nope.yaml"), Path("styles")])
    names = [str(f.path) for f in report.files]
    assert names[:4] == ["stories/bad.yaml", "stories/classroom-dream.yaml", "stories/hero-dragon.yaml", "stories/idol-diary.yaml"]
    assert "styles/anime.yaml" in names and "nope.yaml" in names
    # styles/ expands into its style files, each checked as a style
    assert [f.kind for f in report.files if f.path.parent.name == "styles"] == ["style"] * 3
    assert report.invalid == 2 and not report.ok  # bad.yaml, nope.yaml
    assert report.summary() == "8 files checked, 2 invalid, 2 problems"
    assert [d.message for d in report.diagnostics if d.file == "nope.yaml"] == ["no such file"]


def test_check_counts_template_errors(proj):
    write_story(proj, edit(story_text(), "{{ prince }}，骑着白马", "{{ prnce }}，骑着白马"))
    report = check_paths([Path("stories/s.yaml")])
    (d,) = report.diagnostics
    assert d.path == "scenes[3].prompt" and d.hint == 'did you mean "prince"?'


def test_unreadable_file(proj, monkeypatch):
    path = write_story(proj, story_text())

    def denied(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)  # chmod does not stop root, who runs CI here
    d = one(path)
    assert d.line is None and d.message == "cannot read file: Permission denied"


def test_control_character_is_located(proj):
    text = edit(story_text(), "title: 课堂上的梦", "title: 课堂\x07上的梦")
    d = one(write_story(proj, text))
    assert (d.line, d.col) == (line_of(text, "title:"), 10) and "control character U+0007" in d.message


@pytest.mark.parametrize("content, words", [
    ("a: " + "[" * 3000 + "]" * 3000 + "\n", "invalid YAML"),
    ("a: 1\n---\nb: 2\n", "invalid YAML: but found another document"),
    ("a:\n\tb: 1\n", "invalid YAML"),
])
def test_more_malformed_yaml(proj, content, words):
    d = one(write_story(proj, content))
    assert d.message.startswith(words) and d.line is not None


def test_bom_and_crlf_are_fine(proj):
    path = proj / "stories" / "s.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + story_text().replace("\n", "\r\n").encode("utf-8"))
    assert load_story(path).title == "课堂上的梦"


def test_caption_template_is_checked(proj):
    style = local_dataset_style(proj)
    bad = edit(style, "    caption: sidecar", '    caption: template\n    caption_text: "水墨画，{{ stme }}"')
    (proj / "styles" / "ink-wash.yaml").write_text(bad, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_style(proj / "styles" / "ink-wash.yaml")
    (d,) = info.value.diagnostics
    assert d.path == "lora.dataset.caption_text" and d.hint == 'did you mean "stem"?'
    good = edit(style, "    caption: sidecar", '    caption: template\n    caption_text: "水墨画，{{ stem }}，{{ sidecar or \'\' }}"')
    (proj / "styles" / "ink-wash.yaml").write_text(good, encoding="utf-8")
    assert load_style(proj / "styles" / "ink-wash.yaml").lora.dataset.caption == "template"


def test_style_file_linking_out_of_the_project_is_refused(proj, tmp_path):
    outside = tmp_path / "outside.yaml"
    outside.write_text((proj / "styles" / "anime.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    (proj / "styles" / "linked.yaml").symlink_to(outside)
    d = one(write_story(proj, edit(story_text(), "style: ink-wash", "style: linked")))
    assert d.path == "style" and d.message == "styles/linked.yaml leaves the project folder"


def test_team_must_be_usable_in_file_names(proj):
    d = one(write_story(proj, edit(story_text(), "team: kolorsc", "team: a/b")))
    assert d.path == "team" and d.message.startswith("must not contain / \\ : * ?") and d.message.endswith('got "a/b"')


@pytest.mark.parametrize("value", ["{{ prince }}，骑着白马", "{{ prince }}"])
def test_unquoted_template_gets_a_hint(proj, value):
    d = one(write_story(proj, edit(story_text(), '"{{ prince }}，骑着白马，从山间小路奔来"', value)))
    assert d.hint and d.hint.startswith("a value that starts with {{ or {% must be quoted")
