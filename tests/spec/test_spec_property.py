"""Property tests: whatever a file holds, checking it yields diagnostics or success, never
another exception. Random YAML documents, random bytes, and random mutations of the
example stories (text edits and structured edits) are thrown at the checker."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _spec_fixtures import EXAMPLE_STORIES, make_project
from kolorsc.spec import check_file

# 150 keeps CI fast; KOLORSC_FUZZ_EXAMPLES=5000 searches harder by hand.
SETTINGS = settings(max_examples=int(os.environ.get("KOLORSC_FUZZ_EXAMPLES", "150")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TEXTS = [p.read_text(encoding="utf-8") for p in EXAMPLE_STORIES]
KEYS = ["kolorsc", "id", "title", "team", "style", "characters", "defaults", "scenes", "seed", "prompt",
        "caption", "negative", "size", "steps", "cfg", "look", "name", "lora", "path", "train", "dataset"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30), st.sampled_from(["{{ girl }}", "{{ x.__class__ }}", "{% for %}", "ink-wash", "anime", "../../x"]),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=9),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=8),
    ),
    max_leaves=40,
)


TOKENS = list(" :-[]{}|>&*!%#'\"\n\t,，ab1é龙") + ["{{", "}}", "  - ", "{%", "%}", "\n  ", "*a", "&a "]
PIECES = st.lists(st.sampled_from(TOKENS), max_size=6).map("".join)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("prop"))


def check_bytes(project: Path, raw: bytes):
    path = project / "stories" / "fuzz.yaml"
    path.write_bytes(raw)
    report = check_file(path)  # raises only if something other than SpecError escapes
    for d in report.diagnostics:
        assert d.format() and "\n" not in d.message and "Traceback" not in d.message
    return report


@SETTINGS
@given(doc=documents)
def test_random_yaml_documents(project, doc):
    check_bytes(project, yaml.safe_dump(doc, allow_unicode=True).encode("utf-8"))


@SETTINGS
@given(raw=st.binary(max_size=300))
def test_random_bytes(project, raw):
    check_bytes(project, raw)


@SETTINGS
@given(
    which=st.integers(0, len(TEXTS) - 1),
    edits=st.lists(
        st.tuples(st.sampled_from(["delete", "insert", "duplicate", "replace"]), st.integers(0, 10**6),
                  PIECES),
        min_size=1, max_size=4,
    ),
)
def test_text_mutations_of_example_stories(project, which, edits):
    text = TEXTS[which]
    for kind, at, piece in edits:
        at = at % (len(text) + 1)
        if kind == "delete":
            text = text[:at] + text[at + len(piece) + 1:]
        elif kind == "insert":
            text = text[:at] + piece + text[at:]
        elif kind == "duplicate":
            lines = text.splitlines(keepends=True)
            i = at % max(len(lines), 1)
            text = "".join(lines[: i + 1] + lines[i:])
        else:
            text = text[:at] + piece + text[at + len(piece):]
    check_bytes(project, text.encode("utf-8"))


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


@SETTINGS
@given(which=st.integers(0, len(TEXTS) - 1), pick=st.integers(0, 10**6), value=documents,
       action=st.sampled_from(["set", "delete", "rename"]), newkey=st.sampled_from(KEYS))
def test_structured_mutations_of_example_stories(project, which, pick, value, action, newkey):
    data = yaml.safe_load(TEXTS[which])
    paths = [p for p in _paths(data) if p]
    path = paths[pick % len(paths)]
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if action == "set":
        parent[last] = value
    elif action == "delete":
        del parent[last]
    elif isinstance(parent, dict):
        parent[newkey] = parent.pop(last)
    report = check_bytes(project, yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode("utf-8"))
    if report.ok:  # a mutation that stays valid must still compile to eight panels
        from kolorsc.prompts import compile_story
        from kolorsc.spec import load_story

        assert len(compile_story(load_story(project / "stories" / "fuzz.yaml"))) == 8


JINJA_TOKENS = ["{{", "}}", "{%", "%}", "{#", "#}", " ", "girl", "prince", "style", "scene", "story", ".", "look",
                "name", "trigger", "__class__", "__mro__", "|", "upper", "join", "replace(", "default(", "(", ")",
                "[", "]", ",", "'x'", "9", "*", "**", "~", "+", "%", "-", "/", "//", "for ", " in ", "range(",
                "endfor", "if ", "endif", "else", "set ", "=", "loop", "namespace(", "lipsum", "self", "caller",
                "\n", "，", "龙", "macro", "raw", "endraw", "not ", "and "]


@SETTINGS
@given(template=st.lists(st.sampled_from(JINJA_TOKENS), max_size=25).map("".join))
def test_random_templates(project, template):
    original = '"{{ girl }}，坐在教室里，盯着黑板，深思"'
    assert original in TEXTS[0]
    # a JSON string is a valid YAML double-quoted scalar: the template arrives unchanged
    text = TEXTS[0].replace(original, json.dumps(template, ensure_ascii=False), 1)
    check_bytes(project, text.encode("utf-8"))
