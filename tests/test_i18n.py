"""Messages in Chinese (issue 12): gettext catalogs extracted with Babel from the source.

Fails when a message has no Chinese translation (or a fuzzy one), when a translation drops or
invents a {placeholder}, when the committed .mo is not the compiled .po, and when a module
whose messages are translated gains a message that is not wrapped in _()."""

from __future__ import annotations

import ast
import inspect
import io
import re

import click
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from click.testing import CliRunner

from kolorsc import i18n
from kolorsc.cli import main

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "kolorsc"
PO = PACKAGE / "locale" / "zh" / "LC_MESSAGES" / "kolorsc.po"
MO = PO.with_suffix(".mo")
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}
PLACEHOLDER = re.compile(r"(?<!\{)\{([a-z_]*)[^{}]*\}(?!\})")

# Modules whose every message goes through the catalog; a new message there must be wrapped.
# (Every module with messages is listed: a module not here has none the check recognises.)
TRANSLATED = [
    "errors.py", "fonts.py", "extras.py", "cli.py", "api.py",
    "spec/yamlsource.py", "spec/yamlhelp.py", "spec/validate.py", "spec/loader.py", "spec/templates.py",
    "spec/check.py", "spec/inputs.py", "spec/ids.py", "spec/scaffold.py", "spec/collection.py", "spec/suggest.py",
    "build/status.py", "build/graph.py", "build/inputs.py", "build/outputs.py", "build/run.py",
    "emit/verify.py", "emit/bundlename.py", "emit/bundle.py", "emit/pdf.py", "emit/story.py", "emit/storyboard.py",
    "models.py", "lora.py", "train.py", "publish.py", "config.py",
    "data/__init__.py", "data/juicer.py", "data/sources.py", "data/generate.py", "data/fingerprint.py",
    "review/present.py", "review/git.py", "review/diff.py", "remote/commands.py", "remote/store.py", "remote/keys.py",
    "scoring/present.py", "scoring/folder.py", "engines/__init__.py", "build/stages/lora.py",
    "engines/kolors/device.py", "engines/kolors/engine.py", "engines/kolors/loading.py", "engines/kolors/lora_merge.py",
    "remote/transfer.py",
    "spec/sandbox.py", "spec/budget.py", "spec/tokens.py", "spec/consistency.py", "safefs.py", "optional.py",
    "scoring/loader.py", "engines/kolors/ipadapter.py", "engines/kolors/unet_parts.py", "build/stages/picture.py",
    "build/executors/__init__.py", "build/executors/ray.py", "build/executors/ray_pool.py", "build/executors/ray_worker.py",
]


def source_messages() -> set:
    """What `pybabel extract -F babel.cfg` finds: every _() message, and cli.py's help texts."""
    with (REPO / "babel.cfg").open(encoding="utf-8") as f:
        method_map, options_map = parse_mapping_cfg(f)
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(REPO), method_map=method_map, options_map=options_map, keywords=KEYWORDS):
        found.add(message if isinstance(message, str) else tuple(message))
    return found


@pytest.fixture(scope="module")
def catalog():
    with PO.open("rb") as f:
        return read_po(f)


def test_every_message_has_a_chinese_translation(catalog):
    untranslated = []
    for message in sorted(source_messages(), key=str):
        entry = catalog.get(message)
        strings = () if entry is None else (entry.string if isinstance(entry.string, tuple) else (entry.string,))
        if entry is None or entry.fuzzy or not all(strings):
            untranslated.append(message)
    assert untranslated == [], "run pybabel extract/update (kolorsc/i18n.py) and translate these"


def test_translations_keep_the_placeholders(catalog):
    wrong = []
    for entry in catalog:
        if not entry.id:
            continue
        ids = entry.id if isinstance(entry.id, tuple) else (entry.id,)
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        want = set(PLACEHOLDER.findall(ids[-1]))
        wrong += [(ids[0], s) for s in strings if set(PLACEHOLDER.findall(s)) != want]
    assert wrong == []


def test_the_committed_mo_is_the_compiled_po(catalog):
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    assert MO.read_bytes() == compiled.getvalue(), "compile it: pybabel compile -d kolorsc/locale -D kolorsc"


def _words(node) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant))
    return ""


def _name(func) -> str:
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


MESSAGE_CALLS = re.compile(r"^(Diagnostic|\w*Error|error|warning|diag|echo|add|_problem)$")
BUILTIN_ERRORS = {n for n in dir(__builtins__ if isinstance(__builtins__, dict) else __builtins__.__dict__)} | {
    name for name in dir(__import__("builtins")) if name.endswith("Error")}  # programming errors, not messages


@pytest.mark.parametrize("module", TRANSLATED)
def test_translated_modules_wrap_every_message(module):
    """Literal English text given to an error, a diagnostic, a report or click.echo must be
    wrapped in _() (field names, paths and punctuation alone are fine)."""
    tree = ast.parse((PACKAGE / module).read_text("utf-8"))
    bare = []
    for node in ast.walk(tree):
        name = _name(node.func) if isinstance(node, ast.Call) else ""
        if MESSAGE_CALLS.match(name) and name not in BUILTIN_ERRORS:
            for arg in node.args:
                text = re.sub(r"\{[^{}]*\}", "", _words(arg))
                if re.search(r"[A-Za-z]{3,}", text) and " " in text.strip():  # words, not a field name
                    bare.append(f"{module}:{node.lineno}: {text[:60]!r}")
    assert bare == []


@pytest.mark.parametrize("env, args, chinese", [
    ({"LANG": "zh_CN.UTF-8"}, [], True),
    ({"LANG": "zh_TW.UTF-8"}, [], True),
    ({"LANG": "en_US.UTF-8"}, [], False),
    ({"LANG": "C.UTF-8"}, [], False),
    ({"LANG": "zh_CN.UTF-8", "KOLORSC_LANG": "en"}, [], False),
    ({"LANG": "en_US.UTF-8", "KOLORSC_LANG": "zh"}, [], True),
    ({"LANG": "en_US.UTF-8", "LC_ALL": "zh_CN.UTF-8"}, [], True),
    ({"LANG": "zh_CN.UTF-8", "KOLORSC_LANG": "zh"}, ["--lang", "en"], False),
    ({"LANG": "en_US.UTF-8"}, ["--lang", "zh"], True),
])
def test_the_language_is_chosen_by_lang_then_kolorsc_lang_then_the_locale(tmp_path, monkeypatch, env, args, chinese):
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG", "KOLORSC_LANG"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    result = CliRunner().invoke(main, ["check", str(tmp_path / "nope.yaml"), *args])
    assert result.exit_code == 2
    assert ("文件不存在" in result.output) is chinese and ("no such file" in result.output) is not chinese
    i18n.set_language(None)


def test_lang_works_before_and_after_the_command(tmp_path):
    before = CliRunner().invoke(main, ["--lang", "zh", "check", str(tmp_path / "nope.yaml")])
    after = CliRunner().invoke(main, ["check", str(tmp_path / "nope.yaml"), "--lang", "zh"])
    assert before.output == after.output and "文件不存在" in after.output
    again = CliRunner().invoke(main, ["check", str(tmp_path / "nope.yaml"), "--lang", "en"])
    assert "no such file" in again.output  # one invocation's choice does not leak into the next


def _helps(group: click.Group):
    for command in group.commands.values():
        if isinstance(command, click.Group):
            yield from _helps(command)
        yield command.__dict__.get("_help_en", command.help)
        yield from (p.__dict__.get("_help_en", getattr(p, "help", None)) for p in command.params)


def test_every_help_text_is_extracted_and_translated(catalog):
    texts = {inspect.cleandoc(h).split("\f")[0].strip() for h in _helps(main) if h}
    assert len(texts) > 60
    assert sorted(t for t in texts if not (catalog.get(t) and catalog.get(t).string)) == []
    shown = CliRunner().invoke(main, ["--lang", "zh", "check", "--help"]).output
    assert "检查故事文件和作品集" in shown and "等同于 --format json" in shown
    assert "Check story files" in CliRunner().invoke(main, ["check", "--help"]).output


def test_normalize():
    assert [i18n.normalize(x) for x in ("zh_CN.UTF-8", "zh-Hans", "ZH", "en_US", "C", "POSIX", "fr_FR", "")] == [
        "zh", "zh", "zh", "en", "en", "en", None, None]
    with pytest.raises(ValueError):
        i18n.set_language("fr")


# Modules that make output bytes (cached under keys that do not hold the language): a
# translated string may only be an error's message there, never text that lands in a file.
MAKES_BYTES = ["emit/bundle.py", "emit/pdf.py", "emit/story.py", "emit/storyboard.py", "emit/gallery.py",
               "emit/htmlpage.py", "emit/modelcard.py", "emit/comfyui.py", "emit/pngmeta.py", "emit/prepared.py",
               "emit/common.py", "engines/preview.py", *sorted(str(p.relative_to(PACKAGE))
                                                          for p in (PACKAGE / "build" / "stages").glob("*.py"))]


@pytest.mark.parametrize("module", MAKES_BYTES)
def test_no_translated_text_reaches_an_output(module):
    tree = ast.parse((PACKAGE / module).read_text("utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    outside = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node.func) in ("_", "ngettext"):
            up = node
            while up in parents and not isinstance(up, ast.Raise):
                up = parents[up]
            if not isinstance(up, ast.Raise):
                outside.append(f"{module}:{node.lineno}")
    assert outside == []
