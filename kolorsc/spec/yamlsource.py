"""Read a YAML file into plain JSON data plus the position of every value.

PyYAML's `compose` gives a node tree whose nodes carry start marks; we convert it to
plain data ourselves (instead of `safe_load`) so that we can
- remember where every value and every mapping key starts (errors point at the line),
- reject duplicate keys (YAML silently keeps the last one),
- bound alias expansion and nesting (a "billion laughs" file must not eat the machine),
- refuse anything that is not JSON data (timestamps stay text, other tags are refused).

Paths are tuples of keys and list indexes, e.g. ("scenes", 3, "seed").
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kolorsc.errors import Diagnostic
from kolorsc.i18n import _

MAX_BYTES = 1_000_000  # a story is a few KB; anything near this is a mistake, not a story
MAX_NODES = 50_000  # values after alias expansion
MAX_DEPTH = 64

try:  # libyaml is ~10x faster; the pure-Python loader behaves the same
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"

Path_ = tuple  # a JSON path: tuple of str | int


@dataclass
class Source:
    """A parsed YAML document: data, positions, and the name to show in messages."""

    name: str  # the file as the user named it (shown in diagnostics)
    data: object
    positions: dict = field(default_factory=dict)  # path -> (line, col) of the value, 1-based
    key_positions: dict = field(default_factory=dict)  # path -> (line, col) of the mapping key
    block_scalars: set = field(default_factory=set)  # paths of `|` / `>` scalars (text starts a line below)
    text: str = ""
    prefix: tuple = ()  # when this is a view of part of a document: the part's path, for messages

    def text_start(self, path: Path_) -> tuple[int, int]:
        """Where the text of the string at `path` starts: for `|`/`>` block scalars that is the
        first non-blank line below the indicator (template line numbers count from there)."""
        line, col = self.pos(path)
        if tuple(path) not in self.block_scalars:
            quoted = 1 if self.text and _char_at(self.text, line, col) in "\"'" else 0
            return (line, col + quoted)
        lines = self.text.splitlines()
        for n in range(line, len(lines)):  # lines[n] is line n+1
            stripped = lines[n].lstrip(" ")
            if stripped:
                return (n + 1, len(lines[n]) - len(stripped) + 1)
        return (line, col)

    def pos(self, path: Path_) -> tuple[int, int] | tuple[None, None]:
        """Position of the value at `path`, or of its nearest ancestor we know."""
        path = tuple(path)
        while True:
            if path in self.positions:
                return self.positions[path]
            if not path:
                return (1, 1)
            path = path[:-1]

    def key_pos(self, path: Path_) -> tuple[int, int]:
        path = tuple(path)
        return self.key_positions.get(path) or self.pos(path)

    def diag(self, path: Path_, message: str, hint: str | None = None, *, at_key: bool = False) -> Diagnostic:
        line, col = self.key_pos(path) if at_key else self.pos(path)
        return Diagnostic(self.name, line, col, format_path(self.prefix + tuple(path)), message, hint)

    def part(self, prefix: tuple) -> "Source":
        """A view of the value at `prefix` whose positions still point into this file."""
        n = len(prefix)
        data = self.data
        for key in prefix:
            data = data[key]
        return Source(
            name=self.name,
            data=data,
            positions={p[n:]: v for p, v in self.positions.items() if p[:n] == prefix},
            key_positions={p[n:]: v for p, v in self.key_positions.items() if p[:n] == prefix},
            block_scalars={p[n:] for p in self.block_scalars if p[:n] == prefix},
            text=self.text,
            prefix=self.prefix + tuple(prefix),
        )


class _Problem(Exception):
    def __init__(self, diagnostic: Diagnostic):
        self.diagnostic = diagnostic


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def quote(text) -> str:
    """A name or value from the file, quoted and escaped so a message stays on one line."""
    return json.dumps(str(text), ensure_ascii=False)


def format_path(path: Path_) -> str:
    """("scenes", 3, "seed") -> "scenes[3].seed"; odd keys are quoted: characters["a b"]."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _NAME.fullmatch(str(part)):
            out += ("." if out else "") + str(part)
        else:
            out += f"[{quote(part)}]"
    return out


_PARSED: dict = {}  # (name, bytes) -> Source: check reads a story for its id, lint and load


def read_source(path: Path, name: str | None = None) -> Source:
    """Read and parse `path`. Raises SpecError-ready `Diagnostic`s through `SourceError`.
    The same bytes under the same name are parsed once (reading a story is cheap, parsing it
    is not; keyed by content, not by mtime, which is coarser than two quick edits). Callers
    never modify a Source."""
    name = name if name is not None else str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise SourceError(
                Diagnostic(name, None, None, "", _("file is too large ({size} bytes; the limit is {limit})").format(
                    size=f"{size:,}", limit=f"{MAX_BYTES:,}"), _("a story is a few kilobytes; is this the right file?"))
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SourceError(Diagnostic(name, None, None, "", _("no such file"))) from None
    except IsADirectoryError:
        raise SourceError(Diagnostic(name, None, None, "", _("is a directory, not a file"))) from None
    except OSError as exc:
        raise SourceError(Diagnostic(name, None, None, "", _("cannot read file: {reason}").format(
            reason=exc.strerror or exc))) from None
    key = (name, raw)
    if key not in _PARSED:
        if len(_PARSED) > 512:
            _PARSED.clear()
        _PARSED[key] = parse_bytes(raw, name)  # a SourceError is raised, never kept
    return _PARSED[key]


class SourceError(Exception):
    """The file could not be turned into data at all (one diagnostic)."""

    def __init__(self, diagnostic: Diagnostic):
        self.diagnostic = diagnostic
        super().__init__(diagnostic.format())


def parse_bytes(raw: bytes, name: str) -> Source:
    if len(raw) > MAX_BYTES:
        raise SourceError(Diagnostic(name, None, None, "", _("file is too large ({size} bytes; the limit is {limit})").format(size=f"{len(raw):,}", limit=f"{MAX_BYTES:,}")))
    try:
        text = raw.decode("utf-8-sig")  # tolerate a BOM, which some Windows editors write
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SourceError(
            Diagnostic(name, line, col, "", _("not valid UTF-8 (byte 0x{byte})").format(byte=f"{raw[exc.start]:02x}"), _("save the file as UTF-8"))
        ) from None
    return parse_text(text, name)


def parse_text(text: str, name: str) -> Source:
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise SourceError(Diagnostic(name, line, 1, "", _("contains a NUL character: this is not a text file")))
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        from kolorsc.spec.yamlhelp import explain  # full-width punctuation, tabs, indentation, quotes

        better = explain(text, exc)
        if better is not None:
            line, col, message, hint = better
            raise SourceError(Diagnostic(name, line, col, "", _("invalid YAML: {problem}").format(problem=message), hint)) from None
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        hint = _template_hint(text, line)
        what = exc.problem or exc.context or "cannot parse"
        cm = exc.context_mark
        if exc.context and cm is not None and mark is not None and cm.line != mark.line:
            # e.g. an unclosed quote: the problem is found at the end, the cause is where it began
            what += _(" ({context} at line {line}, column {col})").format(context=exc.context, line=cm.line + 1,
                                                                        col=cm.column + 1)
        raise SourceError(Diagnostic(name, line, col, "", _("invalid YAML: {problem}").format(problem=what), hint)) from None
    except yaml.reader.ReaderError:  # control characters: no mark, only an offset
        # libyaml reports a byte offset; find the character ourselves with PyYAML's own rule
        bad = yaml.reader.Reader.NON_PRINTABLE.search(text)
        at = bad.start() if bad else 0
        line = text.count("\n", 0, at) + 1
        col = at - (text.rfind("\n", 0, at) + 1) + 1
        char = f"U+{ord(bad.group()):04X}" if bad else "(unknown)"
        raise SourceError(Diagnostic(name, line, col, "", _("invalid YAML: control character {char} is not allowed").format(char=char),
                                     _("remove it or write it as an escape in a double-quoted string"))) from None
    except yaml.YAMLError as exc:
        raise SourceError(Diagnostic(name, None, None, "", _("invalid YAML: {problem}").format(problem=_one_line(str(exc))))) from None
    except RecursionError:
        raise SourceError(Diagnostic(name, None, None, "", _("invalid YAML: nested too deeply"))) from None
    if node is None:
        raise SourceError(Diagnostic(name, 1, 1, "", _("file is empty"), _("start from `kolorsc init NAME`")))
    src = Source(name=name, data=None, text=text)
    counter = [0]
    try:
        src.data = _convert(node, (), src, counter, 0)
    except _Problem as p:
        raise SourceError(p.diagnostic) from None
    return src


_UNQUOTED_TEMPLATE = re.compile(r"(:|^\s*-)\s+\{[{%]")


def _template_hint(text: str, line: int | None) -> str | None:
    """The classic mistake: `prompt: {{ girl }}...` unquoted is a YAML mapping, not text."""
    lines = text.splitlines()
    for n in (line, (line or 0) - 1):
        if n and 0 < n <= len(lines) and _UNQUOTED_TEMPLATE.search(lines[n - 1]):
            return _('a value that starts with {{ or {% must be quoted: prompt: "{{ girl }}，..."')
    return None


def _char_at(text: str, line: int, col: int) -> str:
    lines = text.splitlines()
    if 0 < line <= len(lines) and 0 < col <= len(lines[line - 1]):
        return lines[line - 1][col - 1]
    return ""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _mark(node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _problem(src: Source, node, path, message: str, hint: str | None = None) -> _Problem:
    line, col = _mark(node)
    return _Problem(Diagnostic(src.name, line, col, format_path(path), message, hint))


def _convert(node, path: tuple, src: Source, counter: list, depth: int):
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise _problem(src, node, path, _("too many values (more than {limit} after expanding aliases)").format(limit=f"{MAX_NODES:,}"),
                       _("YAML aliases (*name) must not multiply the document"))
    if depth > MAX_DEPTH:
        raise _problem(src, node, path, _("nested more than {limit} levels deep").format(limit=MAX_DEPTH))
    src.positions.setdefault(path, _mark(node))
    if isinstance(node, yaml.ScalarNode):
        if node.style in ("|", ">"):
            src.block_scalars.add(path)
        return _scalar(node, path, src)
    if isinstance(node, yaml.SequenceNode):
        if node.tag != _SEQ:
            raise _problem(src, node, path, _("unsupported YAML tag {tag}").format(tag=node.tag))
        return [_convert(child, path + (i,), src, counter, depth + 1) for i, child in enumerate(node.value)]
    if isinstance(node, yaml.MappingNode):
        if node.tag != _MAP:
            raise _problem(src, node, path, _("unsupported YAML tag {tag}").format(tag=node.tag))
        out: dict = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                raise _problem(src, key_node, path, _("YAML merge keys (<<) are not supported"),
                               _("write the fields out; use defaults: for shared settings"))
            if not isinstance(key_node, yaml.ScalarNode):
                raise _problem(src, key_node, path, _("a key must be a plain name, not a list or mapping"),
                               _template_hint(src.text, key_node.start_mark.line + 1))
            # The key's text as written: `no:` or `1:` mean the names "no" and "1" here.
            key = key_node.value
            if key in out:
                first = src.key_positions.get(path + (key,))
                where = _(" (first at line {line})").format(line=first[0]) if first else ""
                raise _problem(src, key_node, path + (key,), _("duplicate key {key}{where}").format(key=quote(key), where=where),
                               _("YAML would silently keep only the last one"))
            src.key_positions[path + (key,)] = _mark(key_node)
            out[key] = _convert(value_node, path + (key,), src, counter, depth + 1)
        return out
    raise _problem(src, node, path, _("unsupported YAML node"))  # pragma: no cover


def _scalar(node, path: tuple, src: Source):
    tag = node.tag
    text = node.value
    if tag == _STR or tag == _TIMESTAMP:
        return text  # dates stay text: nothing in a story is a date
    if tag == _NULL:
        return None
    if tag == _BOOL:
        return text.lower() in ("yes", "true", "on", "y")
    if tag == _INT:
        return _construct(node, path, src)
    if tag == _FLOAT:
        value = _construct(node, path, src)
        if not math.isfinite(value):
            raise _problem(src, node, path, _("expected a finite number, got {value}").format(value=text))
        return value
    raise _problem(src, node, path, _("unsupported YAML tag {tag}").format(tag=tag), _("write plain text, numbers, lists and mappings"))


_constructor = yaml.SafeLoader("")  # only its construct_yaml_int/float methods are used


def _construct(node, path, src):
    try:
        if node.tag == _INT:
            return _constructor.construct_yaml_int(node)
        return _constructor.construct_yaml_float(node)
    except (ValueError, yaml.YAMLError):
        raise _problem(src, node, path, _("cannot read number {value}").format(value=repr(node.value))) from None
