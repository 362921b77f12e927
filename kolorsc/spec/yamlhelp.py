"""YAML mistakes in the author's terms, at the line that has the mistake.

Chinese input methods type full-width punctuation, and a YAML parser reports the trouble
where it gave up — often the next line, in its own words ("could not find expected ':'").
Two entry points:

    explain(text, error) -> (line, col, message, hint) | None
        for a file PyYAML could not parse: look at the lines from where the parser started the
        construct it failed on to where it failed, and name the first author mistake found: a
        full-width colon after a key (`id：x`), a full-width dash for a list item (`－ caption`),
        a full-width comma between flow items (`{caption: 一，prompt: 猫}`), full-width quotes
        around text with a colon (`title: “故事: 一”`), a tab in the indentation, an unclosed
        quote (pointed at where it opens, not at the end of the file), a line indented unlike
        its neighbours.

    lint(src) -> [Diagnostic]
        for a file that parsed, mistakes that parse as something else: full-width braces that
        make a template plain text (`｛｛ girl ｝｝`), a full-width colon that turned a field into
        a string (`- caption：一`), a full-width comma inside a list of numbers
        (`size: [1024，1024]`), and (a warning) full-width quotes that end up in the text.

Lines are scanned with a small quote-aware reader of one line; block scalars (`|`, `>`) and
comments are skipped where the parse tells us where they are.
"""

from __future__ import annotations

import re

from kolorsc.errors import WARNING, Diagnostic
from kolorsc.i18n import _, ngettext
from kolorsc.spec.yamlsource import Source, format_path

FW_COLON, FW_COMMA, FW_DASH = "：", "，", "－"
FW_QUOTES = "“”‘’"
FW_BRACES = "｛｝"

_KEY_FW_COLON = re.compile(r"^(\s*)(?:[-－]\s+)?([A-Za-z_][A-Za-z0-9_-]*)[ \t]*：")
_FW_DASH_ITEM = re.compile(r"^(\s*)－")
_TAB_INDENT = re.compile(r"^( *)\t")
_KEY_LINE = re.compile(r"^(\s*)(?:-\s+)?([^\s#'\"][^:#]*?|\"[^\"]*\"|'[^']*'):(?:\s|$)")
_FW_TEMPLATE = re.compile(r"[{｛][｛]|[｛][{]|[}｝][｝]|[｝][}]|｛[%#]|[%#]｝")
_NUMBER = re.compile(r"^\s*-?\d+(?:\.\d+)?\s*$")
INDENT_PROBLEMS = ("mapping values are not allowed", "did not find expected key", "did not find expected '-'",
                   "could not find expected ':'", "expected <block end>")

# --- messages (one place, so they read alike) ------------------------------------------------


def _colon(key: str) -> tuple[str, str]:
    return (_("full-width colon \"：\" after \"{key}\": YAML needs an ASCII colon and a space").format(key=key),
            _("write {key}: ...").format(key=key))


def _dash() -> tuple[str, str]:
    return (_("full-width dash \"－\" starts a list item: YAML needs an ASCII \"-\" and a space"), _("write - ..."))


def _comma() -> tuple[str, str]:
    return (_("full-width comma \"，\" between items in [ ] or {{ }}: YAML separates them with an ASCII comma").format(),
            _("write , between the items; a full-width comma inside quoted text is fine"))


def _quote(ch: str) -> tuple[str, str]:
    return (_("full-width quote \"{char}\" does not quote text in YAML").format(char=ch),
            _("quote with ASCII \" or '; full-width quotes inside quoted text are fine"))


def _tab() -> tuple[str, str]:
    return (_("a tab in the indentation: YAML indents with spaces only"), _("replace the tab with spaces"))


def _unclosed(ch: str, line: int, col: int) -> tuple[str, str]:
    return (_("unclosed quote: the {quote} at line {line}, column {col} is never closed").format(quote=ch, line=line, col=col),
            _("end the text with {quote} on the same line, or write several lines as a block with |").format(quote=ch))


def _indent(have: int, key: str | None, want: int) -> tuple[str, str]:
    above = (_("\"{key}\" above it is indented {n}").format(key=key, n=want) if key
             else _("the line above is indented {n}").format(n=want))
    return (ngettext("bad indentation: this line is indented {n} space, {above}",
                     "bad indentation: this line is indented {n} spaces, {above}", have).format(n=have, above=above),
            _("fields of one mapping start in the same column; indent a field's contents further than the field"))


# --- reading one line ------------------------------------------------------------------------


def _unquoted(line: str) -> list[tuple[int, str]]:
    """(index, char) of the characters of `line` outside ASCII quotes and before a comment."""
    out, quote = [], None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
            continue
        if ch in "\"'" and (i == 0 or line[i - 1] in " \t[{,:-"):
            quote = ch
            continue
        if ch == "#" and (i == 0 or line[i - 1] in " \t"):
            break
        out.append((i, ch))
    return out


def _line_mistake(line: str) -> tuple[int, tuple[str, str]] | None:
    """The first author mistake on one line: (0-based column, (message, hint))."""
    m = _TAB_INDENT.match(line)
    if m:
        return len(m.group(1)), _tab()
    m = _FW_DASH_ITEM.match(line)
    if m:
        return len(m.group(1)), _dash()
    m = _KEY_FW_COLON.match(line)
    if m:
        return m.end() - 1, _colon(m.group(2))
    depth = 0
    chars = _unquoted(line)
    for n, (i, ch) in enumerate(chars):
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == FW_COMMA and depth > 0:
            return i, _comma()
        elif ch in "“‘" and _value_start(chars, n):
            return i, _quote(ch)
    return None


def _value_start(chars: list[tuple[int, str]], n: int) -> bool:
    """Is the n-th unquoted character the first of a value (after `key: `, `- `, `[`, `,`)?"""
    k = n - 1
    while k >= 0 and chars[k][1] in " \t":
        k -= 1
    return k < 0 or chars[k][1] in ":-[{,"


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _content(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _key_column(line: str) -> tuple[int, str | None]:
    """Where the field of a line starts (after a list dash) and its name."""
    m = _KEY_LINE.match(line)
    indent = _indent_of(line)
    rest = line[indent:]
    if rest.startswith("- "):
        indent += 2 + (len(rest[2:]) - len(rest[2:].lstrip(" ")))
    return indent, (m.group(2).strip() if m else None)


def _bad_indent(lines: list[str], n: int) -> tuple[int, tuple[str, str]] | None:
    """Line n (0-based) starts in a column no enclosing or sibling field uses."""
    line = lines[n]
    if not _content(line) or line.lstrip(" ").startswith("- "):
        return None
    have = _indent_of(line)
    prev = next((k for k in range(n - 1, -1, -1) if _content(lines[k])), None)
    if prev is None:
        return None
    col, key = _key_column(lines[prev])
    if lines[prev].rstrip().endswith(":") and have > col:
        return None  # the contents of the field above
    valid = {col}
    floor = _indent_of(lines[prev])
    for k in range(prev - 1, -1, -1):  # the columns of the enclosing fields
        if _content(lines[k]) and _indent_of(lines[k]) < floor:
            valid.add(_key_column(lines[k])[0])
            valid.add(_indent_of(lines[k]))
            floor = _indent_of(lines[k])
    valid.add(0)
    if have in valid:
        return None
    return have, _indent(have, key, col)


# --- a file that does not parse --------------------------------------------------------------


def explain(text: str, error) -> tuple[int, int, str, str | None] | None:
    """(line, col, message, hint), 1-based, for a PyYAML MarkedYAMLError; None when no author
    mistake is recognised (the caller keeps PyYAML's own words)."""
    problem = error.problem_mark or error.context_mark
    if problem is None:
        return None
    lines = text.splitlines()
    context = error.context_mark
    if error.context and "quoted scalar" in error.context and context is not None:
        ch = _char(lines, context.line, context.column) or '"'
        return (context.line + 1, context.column + 1, *_unclosed(ch, context.line + 1, context.column + 1))
    last = min(problem.line, len(lines) - 1)
    first = min(context.line if context is not None else last, last)
    first = max(0, min(first, last - 3))  # the mistake is on the failing line or just above it
    for n in range(last, first - 1, -1):
        found = _line_mistake(lines[n]) if n < len(lines) else None
        if found:
            col, (message, hint) = found
            return n + 1, col + 1, message, hint
    if error.problem and any(p in error.problem for p in INDENT_PROBLEMS):
        for n in (problem.line, problem.line - 1):
            if 0 <= n < len(lines):
                found = _bad_indent(lines, n)
                if found:
                    col, (message, hint) = found
                    return n + 1, col + 1, message, hint
    return None


def _char(lines: list[str], line: int, col: int) -> str:
    return lines[line][col] if 0 <= line < len(lines) and 0 <= col < len(lines[line]) else ""


# --- a file that parsed ----------------------------------------------------------------------

TEMPLATE_FIELDS = ("prompt", "negative", "caption_text")


def merge(lint_diags: list[Diagnostic], schema_diags: list[Diagnostic]) -> list[Diagnostic]:
    """Lint errors first in their place; a schema error about the same value (or the list
    holding it: `size: [1024，1024]` is "a list of 1") is the same mistake, said worse."""
    errors = [d for d in lint_diags if d.severity != WARNING]
    covered = {d.path for d in errors} | {re.sub(r"\[\d+\]$", "", d.path) for d in errors}
    kept = [d for d in schema_diags if d.path not in covered]
    return sorted(errors + kept, key=lambda d: (d.line or 0, d.col or 0))


def lint(src: Source) -> list[Diagnostic]:
    """Mistakes that parse as something else; errors, except full-width quotes (a warning:
    a caption may mean them)."""
    from kolorsc.i18n import language

    memo = src.__dict__.setdefault("_lint", {})  # loader and check both ask; a Source is never modified
    if language() not in memo:  # messages are in the language of the moment
        memo[language()] = []
        _walk(src, src.data, (), memo[language()])
    return list(memo[language()])


def _walk(src: Source, value, path: tuple, out: list[Diagnostic]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _walk(src, v, path + (k,), out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _walk(src, v, path + (i,), out)
        _flow_numbers(src, value, path, out)
    elif isinstance(value, str):
        _string(src, value, path, out)


def _at(src: Source, path: tuple, ch_index: int | None, message: str, hint: str | None, severity: str = "error",
        char: str | None = None) -> Diagnostic:
    """A diagnostic at a character of the string at `path` (found in the file text from the
    value's start), else at the value."""
    line, col = src.pos(path)
    if char is not None and src.text:
        lines = src.text.splitlines()
        for n in range(line - 1, len(lines)):
            start = col - 1 if n == line - 1 else 0
            i = lines[n].find(char, start)
            if i >= 0:
                line, col = n + 1, i + 1
                break
    return Diagnostic(src.name, line, col, format_path(src.prefix + path), message, hint, severity)


def _string(src: Source, value: str, path: tuple, out: list[Diagnostic]) -> None:
    last = path[-1] if path else ""
    if isinstance(last, str) and last in TEMPLATE_FIELDS:
        m = _FW_TEMPLATE.search(value)
        if m:
            out.append(_at(src, path, m.start(), _(
                "full-width braces \"{braces}\" make this plain text, not a template: it would reach "
                "the prompt as written").format(braces=m.group()), _("write {{ name }} with ASCII braces"),
                char=m.group()[0]))
    m = _KEY_FW_COLON.match(value)
    if m and (isinstance(last, int) or _own_line(src, path)):  # `- caption：一` became the string "caption：一"
        out.append(_at(src, path, m.end() - 1, *_colon(m.group(2)), char=FW_COLON))
    if value[:1] in "“‘" and value[-1:] in "”’" and _char_at(src, path) == value[:1]:
        out.append(_at(src, path, 0, _("the full-width quotes {quotes} are part of the text").format(
            quotes=value[0] + value[-1]), _("quote with ASCII \" or ' to quote; keep them if the text should show them"),
            WARNING))


def _own_line(src: Source, path: tuple) -> bool:
    """A plain value on a line below its key (`defaults:` then `  seed：7`): meant as a field."""
    return bool(path) and tuple(path) in src.key_positions and src.pos(path)[0] > src.key_pos(path)[0] \
        and tuple(path) not in src.block_scalars


def _flow_numbers(src: Source, value: list, path: tuple, out: list[Diagnostic]) -> None:
    """`size: [1024，1024]` is a list of one string."""
    for i, item in enumerate(value):
        if isinstance(item, str) and FW_COMMA in item and all(_NUMBER.match(p) for p in item.split(FW_COMMA)):
            out.append(_at(src, path + (i,), None, *_comma(), char=FW_COMMA))


def _char_at(src: Source, path: tuple) -> str:
    line, col = src.pos(path)
    lines = src.text.splitlines()
    return _char(lines, line - 1, col - 1)
