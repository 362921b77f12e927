"""Machine-readable output: one JSON shape for diagnostics, paths relative to the project root.

    relative(path)          "stories/x.yaml" for any spelling of that file (absolute, ../, cwd-relative)
    diagnostic_json(d)      {file, line, col, path, severity, message, hint}
    error_json(exc)         what `--json` prints on stdout when a command fails on bad input
    github_annotation(d)    `::error file=…,line=…,col=…::…` for `kolorsc check --format github`

Every command's `--json` goes through these, so a tool reading kolorsc's output sees the same
keys everywhere and file names that do not depend on where kolorsc was started.
"""

from __future__ import annotations

from pathlib import Path

from kolorsc.errors import Diagnostic, KolorscError, SpecError


def relative(path: str | Path | None) -> str | None:
    """`path` relative to its project root (kolorsc.spec.find_project_root), with / separators;
    as given when it is not a path to something inside a project."""
    if path is None:
        return None
    from kolorsc.spec.loader import find_project_root

    p = Path(path).absolute()
    root = find_project_root(p)
    try:
        return p.resolve().relative_to(root).as_posix()
    except ValueError:
        return Path(path).as_posix()


def diagnostic_json(d: Diagnostic) -> dict:
    return d.to_json(relative(d.file) if d.file else d.file)


def error_json(exc: BaseException) -> dict:
    """{"ok": false, "error": {...}, "diagnostics": [...]}: the failure of a --json command."""
    diagnostics = [diagnostic_json(d) for d in exc.diagnostics] if isinstance(exc, SpecError) else []
    code = exc.exit_code if isinstance(exc, KolorscError) else 1
    message = f"{len(diagnostics)} problem(s)" if diagnostics else str(exc)
    return {"ok": False, "exit_code": code, "error": {"type": type(exc).__name__, "message": message},
            "diagnostics": diagnostics}


def _escape_data(text: str) -> str:
    # GitHub Actions workflow commands: %, CR and LF escaped in the message ...
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    # ... and in property values also : and ,
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotation(d: Diagnostic) -> str:
    """A GitHub Actions annotation: the pull request shows the diagnostic on its line."""
    props = [f"file={_escape_property(relative(d.file) or d.file)}"]
    if d.line is not None:
        props += [f"line={d.line}", f"col={d.col or 1}"]
    props.append(f"title={_escape_property('kolorsc check' + (': ' + d.path if d.path else ''))}")
    message = d.message + (f" ({d.hint})" if d.hint else "")
    return f"::{'warning' if d.severity == 'warning' else 'error'} {','.join(props)}::{_escape_data(message)}"
