"""What changed between two versions of a story, in the author's terms: small named checks
over the typed model (the compiled panels, the style, the characters), each returning
`Change` records. No git, no cache, no build core here.

Prompt and negative changes carry a fragment diff: prompts are comma-separated fragments
(often Chinese, where word splitting is not defined), so the fragment is the unit a reader
recognises — `[-站在路边-]{+站在河边+}` rather than a character soup.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass
from pathlib import Path, PurePath

from kolorsc.prompts import Panel, fragments
from kolorsc.spec.model import Loc, Story, Style

EQUAL, DELETE, INSERT = "=", "-", "+"

# Panel fields and what a change of each means for the render.
PANEL_FIELDS = ("caption", "prompt", "negative", "seed", "candidates", "steps", "cfg", "size", "refine", "shot")
TEXT_FIELDS = ("prompt", "negative")


@dataclass(frozen=True)
class Change:
    field: str  # "prompt", "seed", "style", "lora.train.rank", "characters.girl.look" ...
    old: object
    new: object
    ops: tuple[tuple[str, str], ...] = ()  # fragment diff of text fields: (EQUAL|DELETE|INSERT, fragment)

    def to_json(self) -> dict:
        out = {"field": self.field, "old": self.old, "new": self.new}
        if self.ops:
            out["diff"] = [list(op) for op in self.ops]
        return out


def text_ops(old: str, new: str) -> tuple[tuple[str, str], ...]:
    """Fragment-level diff: consecutive runs merged, order kept."""
    a, b = fragments(old), fragments(new)
    ops: list[tuple[str, str]] = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            ops += [(EQUAL, f) for f in a[i1:i2]]
            continue
        ops += [(DELETE, f) for f in a[i1:i2]]
        ops += [(INSERT, f) for f in b[j1:j2]]
    return tuple(ops)


def _panel_value(p: Panel, name: str):
    if name == "size":
        return [p.width, p.height]
    if name == "refine":
        return None if p.refine is None else p.refine.as_dict()
    return getattr(p, name)


def panel_changes(old: Panel, new: Panel) -> list[Change]:
    """Every field of the compiled panel that differs (caption and shot included)."""
    out = []
    for name in PANEL_FIELDS:
        a, b = _panel_value(old, name), _panel_value(new, name)
        if a != b:
            out.append(Change(name, a, b, text_ops(a, b) if name in TEXT_FIELDS else ()))
    return out


# -- story and style -----------------------------------------------------------------------


def plain(value, root: Path | None = None):
    """JSON-able data of a model value; paths relative to the project root, positions dropped."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name), root) for f in dataclasses.fields(value)
                if not isinstance(getattr(value, f.name), Loc)}
    if isinstance(value, dict):
        return {str(k): plain(v, root) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, root) for v in value]
    if isinstance(value, PurePath):
        try:
            return Path(value).relative_to(root).as_posix() if root else Path(value).as_posix()
        except ValueError:
            return Path(value).as_posix()
    return value


def flatten(prefix: str, value) -> dict[str, object]:
    """{"lora.train.rank": 16, ...}; lists stay whole (compared as one value)."""
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for k in sorted(value):
            out.update(flatten(f"{prefix}.{k}" if prefix else k, value[k]))
        return out
    return {prefix: value}


def _diff_flat(old: dict, new: dict) -> list[Change]:
    out = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if a != b:
            out.append(Change(name, _shown(a), _shown(b)))
    return out


def _shown(value):
    # lists (filters, target modules, size) as compact JSON text: one readable value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")) if isinstance(value, list) else value


def style_view(style: Style, root: Path) -> dict:
    """What of a style matters to the renders and the bundle (not where its file lives)."""
    return {
        "style": style.id,
        "style.name": style.name,
        "style.trigger": style.trigger,
        "style.negative": style.negative,
        "style.base_model": style.base_model,
        **flatten("lora", plain(style.lora, root) if style.lora else None),
    }


def lora_view(story: Story) -> dict:
    """The style's LoRA spec as flat data, for "did the LoRA change" (None: no LoRA)."""
    return flatten("lora", plain(story.style.lora, story.root) if story.style.lora else None)


def story_changes(old: Story, new: Story) -> list[Change]:
    """Story-level differences: metadata, style (trigger, negative, base model, LoRA), characters."""
    meta = ("title", "team", "description", "threshold")
    out = [Change(m, getattr(old, m), getattr(new, m)) for m in meta if getattr(old, m) != getattr(new, m)]
    out += _diff_flat(style_view(old.style, old.root), style_view(new.style, new.root))
    out += _diff_flat(_characters(old), _characters(new))
    return out


def _characters(story: Story) -> dict:
    return {f"characters.{k}.{f}": getattr(c, f) for k, c in story.characters.items() for f in ("look", "name")}
