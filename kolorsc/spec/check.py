"""Check a collection: expand paths into story files, load and compile each, report all problems.

A directory is a collection: every *.yaml / *.yml below it, sorted, except files inside a
`styles/` folder (styles are checked through the stories that use them, or directly when
named on the command line), hidden folders (.git, .venv...) and build/ output.
A file named on the command line is checked as a style when its folder is called `styles`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kolorsc.errors import Diagnostic, SpecError
from kolorsc.i18n import _, ngettext

STORY_SUFFIXES = (".yaml", ".yml")
SKIP_DIRS = {"styles", "build", "node_modules", "__pycache__"}


@dataclass(frozen=True)
class FileReport:
    path: Path  # as given / found (relative stays relative)
    kind: str  # "story" or "style"
    diagnostics: tuple[Diagnostic, ...] = ()
    warnings: tuple[Diagnostic, ...] = ()  # printed, but the file is still valid

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)


@dataclass(frozen=True)
class CheckReport:
    files: tuple[FileReport, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.files)

    @property
    def invalid(self) -> int:
        return sum(1 for f in self.files if not f.ok)

    @property
    def problems(self) -> int:
        return sum(1 for d in self.diagnostics if d.is_error)

    @property
    def warnings(self) -> int:
        return sum(1 for d in self.diagnostics if not d.is_error)

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return [d for f in self.files for d in (*f.diagnostics, *f.warnings)]

    def to_json(self) -> dict:
        """`kolorsc check --json`: every file with its status, every diagnostic in the one shape."""
        from kolorsc.spec.jsonout import diagnostic_json, relative

        warned = sum(len(f.warnings) for f in self.files)
        return {
            "ok": self.ok,
            "files": [{"file": relative(f.path), "kind": f.kind, "ok": f.ok} for f in self.files],
            "diagnostics": [diagnostic_json(d) for d in self.diagnostics],
            "counts": {"files": len(self.files), "invalid": self.invalid, "problems": self.problems,
                       "warnings": warned},
        }

    def summary(self) -> str:
        n = len(self.files)
        warned = self.warnings
        text = (ngettext("{n} file checked", "{n} files checked", n).format(n=n)
                + _(", {n} invalid").format(n=self.invalid)
                + ngettext(", {n} problem", ", {n} problems", self.problems).format(n=self.problems))
        if warned:
            text += ngettext(", {n} warning", ", {n} warnings", warned).format(n=warned)
        return text


def _hidden(part: str) -> bool:
    return part.startswith(".") and part not in (".", "..")


def iter_story_files(paths: Sequence[Path]) -> list[Path]:
    """Expand files and directories into story files: sorted, deterministic, no duplicates.
    A path that does not exist is returned as is (checking it reports "no such file")."""
    out: list[Path] = []
    seen: set[Path] = set()
    for given in paths:
        given = Path(given)
        if given.is_dir():
            found = []
            for suffix in STORY_SUFFIXES:
                for p in given.rglob(f"*{suffix}"):
                    rel = p.relative_to(given).parts
                    if any(_hidden(part) or part in SKIP_DIRS for part in rel[:-1]) or _hidden(rel[-1]):
                        continue
                    if p.is_file():
                        found.append(p)
            candidates = sorted(found, key=lambda p: p.as_posix())
        else:
            candidates = [given]
        for p in candidates:
            key = p.absolute()
            if key not in seen:
                seen.add(key)
                out.append(p)
    return out


def is_style_file(path: Path) -> bool:
    return Path(path).absolute().parent.name == "styles"


def check_file(path: Path, inputs: bool = True) -> FileReport:
    """Load (and for stories, compile) one file; every problem becomes a diagnostic. With
    `inputs` (the default), the local files its style names must exist too
    (kolorsc/spec/inputs.py): a build with the real engine would certainly fail without them."""
    from kolorsc.spec.inputs import input_problems
    from kolorsc.spec.loader import load_story, load_style
    from kolorsc.spec.templates import render_scenes
    from kolorsc.spec.tokens import truncation_warnings

    path = Path(path)
    kind = "style" if is_style_file(path) else "story"
    try:
        if kind == "style":
            style = load_style(path)
            rendered = None
        else:
            story = load_story(path)
            rendered = render_scenes(story)  # every template error counts, like compile_story's
            style = story.style
    except SpecError as exc:
        return FileReport(path, kind, tuple(exc.diagnostics))
    problems = input_problems(style, path) if inputs else []
    warnings = _lint_warnings(path) + ([*truncation_warnings(story, rendered), *_tofu(path, story, rendered),
                                        *_placeholder_team(path, story)] if rendered is not None else [])
    return FileReport(path, kind, tuple(problems), warnings=tuple(warnings))


def placeholder_team_problem(story) -> Diagnostic | None:
    """`team: my-team` is what `kolorsc init` writes: the bundle would carry it as the team's name."""
    from kolorsc.errors import WARNING
    from kolorsc.spec.scaffold import DEFAULT_TEAM

    if story.team != DEFAULT_TEAM:
        return None
    loc = story.locs.get("team")
    return Diagnostic(loc.file if loc else str(story.path), loc.line if loc else None, loc.col if loc else None,
                      "team", _("the team is still the placeholder \"{team}\": the bundle would be named "
                                "{bundle}.zip").format(team=DEFAULT_TEAM, bundle=story.bundle_name),
                      _("set team: to your team's registered name before a real build"),
                      WARNING)


def _placeholder_team(path: Path, story) -> list[Diagnostic]:
    problem = placeholder_team_problem(story)
    return [problem] if problem else []


def _lint_warnings(path: Path) -> list[Diagnostic]:
    """Full-width quotes that end up in the text (kolorsc/spec/yamlhelp.py): worth a look, not wrong."""
    from kolorsc.errors import WARNING
    from kolorsc.spec.yamlhelp import lint
    from kolorsc.spec.yamlsource import read_source

    return [d for d in lint(read_source(path, str(path))) if d.severity == WARNING]


def _tofu(path: Path, story, rendered) -> list[Diagnostic]:
    """Characters of the drawn text (title, team, captions, prompts) that no font has."""
    from kolorsc.fonts import tofu_warnings

    fields = [("title", story.title), ("team", story.team)]
    for r in rendered:
        n = r.scene.index
        fields += [(f"scenes[{n}].caption", r.scene.caption), (f"scenes[{n}].prompt", r.prompt),
                   (f"scenes[{n}].negative", r.negative)]
    fields += [("defaults.negative", story.defaults.negative), ("style", story.style.trigger + story.style.negative)]
    return tofu_warnings(str(path), path.read_text(encoding="utf-8"), fields)


def check_paths(paths: Sequence[Path], inputs: bool = True) -> CheckReport:
    """Check every story (and named style) under `paths`, and that no two stories of a
    collection share an id (kolorsc/spec/ids.py). An empty collection is a problem too:
    `kolorsc check stories/` on a folder without stories should not pass silently.
    `inputs=False` skips the local-file checks (`kolorsc check --no-inputs`)."""
    from kolorsc.spec.ids import same_id_problems

    files = iter_story_files(paths)
    reports = [check_file(p, inputs) for p in files]
    clashes = same_id_problems(files, is_style_file)
    reports = [FileReport(r.path, r.kind, r.diagnostics + tuple(clashes[r.path]), r.warnings) if r.path in clashes
               else r for r in reports]
    for given in paths:
        given = Path(given)
        if given.is_dir() and not any(_under(p, given) for p in files):
            reports.append(FileReport(given, "story", (Diagnostic(str(given), None, None, "", _("no story files (*.yaml) here")),)))
    return CheckReport(tuple(reports))


def _under(path: Path, folder: Path) -> bool:
    try:
        path.absolute().relative_to(folder.absolute())
        return True
    except ValueError:
        return False
