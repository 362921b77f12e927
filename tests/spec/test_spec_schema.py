"""The published JSON schemas: valid 2020-12, documented (description + example everywhere),
examples that validate, the inline style in sync with the style file schema, and the
top-level `schemas` link that editors follow."""

from __future__ import annotations

import json
import os

import jsonschema
import pytest

from _spec_fixtures import REPO
from kolorsc.spec import schema_text

SCHEMAS = {name: json.loads(schema_text(name)) for name in ("story", "style")}


def walk(node, path=()):
    """Every (path, subschema) that describes a property or an item."""
    if not isinstance(node, dict):
        return
    for key in ("properties", "$defs"):
        for name, sub in node.get(key, {}).items():
            yield path + (name,), sub
            yield from walk(sub, path + (name,))
    for key in ("items", "additionalProperties"):
        sub = node.get(key)
        if isinstance(sub, dict):
            yield path + (key,), sub
            yield from walk(sub, path + (key,))
    for key in ("anyOf", "oneOf", "allOf"):
        for i, sub in enumerate(node.get(key, [])):
            yield from walk(sub, path + (f"{key}{i}",))


@pytest.mark.parametrize("name", SCHEMAS)
def test_schema_is_valid_2020_12(name):
    jsonschema.Draft202012Validator.check_schema(SCHEMAS[name])
    assert SCHEMAS[name]["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_property_has_a_description_and_an_example_that_validates(name):
    root = SCHEMAS[name]
    props = [(p, s) for p, s in walk(root) if "$ref" not in s and p[-1] != "additionalProperties" or "description" in s]
    assert len(props) > 30
    for path, sub in props:
        if "$ref" in sub:
            continue
        assert sub.get("description"), f"{name}: {'.'.join(path)} has no description"
        assert sub.get("examples"), f"{name}: {'.'.join(path)} has no example"
        checker = jsonschema.Draft202012Validator({**sub, "$defs": root.get("$defs", {})})
        for example in sub["examples"]:
            errors = list(checker.iter_errors(example))
            assert not errors, f"{name}: example of {'.'.join(path)} is invalid: {errors[0].message}"


def test_inline_style_matches_the_style_file_schema():
    inline = dict(SCHEMAS["story"]["$defs"]["style"])
    file_schema = dict(SCHEMAS["style"])
    assert inline["properties"] == file_schema["properties"]
    assert inline["additionalProperties"] is False and file_schema["additionalProperties"] is False
    assert set(file_schema["required"]) - set(inline["required"]) == {"kolorsc"}


def test_schemas_folder_is_a_relative_link_to_the_package_data():
    link = REPO / "schemas"
    assert link.is_symlink() and os.readlink(link) == "kolorsc/schemas"
    assert (link / "story.schema.json").read_text(encoding="utf-8") == schema_text("story")
