"""Messages in the author's language: English, or Chinese (简体中文), from gettext catalogs.

    _("unknown style {name}").format(name=...)     a message, translated when it is made
    N_("text")                                     marks a constant for extraction; _() it where used
    set_language("zh" | "en" | None)               the CLI's --lang; None: back to the environment
    language() -> "en" | "zh"                      --lang, else $KOLORSC_LANG, else the locale

The locale is read the way gettext reads it ($LANGUAGE, $LC_ALL, $LC_MESSAGES, $LANG, first
set wins): `LANG=zh_CN.UTF-8` (or zh_TW, zh_HK, zh_SG) gives Chinese, anything else English.

Catalogs: kolorsc/locale/zh/LC_MESSAGES/kolorsc.po, written by people, and its compiled
kolorsc.mo beside it; both are committed, so an editable install from a fresh clone has them
without a build step (setuptools does not run Babel, and the wheel ships the .mo as package
data). After changing messages: `pybabel extract -F babel.cfg -k N_ --no-location
--sort-output -o kolorsc/locale/kolorsc.pot .`, `pybabel update -i kolorsc/locale/kolorsc.pot
-d kolorsc/locale -D kolorsc --no-wrap` (the .po keeps one line per message), translate (and
clear the `fuzzy` flags update sets), `pybabel compile -d kolorsc/locale -D kolorsc`
(tests/test_i18n.py fails on any message without a translation or with a fuzzy one, and on
a .mo that is not the compiled .po).

Messages are translated when they are made (a Diagnostic holds its text), so the language is
chosen before any work: the CLI does it first thing.
"""

from __future__ import annotations

import functools
import gettext
import os
from pathlib import Path

DOMAIN = "kolorsc"
LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("en", "zh")
_chosen: str | None = None


def set_language(lang: str | None) -> None:
    global _chosen
    if lang is not None and normalize(lang) is None:
        raise ValueError(f"unknown language {lang!r} (kolorsc speaks {', '.join(LANGUAGES)})")
    _chosen = normalize(lang) if lang else None


def normalize(lang: str | None) -> str | None:
    """"zh_CN.UTF-8", "zh-Hans", "ZH" -> "zh"; "en_US", "C", "POSIX" -> "en"; "" -> None."""
    if not lang:
        return None
    code = lang.split(".")[0].split("@")[0].replace("-", "_").lower()
    if code.startswith("zh"):
        return "zh"
    if code.startswith("en") or code in ("c", "posix"):
        return "en"
    return None


def language() -> str:
    if _chosen:
        return _chosen
    explicit = normalize(os.environ.get("KOLORSC_LANG"))
    if explicit:
        return explicit
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var)
        if value:  # the first one set decides, as gettext does ($LANGUAGE may list several: a:b)
            return normalize(value.split(":")[0]) or "en"
    return "en"


@functools.lru_cache(maxsize=None)
def _catalog(lang: str) -> gettext.NullTranslations:
    if lang == "en":
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, localedir=LOCALE_DIR, languages=[lang], fallback=True)


def _(message: str) -> str:
    """`message` in the current language (itself when the catalog has no translation)."""
    return _catalog(language()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _catalog(language()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Marks a constant for extraction; translate it with _() where it is used."""
    return message
