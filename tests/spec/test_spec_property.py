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
        line = d.format()
        assert line and "\n" not in line and "\r" not in line and "Traceback" not in line
        assert " at 0x" not in line  # no Python repr with a memory address
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


# --- the hostile classes of issue 14 ------------------------------------------------------------
# Each strategy builds stories from the first example with one kind of attack; the checker
# must answer with diagnostics (or accept), never another exception, and what it accepts
# must compile to eight bounded prompts. bench/bench_hostile.py runs these at 10,000 examples
# and records time and memory per file.

from kolorsc.spec.templates import MAX_TEXT  # noqa: E402 - kept beside the tests that use it

FIRST_PROMPT = '"{{ girl }}，坐在教室里，盯着黑板，深思"'
FIRST_LOOK = "look: 一个黑色长发少女，红色长裙"


def story_with(template: str, look: str | None = None) -> str:
    text = TEXTS[0].replace(FIRST_PROMPT, json.dumps(template, ensure_ascii=False), 1)
    if look is not None:
        text = text.replace(FIRST_LOOK, "look: " + json.dumps(look, ensure_ascii=False), 1)
    return text


def assert_bounded(project: Path, report) -> None:
    if report.ok:
        from kolorsc.prompts import compile_story
        from kolorsc.spec import load_story

        panels = compile_story(load_story(project / "stories" / "fuzz.yaml"))
        assert len(panels) == 8
        assert all(len(p.prompt) <= 2 * MAX_TEXT + 200 and len(p.negative) <= 3 * MAX_TEXT for p in panels)


REFERENCES = st.sampled_from(["{{ girl }}", "{{ girl.look }}", "{{ style }}", "{{ style.trigger }}", "{{ scene.caption }}",
                              "{{ girl ~ girl }}", "{{ girl|upper }}", "{{ girl.look[::-1] }}", "，"])


@SETTINGS
@given(unit=st.sampled_from(["长发", "x", "🐉", "a b ", "，"]), size=st.integers(1, 20_000),
       refs=st.lists(REFERENCES, min_size=1, max_size=40), times=st.integers(1, 3000))
def test_long_values_referenced_many_times(project, unit, size, refs, times):
    look = (unit * (size // len(unit) + 1))[:size]
    template = "".join(refs) * (times if len("".join(refs)) * times <= MAX_TEXT else 1)
    assert_bounded(project, check_bytes(project, story_with(template, look).encode("utf-8")))


NUMBERS = st.sampled_from(["10", "64", "2", "-3", "0", "1", "0.5", "1e308", "9" * 60, "scene.index", "girl.look|length",
                           "(10**64)", "True"])
OPS = st.sampled_from(["+", "-", "*", "**", "//", "%", "/"])
expressions = st.recursive(NUMBERS, lambda inner: st.tuples(inner, OPS, inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
                           max_leaves=12)


@SETTINGS
@given(expr=expressions, wrap=st.sampled_from(["{{ %s }}", "{{ girl }}{{ %s }}", "{% set x = %s %}{{ x }}",
                                                "{{ (%s)|string|length }}", "{{ [1]*(%s)|length }}",
                                                "{{ 'ab' * (%s) }}", "{{ range(%s)|join }}"]))
def test_nested_arithmetic(project, expr, wrap):
    assert_bounded(project, check_bytes(project, story_with(wrap.replace("%s", expr)).encode("utf-8")))


AMPLIFIERS = [
    "|replace('', girl.look)", "|replace('长', girl.look)", "|replace('a', 'bb')", "|join(girl.look)", "|list", "|sort",
    "|unique", "|reverse", "|upper", "|string", "|truncate(5)", "|map('upper')|join", "|first", "|length", " ~ girl",
    " * 3", " * 1000", "|default('x')", ".replace('', 'xy')", ".split('，')|join('，')", ".center(100000)",
    ".zfill(100000)", ".expandtabs(100000)", ".upper()", "|wordcount", "|sum", "|int", "|float",
]


@SETTINGS
@given(chain=st.lists(st.sampled_from(AMPLIFIERS), min_size=1, max_size=6),
       loops=st.integers(0, 2), repeat=st.integers(1, 5), long_look=st.booleans())
def test_amplifying_filters_and_loops(project, chain, loops, repeat, long_look):
    expr = "{{ (girl.look" + "".join(chain) + ") }}"
    body = expr * repeat
    for i in range(loops):
        body = f"{{% for i{i} in range(100) %}}{body}{{% endfor %}}"
    look = "长发，" * 6000 if long_look else None
    assert_bounded(project, check_bytes(project, story_with(body, look).encode("utf-8")))


CONTROLS = st.sampled_from(["\x00", "\x01", "\x07", "\x1b", "\x7f", "\x85", "\u2028", "\u2029", "\n", "\r", "\t",
                            "\u200b", "\ufeff"])


@SETTINGS
@given(pick=st.integers(0, 10**6), control=CONTROLS, at=st.integers(0, 100), as_key=st.booleans())
def test_control_characters_anywhere(project, pick, control, at, as_key):
    data = yaml.safe_load(TEXTS[0])
    data["style"] = {"name": "x", "trigger": "t", "lora": {"path": "../loras/x.safetensors"}}
    paths = [p for p in _paths(data) if p and isinstance(_get(data, p), str)]
    path = paths[pick % len(paths)]
    parent = _get(data, path[:-1])
    value = parent[path[-1]]
    changed = value[: at % (len(value) + 1)] + control + value[at % (len(value) + 1):]
    if as_key and isinstance(parent, dict):
        parent[changed] = parent.pop(path[-1])
    else:
        parent[path[-1]] = changed
    report = check_bytes(project, yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode("utf-8"))
    assert_bounded(project, report)


def _get(data, path):
    for part in path:
        data = data[part]
    return data


INT_FIELDS = [("defaults", "steps"), ("defaults", "seed"), ("defaults", "size", 0), ("kolorsc",), ("scenes", 0, "seed"),
              ("scenes", 3, "steps"), ("scenes", 5, "candidates"), ("defaults", "candidates")]


@SETTINGS
@given(field=st.sampled_from(INT_FIELDS), value=st.one_of(st.integers(0, 300).map(float), st.booleans(),
                                                          st.sampled_from([1.5, 1e3, -0.0, 2**53 + 1.0])))
def test_float_for_int(project, field, value):
    data = yaml.safe_load(TEXTS[0])
    parent = data
    for part in field[:-1]:
        parent = parent.setdefault(part, {}) if isinstance(part, str) else parent[part]
    parent[field[-1]] = value
    report = check_bytes(project, yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode("utf-8"))
    assert not report.ok  # a float or a bool where an integer belongs is always a diagnostic


NAME_CHARS = st.sampled_from(["🐉", "龙", "é", "a", "-", "👩‍👩‍👧‍👦", "\u0301"])


@SETTINGS
@given(team=st.lists(NAME_CHARS, min_size=1, max_size=64).map("".join), key=st.lists(NAME_CHARS, min_size=1, max_size=64).map("".join),
       id_len=st.integers(1, 64))
def test_byte_long_names(project, team, key, id_len):
    data = yaml.safe_load(TEXTS[0])
    data["team"] = team[:64]
    data["id"] = ("a" * id_len)
    data["characters"][key] = "x"
    report = check_bytes(project, yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode("utf-8"))
    name = f"{team[:64]}-可图Kolors训练-{'a' * id_len}.zip"
    if report.ok:  # what check accepts, the file system can store (with kolorsc's temp-name suffix)
        assert len(name.encode("utf-8")) + 14 <= 255
