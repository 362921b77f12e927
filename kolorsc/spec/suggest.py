"""Suggestions where an author types the natural thing instead of the name kolorsc wants.

    style_names(styles_dir)            {style file stem: display name}  (`name:` of each style)
    suggest_style(value, styles_dir)   ("ink-wash", "水墨") for `style: 水墨`, `inkwash`, `ink_wash`
    character_named(name, characters)  the key of the character whose `name:` is `name` ({{ 小雨 }})
    slug_for(text)                     "yue-guang-xia-de-xiao-hu-li" for 月光下的小狐狸 (pypinyin)

A Chinese author names a style by its display name (水墨) and a character by who it is (小雨),
and titles a story in Chinese; each of these points at the slug or key to write instead.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path

from kolorsc.i18n import _

_SLUG_PART = re.compile(r"[^a-z0-9]+")
MAX_SLUG = 48  # a suggestion, not a sentence: cut at a hyphen beyond this


def style_names(styles_dir: Path) -> dict[str, str]:
    """{stem: display name} of every style file in `styles_dir`; the stem when a file has no
    readable name (a broken style still counts as existing)."""
    from kolorsc.spec.yamlsource import SourceError, read_source

    out: dict[str, str] = {}
    if not Path(styles_dir).is_dir():
        return out
    for path in sorted(Path(styles_dir).glob("*.y*ml")):
        name = path.stem
        try:
            data = read_source(path).data
            if isinstance(data, dict) and isinstance(data.get("name"), str):
                name = data["name"]
        except SourceError:
            pass
        out.setdefault(path.stem, name)
    return out


def _squash(text: str) -> str:
    return re.sub(r"[-_\s]+", "", text.lower())


def suggest_style(value: str, styles_dir: Path) -> tuple[str, str] | None:
    """The existing style an author most likely meant by `value`: its display name, the same
    letters without hyphens/underscores, or a close spelling. (stem, display name) or None."""
    names = style_names(styles_dir)
    if value in names:
        return None
    for stem, name in names.items():
        if value == name or value.strip().lower() == name.strip().lower():
            return stem, name
    for stem, name in names.items():
        if _squash(value) == _squash(stem):
            return stem, name
    close = difflib.get_close_matches(value, list(names), n=1, cutoff=0.75)
    if close:
        return close[0], names[close[0]]
    close = difflib.get_close_matches(value, list(names.values()), n=1, cutoff=0.6)
    if close:
        stem = next(s for s, n in names.items() if n == close[0])
        return stem, close[0]
    return None


def style_hint(stem: str, name: str) -> str:
    return (_("did you mean {slug} ({name})?").format(slug=stem, name=name) if name != stem
            else _("did you mean {name}?").format(name=stem))


def character_named(name: str, characters: Iterable[tuple[str, str | None]]) -> str | None:
    """The key of the character whose display name is `name` (exactly, else closely), from
    (key, name) pairs."""
    pairs = [(key, shown) for key, shown in characters if shown and shown != key]
    for key, shown in pairs:
        if shown == name:
            return key
    close = difflib.get_close_matches(name, [shown for _, shown in pairs], n=1, cutoff=0.6)
    return next(key for key, shown in pairs if shown == close[0]) if close else None


def slug_for(text: str) -> str:
    """A slug for a title: Chinese characters as pinyin (pypinyin), other letters kept,
    everything else a hyphen. "story" when nothing usable is left."""
    try:
        from pypinyin import lazy_pinyin

        words = lazy_pinyin(text)
    except ImportError:  # pragma: no cover - a core dependency; a bare slug still helps
        words = [text]
    slug = "-".join(p for p in (_SLUG_PART.sub("-", w.lower()).strip("-") for w in words) if p)
    slug = re.sub(r"-{2,}", "-", slug)
    if len(slug) > MAX_SLUG:
        slug = slug[:MAX_SLUG].rsplit("-", 1)[0]
    return slug or "story"
