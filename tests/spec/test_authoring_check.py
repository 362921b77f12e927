"""What `kolorsc check` refuses for authors (issue 12), through the real CLI: two stories with
one id, an unsupported Data-Juicer operator, and the suggestions where an author types the
natural thing (a style's display name, a character's name, a Chinese title for init)."""

from __future__ import annotations

import pytest
from _cli_fixtures import run
from _spec_fixtures import edit, line_of, story_text, write_story
from click.testing import CliRunner

from kolorsc.cli import main


# --- one id, one story ----------------------------------------------------------------------


def test_two_stories_with_one_id_are_refused_each_at_its_id_line(proj):
    text = story_text()
    (proj / "stories" / "copy.yaml").write_text(text, "utf-8")  # a copied story keeps the id
    line = line_of(text, "id: classroom-dream")
    result = run("check", "stories")
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert lines[:2] == [
        f'stories/classroom-dream.yaml:{line}:5: id: another story has the id "classroom-dream" too: '
        f"stories/copy.yaml:{line}:5 (the id names the output folder build/classroom-dream/ and the bundle: "
        "give each story its own id)",
        f'stories/copy.yaml:{line}:5: id: another story has the id "classroom-dream" too: '
        f"stories/classroom-dream.yaml:{line}:5 (the id names the output folder build/classroom-dream/ and the "
        "bundle: give each story its own id)",
    ]
    assert lines[-1] == "4 files checked, 2 invalid, 2 problems"


def test_checking_one_file_still_sees_the_story_beside_it(proj):
    # the pre-commit hook passes only the files a commit touches
    (proj / "stories" / "copy.yaml").write_text(story_text(), "utf-8")
    result = run("check", "stories/copy.yaml")
    assert result.exit_code == 2
    assert 'another story has the id "classroom-dream" too: stories/classroom-dream.yaml:' in result.output
    (proj / "stories" / "copy.yaml").write_text(edit(story_text(), "id: classroom-dream", "id: copy"), "utf-8")
    assert run("check", "stories/copy.yaml").exit_code == 0


# --- what a build would certainly fail on ---------------------------------------------------


def test_an_unsupported_data_juicer_operator_is_refused_at_its_line(proj):
    style = (proj / "styles" / "anime.yaml").read_text("utf-8")
    bad = edit(style, "op: image_aspect_ratio_filter", "op: image_aspect_filter")
    (proj / "styles" / "anime.yaml").write_text(bad, "utf-8")
    result = run("check", "styles/anime.yaml")
    assert result.exit_code == 2
    line = line_of(bad, "op: image_aspect_filter")
    assert result.output.splitlines()[0] == (
        f'styles/anime.yaml:{line}:13: lora.dataset.filters[1].op: unsupported Data-Juicer operator '
        f'"image_aspect_filter" (did you mean "image_aspect_ratio_filter"?)')
    far = edit(style, "op: image_aspect_ratio_filter", "op: video_motion_score_filter")
    (proj / "styles" / "anime.yaml").write_text(far, "utf-8")
    assert "(kolorsc runs image_aesthetics_filter, image_aspect_ratio_filter" in run("check", "styles/anime.yaml").output
    # --no-inputs skips only the file checks: the operator is wrong on any machine
    assert run("check", "styles/anime.yaml", "--no-inputs").exit_code == 2


# --- suggestions ----------------------------------------------------------------------------


def test_a_character_written_by_its_name_points_at_its_key(proj):
    text = story_text().replace("{{ girl }}，坐在教室里", "{{ 少女 }}，坐在教室里")
    write_story(proj, text)
    result = run("check", "stories/s.yaml")
    assert result.exit_code == 2
    first = result.output.splitlines()[0]
    assert first.startswith(f"stories/s.yaml:{line_of(text, '{{ 少女 }}')}:")
    assert first.endswith('undefined name "少女" in the prompt of scene 1 ("少女" is the name of the character '
                          '"girl": write {{ girl }})')


def test_init_with_a_chinese_title_suggests_a_slug_and_title(proj):
    result = CliRunner().invoke(main, ["init", "月光下的小狐狸"])
    assert result.exit_code == 2
    assert result.output == ('error: story name "月光下的小狐狸" must be a slug (lowercase letters, digits and '
                             "single hyphens: it names the file, the output folder and the bundle); try: "
                             "kolorsc init yue-guang-xia-de-xiao-hu-li --title '月光下的小狐狸'\n")
    assert not list((proj / "stories").glob("yue*"))
    # the suggestion works as written
    assert run("init", "yue-guang-xia-de-xiao-hu-li", "--title", "月光下的小狐狸").exit_code == 0
    assert 'title: "月光下的小狐狸"' in (proj / "stories" / "yue-guang-xia-de-xiao-hu-li.yaml").read_text("utf-8")


@pytest.mark.parametrize("typed", ["inkwash", "ink_wash", "水墨"])
def test_init_with_a_style_close_to_an_existing_one_asks(proj, typed):
    before = sorted(p.name for p in (proj / "styles").iterdir())
    result = CliRunner().invoke(main, ["init", "fox", "--style", typed])
    assert result.exit_code == 2
    assert "did you mean ink-wash (水墨)? (--style ink-wash; to create a new style" in result.output
    assert sorted(p.name for p in (proj / "styles").iterdir()) == before and not (proj / "stories" / "fox.yaml").exists()


def test_init_new_style_writes_a_placeholder_that_passes_check(proj):
    assert run("init", "fox", "--style", "inkwash", "--new-style").exit_code == 0
    assert run("init", "cub", "--style", "watercolor").exit_code == 0  # nothing close: created
    text = (proj / "styles" / "watercolor.yaml").read_text("utf-8")
    assert "source: generate" in text  # builds from a fresh clone: no image folder to fill first
    result = run("check", "stories/fox.yaml", "stories/cub.yaml", "styles/inkwash.yaml", "styles/watercolor.yaml")
    assert result.exit_code == 0, result.output
