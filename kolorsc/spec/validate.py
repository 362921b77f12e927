"""Validate parsed YAML against the published JSON schemas and explain errors to people.

The schemas in kolorsc/schemas/ are the single source of truth for structure (editors use
the same files). jsonschema reports errors with a JSON path; we map that path back to the
line and column of the YAML source and rewrite the message in plain words, with a nearest
name suggestion for unknown keys and enum values.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from importlib import resources

from kolorsc.errors import Diagnostic
from kolorsc.i18n import N_, _
from kolorsc.spec.yamlsource import Source, quote

SCHEMA_NAMES = ("story", "style")


@functools.lru_cache(maxsize=None)
def schema_text(name: str) -> str:
    """The JSON text of a published schema (`story` or `style`)."""
    if name not in SCHEMA_NAMES:
        raise ValueError(f"unknown schema {name!r}")
    return (resources.files("kolorsc") / "schemas" / f"{name}.schema.json").read_text(encoding="utf-8")


@functools.lru_cache(maxsize=None)
def schema(name: str) -> dict:
    return json.loads(schema_text(name))


@functools.lru_cache(maxsize=None)
def _validator(name: str):
    import jsonschema  # imported on first validation: keeps `kolorsc --help` fast

    # JSON Schema counts 1.0 as an integer; kolorsc does not: `seed: 0.0` would pass check and
    # then render a different image than `seed: 0` (float seeds hash differently).
    base = jsonschema.Draft202012Validator
    checker = base.TYPE_CHECKER.redefine("integer", lambda _checker, v: isinstance(v, int) and not isinstance(v, bool))
    strict = jsonschema.validators.extend(base, type_checker=checker)
    return strict(schema(name))


MAX_SCHEMA_ERRORS = 100  # a 1 MB file can hold 150,000 wrong values: nobody reads past the first 100
# A story holds ~150 values. jsonschema spends ~30 us on each, so the 50,000 YAML allows would
# cost `check` 1.5 s of CPU for one file: more than MAX_VALUES is refused before validating.
MAX_VALUES = 10_000
_KINDS = {"story": N_("story"), "style": N_("style")}  # schema names, in messages


def validate(src: Source, name: str) -> list[Diagnostic]:
    """Every schema problem of `src.data` (the first MAX_SCHEMA_ERRORS), plus control
    characters and names too long for a file name, sorted by position."""
    if len(src.positions) > MAX_VALUES:
        return [src.diag((), _("the file holds {n} values; a {kind} has a few hundred (limit {limit})").format(
            n=f"{len(src.positions):,}", kind=_(_KINDS.get(name, name)), limit=f"{MAX_VALUES:,}"),
            _("is this the right file?"))]
    diags: list[Diagnostic] = []
    errors = _validator(name).iter_errors(src.data)  # lazy: stopping early saves the rest
    for n, error in enumerate(errors):
        if n == MAX_SCHEMA_ERRORS:
            diags.append(src.diag((), _("more problems not shown (stopped after {n}); fix these first").format(
                n=MAX_SCHEMA_ERRORS)))
            break
        diags.extend(_explain(src, error))
    diags += text_problems(src)[:MAX_SCHEMA_ERRORS]
    if name == "story":
        diags += file_name_problems(src) + refine_problems(src)
    return _dedupe(diags)


# ---------------------------------------------------------------------------------------
# What JSON Schema cannot say: control characters, and file names measured in bytes

# Values that name things or files, or are paths: one line of printable text. Other text
# (prompts, looks, descriptions) may hold tabs and line breaks, but no other control character.
ONE_LINE_FIELDS = frozenset({
    "id", "team", "title", "name", "path", "style", "base_model", "subset", "split", "strategy",
    "accelerator", "devices", "precision", "source", "op", "caption", "shot",
})
_TEXT_CONTROLS_ALLOWED = frozenset("\t\n\r")
NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows file systems
TEMP_NAME_EXTRA = 14  # kolorsc.atomic writes ".<name>.XXXXXXXX.tmp" beside the target first
BUNDLE_SUFFIX = "-可图Kolors训练-"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # Cc, Zl, Zp: a quick test before the exact one


def _bad_char(text: str, one_line: bool) -> str | None:
    import unicodedata

    if not _CONTROL.search(text):
        return None
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cc" and (one_line or ch not in _TEXT_CONTROLS_ALLOWED) or one_line and category in ("Zl", "Zp"):
            name = unicodedata.name(ch, "a control character").lower()
            return f"U+{ord(ch):04X}, {name}" if name != "a control character" else f"U+{ord(ch):04X}"
    return None


def text_problems(src: Source) -> list[Diagnostic]:
    """NUL and other control characters: in keys, names and paths none at all; in other text
    only tab and line breaks (a NUL in a path crashes the OS call that opens it)."""
    out: list[Diagnostic] = []

    def walk(value, path: tuple) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                bad = _bad_char(str(key), True) if isinstance(key, str) else None
                if bad:
                    out.append(src.diag(path + (key,), _("the key {key} holds a control character ({char})").format(
                        key=quote(key), char=bad), _("keys are one line of printable text"), at_key=True))
                walk(item, path + (key,))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, path + (i,))
        elif isinstance(value, str):
            one_line = bool(path) and path[-1] in ONE_LINE_FIELDS
            bad = _bad_char(value, one_line)
            if bad:
                rule = (_("names and paths are one line of printable text") if one_line
                        else _("text may hold tabs and line breaks, no other control character"))
                out.append(src.diag(path, _("holds a control character ({char})").format(char=bad), rule))

    walk(src.data, ())
    return out


def refine_problems(src: Source) -> list[Diagnostic]:
    """A refined panel must stay within the pixel budget that `kolorsc score` and `bundle
    verify` hold images to (kolorsc.images): else the build would make images its own
    checks refuse."""
    from kolorsc.images import MAX_PIXELS

    data = src.data if isinstance(src.data, dict) else {}
    defaults = data.get("defaults") if isinstance(data.get("defaults"), dict) else {}
    refine = defaults.get("refine") if isinstance(defaults.get("refine"), dict) else None
    if refine is None:
        return []
    scale = refine.get("scale", 2.0)
    sizes = [defaults.get("size", [1024, 1024])]
    sizes += [s.get("size") for s in data.get("scenes", []) if isinstance(s, dict) and s.get("size")]
    worst = 0
    for size in sizes:
        if isinstance(size, list) and len(size) == 2 and all(isinstance(v, (int, float)) for v in size):
            worst = max(worst, size[0] * size[1])
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or worst * scale * scale <= MAX_PIXELS:
        return []
    return [src.diag(("defaults", "refine", "scale"),
                     _("refines panels to about {n} megapixels, over the {limit}-megapixel budget of "
                       "`kolorsc score` and `bundle verify`").format(
                         n=f"{worst * scale * scale / 1e6:.0f}", limit=f"{MAX_PIXELS / 1e6:g}"),
                     _("lower refine.scale or the panel size"))]


def file_name_problems(src: Source) -> list[Diagnostic]:
    """The bundle's file name `{team}-可图Kolors训练-{id}.zip` must fit in NAME_MAX bytes with
    room for kolorsc's temporary name: file systems count bytes (an emoji is 4, a CJK
    character 3), the schema's maxLength counts characters."""
    data = src.data if isinstance(src.data, dict) else {}
    team, story_id = data.get("team"), data.get("id")
    if not isinstance(team, str) or not isinstance(story_id, str):
        return []
    name = f"{team}{BUNDLE_SUFFIX}{story_id}.zip"
    size = len(name.encode("utf-8", errors="surrogatepass"))
    limit = NAME_MAX - TEMP_NAME_EXTRA
    if size <= limit:
        return []
    room = limit - (size - len(team.encode("utf-8", errors="surrogatepass")))
    return [src.diag(("team",), _("makes the bundle's file name {size} bytes long; file names may have {limit} "
                                  "(team may use {room} bytes with this id)").format(
                                      size=size, limit=limit, room=max(room, 0)),
                     _("shorten team: in UTF-8 an emoji takes 4 bytes, a CJK character 3"))]


def _dedupe(diags: list[Diagnostic]) -> list[Diagnostic]:
    seen = set()
    out = []
    for d in sorted(diags, key=lambda d: (d.line or 0, d.col or 0, d.path, d.message)):
        if (d.line, d.col, d.path, d.message) not in seen:
            seen.add((d.line, d.col, d.path, d.message))
            out.append(d)
    return out


# ---------------------------------------------------------------------------------------
# Turning one jsonschema error into diagnostics


_JSON_TYPES = {  # translated where used
    "string": N_("text"),
    "integer": N_("integer"),
    "number": N_("number"),
    "boolean": N_("true or false"),
    "array": N_("a list"),
    "object": N_("a mapping"),
    "null": N_("nothing"),
}


def _type_word(t: str) -> str:
    return _(_JSON_TYPES[t]) if t in _JSON_TYPES else t


def describe(value) -> str:
    """A short, readable rendering of a YAML value for messages."""
    if value is None:
        return _("nothing")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return json.dumps(text, ensure_ascii=False)
    if isinstance(value, list):
        return _("a list of {n}").format(n=len(value))
    if isinstance(value, dict):
        return _("a mapping")
    return type(value).__name__


def _type_matches(instance, typ: str) -> bool:
    if typ == "object":
        return isinstance(instance, dict)
    if typ == "array":
        return isinstance(instance, list)
    if typ == "string":
        return isinstance(instance, str)
    if typ == "boolean":
        return isinstance(instance, bool)
    if typ == "integer":
        return isinstance(instance, int) and not isinstance(instance, bool)
    if typ == "number":
        return isinstance(instance, (int, float)) and not isinstance(instance, bool)
    if typ == "null":
        return instance is None
    return False


def _branch_types(subschema: dict, root: dict) -> list[str]:
    if "$ref" in subschema:
        subschema = _resolve(subschema["$ref"], root)
    typ = subschema.get("type")
    if isinstance(typ, str):
        return [typ]
    return list(typ or [])


def _resolve(ref: str, root: dict) -> dict:
    node = root
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def _explain(src: Source, error) -> list[Diagnostic]:
    path = tuple(error.absolute_path)
    v = error.validator
    inst = error.instance
    sch = error.schema if isinstance(error.schema, dict) else {}

    if "propertyNames" in error.schema_path:
        # The error is about a key itself; jsonschema reports it at the parent mapping.
        name = inst if isinstance(inst, str) else str(inst)
        return [src.diag(path + (name,), _name_problem(name), at_key=True)]

    if v == "type":
        want = sch.get("type")
        wants = [want] if isinstance(want, str) else list(want or [])
        words = _(" or ").join(_type_word(w) for w in wants)
        return [src.diag(path, _("expected {what}, got {value}").format(what=words, value=describe(inst)))]
    if v == "required":
        missing = [name for name in sch.get("required", []) if isinstance(inst, dict) and name not in inst]
        return [src.diag(path, _("missing required field \"{name}\"").format(name=name)) for name in missing]
    if v == "additionalProperties" and isinstance(inst, dict):
        known = list(sch.get("properties", {}))
        extra = [k for k in inst if k not in known]
        out = []
        for key in extra:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = (_("did you mean \"{name}\"?").format(name=close[0]) if close
                    else _("known fields: {names}").format(names=", ".join(known)))
            out.append(src.diag(path + (key,), _("unknown field {name}").format(name=quote(key)), hint, at_key=True))
        return out
    if v in ("minItems", "maxItems") and path == ("scenes",):
        return [src.diag(path, _("a story has exactly 8 scenes, got {n}").format(n=len(inst)))]
    if v == "minItems":
        return [src.diag(path, _("expected at least {limit} item(s), got {n}").format(limit=error.validator_value, n=len(inst)))]
    if v == "maxItems":
        return [src.diag(path, _("expected at most {limit} item(s), got {n}").format(limit=error.validator_value, n=len(inst)))]
    if v == "minLength":
        return [src.diag(path, _("must not be empty") if error.validator_value == 1
                         else _("must be at least {limit} characters").format(limit=error.validator_value))]
    if v == "maxLength":
        return [src.diag(path, _("too long ({n} characters; at most {limit})").format(n=len(inst), limit=error.validator_value))]
    if v == "minimum":
        return [src.diag(path, _("must be at least {limit}, got {value}").format(limit=error.validator_value, value=describe(inst)))]
    if v == "maximum":
        return [src.diag(path, _("must be at most {limit}, got {value}").format(limit=error.validator_value, value=describe(inst)))]
    if v == "exclusiveMinimum":
        return [src.diag(path, _("must be greater than {limit}, got {value}").format(limit=error.validator_value, value=describe(inst)))]
    if v == "exclusiveMaximum":
        return [src.diag(path, _("must be less than {limit}, got {value}").format(limit=error.validator_value, value=describe(inst)))]
    if v == "multipleOf":
        return [src.diag(path, _("must be a multiple of {limit}, got {value}").format(limit=error.validator_value, value=describe(inst)))]
    if v == "const":
        return [src.diag(path, _("must be {expected}, got {value}").format(expected=describe(error.validator_value), value=describe(inst)))]
    if v == "enum":
        options = [str(o) for o in error.validator_value]
        close = difflib.get_close_matches(str(inst), options, n=1, cutoff=0.5) if isinstance(inst, str) else []
        hint = _("did you mean \"{name}\"?").format(name=close[0]) if close else None
        return [src.diag(path, _("expected one of {options}; got {value}").format(options=", ".join(options), value=describe(inst)), hint)]
    if v == "pattern":
        return [src.diag(path, _pattern_problem(path, error.validator_value, inst))]
    if v == "uniqueItems":
        return [src.diag(path, _("items must not repeat"))]
    if v == "dependentRequired":
        out = []
        for key, needs in error.validator_value.items():
            if isinstance(inst, dict) and key in inst:
                for need in needs:
                    if need not in inst:
                        out.append(src.diag(path + (key,), _("\"{key}\" needs \"{need}\" beside it").format(key=key, need=need), at_key=True))
        return out
    if v == "oneOf" and all(set(b) == {"required"} for b in error.validator_value):
        names = [b["required"][0] for b in error.validator_value]
        present = [n for n in names if isinstance(inst, dict) and n in inst]
        listed = _(" or ").join(names) if len(names) == 2 else ", ".join(names[:-1]) + _(" or ") + names[-1]
        if present:
            return [src.diag(path, _("give only one of {names}, not {present}").format(names=listed, present=_(" and ").join(present)))]
        return [src.diag(path, _("needs one of {names}").format(names=listed))]
    if v in ("anyOf", "oneOf"):
        return _explain_branches(src, error, path)
    return [src.diag(path, _plain(error.message))]


def _explain_branches(src: Source, error, path) -> list[Diagnostic]:
    """anyOf/oneOf: explain with the branch whose type fits the value, else list the types."""
    inst = error.instance
    root = _root_schema(error)
    fitting = [i for i, b in enumerate(error.validator_value) if any(_type_matches(inst, t) for t in _branch_types(b, root))]
    if fitting:
        out = []
        for sub in error.context or ():
            if sub.schema_path and sub.schema_path[0] in fitting:
                out.extend(_explain(src, sub))
        if out:
            return out
    types = []
    for b in error.validator_value:
        for t in _branch_types(b, root):
            word = _type_word(t)
            if word not in types:
                types.append(word)
    return [src.diag(path, _("expected {what}, got {value}").format(what=_(" or ").join(types), value=describe(inst)))]


def _root_schema(error) -> dict:
    # Only the story schema uses $ref inside anyOf; its root is what we resolve against.
    return schema("story")


def _name_problem(name: str) -> str:
    if name in ("style", "story", "scene"):
        return _("{name} is a reserved name (templates use it for the {what}); pick another key").format(name=quote(name), what=name)
    return _("{name} cannot be a character key: use letters, digits and _ (not starting with a digit)").format(name=quote(name))


def _pattern_problem(path, pattern: str, inst) -> str:
    last = path[-1] if path else ""
    if pattern.startswith("^[a-z0-9]+(?:-"):
        return _("must be a slug (lowercase letters, digits and single hyphens), got {value}").format(value=describe(inst))
    if last == "team":
        return _("must not contain / \\ : * ? \" < > | or control characters (it names files), got {value}").format(value=describe(inst))
    if last in ("id", "base_model", "modelscope"):
        return _("must look like owner/name, got {value}").format(value=describe(inst))
    if last == "file":
        return _("must be a .safetensors path inside the repository (no .. or leading /), got {value}").format(value=describe(inst))
    if last == "revision":
        return _("must be a branch, tag or commit name (letters, digits, . _ -), got {value}").format(value=describe(inst))
    if last == "op":
        return _("must be a Data-Juicer operator name like image_shape_filter, got {value}").format(value=describe(inst))
    return _("has the wrong form, got {value} (expected to match {pattern})").format(value=describe(inst), pattern=pattern)


def _plain(message: str) -> str:
    text = " ".join(message.split())
    return text if len(text) <= 200 else text[:197] + "..."
