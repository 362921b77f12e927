"""A Babel extraction method for kolorsc/cli.py: its messages, plus the help texts of the
commands (their docstrings) and options (`help=`), which are not `_()` calls.

babel.cfg maps cli.py here (`[kolorsc.i18n_click:extract: kolorsc/cli.py]`); at run time
cli.py translates the same texts when it shows them (`kolorsc --lang zh check --help`). Used
only by Babel and the tests: nothing imports it at run time.
"""

from __future__ import annotations

import ast
import inspect


def _literal(node) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _is_click(decorator) -> bool:
    """@main.command(...), @x_group.command(...), @main.group(...), @click.group(...)"""
    func = decorator.func if isinstance(decorator, ast.Call) else decorator
    return isinstance(func, ast.Attribute) and func.attr in ("command", "group")


def help_texts(source: str):
    """(line, text) of every command docstring (as click shows it) and option help."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and any(_is_click(d) for d in node.decorator_list):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield node.lineno, inspect.cleandoc(doc).split("\f")[0].strip()
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                text = _literal(keyword.value) if keyword.arg == "help" else None
                if text:
                    yield keyword.value.lineno, text


def extract(fileobj, keywords, comment_tags, options):
    """Babel's Python extraction, then the help texts."""
    from babel.messages.extract import extract_python  # Babel is a test/development dependency

    yield from extract_python(fileobj, keywords, comment_tags, options)
    fileobj.seek(0)
    source = fileobj.read().decode(options.get("encoding", "utf-8"))
    for line, text in help_texts(source):
        yield line, None, text, []
