"""Errors and diagnostics. The library raises these; only cli.py prints them and exits.

Exit codes (cli.py maps): 0 ok, 1 build failed (BuildError and its kin), 2 bad input
(SpecError, UsageError).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from kolorsc.i18n import _

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Diagnostic:
    """One problem in one file, pointing at the line that caused it."""

    file: str
    line: int | None  # 1-based; None when the problem has no position (unreadable file)
    col: int | None  # 1-based
    path: str  # field path, e.g. "scenes[3].seed"; "" for the whole document
    message: str
    hint: str | None = None  # what to do next, e.g. "did you mean 'seed'?"
    severity: str = ERROR  # WARNING: reported, but the file is still valid

    @property
    def is_error(self) -> bool:
        return self.severity != WARNING

    def format(self) -> str:
        """One line, always: a key or value holding a line break cannot split it."""
        where = one_line(self.file)
        if self.line is not None:
            where += f":{self.line}:{self.col or 1}"
        label = _("warning: ") if not self.is_error else ""
        text = f"{where}: {label}{one_line(self.path) + ': ' if self.path else ''}{one_line(self.message)}"
        if self.hint:
            text += _(" ({hint})").format(hint=one_line(self.hint))
        return text

    def to_json(self, file: str | None = None) -> dict:
        """The one JSON shape of a diagnostic, in every command's --json output. `file`: the
        name to show instead of `self.file` (the CLI passes it relative to the project root)."""
        return {"file": self.file if file is None else file, "line": self.line, "col": self.col,
                "path": self.path, "severity": self.severity, "message": self.message, "hint": self.hint}



def one_line(text: str) -> str:
    """`text` with control characters and line/paragraph separators escaped (\\n, \\x00,
    \\u2028), so whatever a file holds, a message about it stays on one line."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    if unicodedata.category(ch) not in ("Cc", "Zl", "Zp", "Cf", "Cs", "Co", "Cn"):
        return ch  # printable in a terminal after all (e.g. some spaces)
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if ch in named:
        return named[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


class KolorscError(Exception):
    """Base class of every error the library raises on purpose."""

    exit_code = 1


class SpecError(KolorscError):
    """A story or style file is invalid. Carries every diagnostic of the file(s)."""

    exit_code = 2

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = list(diagnostics)
        super().__init__("\n".join(d.format() for d in self.diagnostics))


class UsageError(KolorscError):
    """Bad arguments or environment given by the user (not a bad file)."""

    exit_code = 2


class InputError(UsageError):
    """A file or setting the story names is missing or unusable (a LoRA file, a dataset folder
    without images, an unsupported Data-Juicer operator). Bad input, so exit 2 even when a
    build stage is the one that finds it."""


class BuildError(KolorscError):
    """A build step failed."""

    exit_code = 1


class ModelMissingError(BuildError):
    """Model files are absent or incomplete. `missing` lists them; the message says how to get them."""

    def __init__(self, message: str, missing: list[str] | None = None):
        self.missing = list(missing or [])
        super().__init__(message)


class EngineError(BuildError):
    """The rendering engine failed (no CUDA, out of memory, LoRA does not fit...)."""


class TrainingError(BuildError):
    """Dataset preparation or LoRA training failed."""


class MissingPackageError(UsageError):
    """An optional package (the `models` extra) is not installed. The message names the
    command's need and the pip line that installs it."""


class ModelFileError(EngineError):
    """A model or LoRA file exists but cannot be read: the message names the file, what is
    wrong with it and what to do."""
