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

    return jsonschema.Draft202012Validator(schema(name))


def validate(src: Source, name: str) -> list[Diagnostic]:
    """Every schema problem of `src.data`, sorted by position."""
    diags: list[Diagnostic] = []
    for error in _validator(name).iter_errors(src.data):
        diags.extend(_explain(src, error))
    return _dedupe(diags)


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
