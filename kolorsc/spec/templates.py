"""Scene and caption templates: checked, then rendered in the one sandbox (kolorsc.spec.sandbox).

This is the part of prompt compilation that can fail, so it lives with the spec: `kolorsc
check` renders every template (and so reports every template error) without building
panels. `kolorsc.prompts.compile_story` turns the rendered text into Panels.

What a scene template sees: each character by key ({{ girl }} renders its look; .look,
.name, .key), `style` (renders its trigger; .trigger, .negative, .name, .id), `story`
(renders its title; .title, .id, .team) and `scene` (renders its caption; .caption, .shot,
.index 1..8). A dataset caption template sees `stem`, `index` and `sidecar`, under the same
rules and budget.

Every template is first checked without running it (unknown names and fields, forbidden
tags, nesting), then rendered within a Budget shared by all templates of the file.
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass, fields

from kolorsc.errors import Diagnostic, SpecError
from kolorsc.i18n import N_, _
from kolorsc.spec.model import Loc, Scene, Story, Style
from kolorsc.spec.sandbox import MAX_TEXT, TEMPLATE_TOKENS, Budget, BudgetError, count_tokens, template_environment

__all__ = ["MAX_TEXT", "Budget", "RenderedScene", "caption_template_problems", "render_caption",
           "render_scenes", "template_environment"]

MAX_LOOP_NESTING = 2
MAX_ASSIGNMENTS = 10  # with loops, bounds how far a value can double itself
_TEMPLATE_FILE = "<kolorsc-template>"
_BUDGET_HINT = N_("Kolors reads 256 tokens of a prompt: write long text once, not in loops or repeated")
_WHERE = {"prompt": N_("in the prompt of scene {n}"), "negative": N_("in the negative of scene {n}")}
_FORBIDDEN_TAGS = {
    "Macro": "{% macro %}",
    "CallBlock": "{% call %}",
    "Include": "{% include %}",
    "Extends": "{% extends %}",
    "Import": "{% import %}",
    "FromImport": "{% from ... import %}",
    "Block": "{% block %}",
}


@dataclass(frozen=True)
class CharacterView:
    key: str
    look: str
    name: str

    def __str__(self) -> str:
        return self.look

    kolorsc_text = __str__  # how the sandbox outputs it (sandbox.to_text)


@dataclass(frozen=True)
class StyleView:
    id: str
    name: str
    trigger: str
    negative: str

    def __str__(self) -> str:
        return self.trigger

    kolorsc_text = __str__


@dataclass(frozen=True)
class StoryView:
    id: str
    title: str
    team: str

    def __str__(self) -> str:
        return self.title

    kolorsc_text = __str__


@dataclass(frozen=True)
class SceneView:
    index: int  # 1..8
    caption: str
    shot: str

    def __str__(self) -> str:
        return self.caption

    kolorsc_text = __str__


_VIEW_FIELDS = {cls: tuple(f.name for f in fields(cls)) for cls in (CharacterView, StyleView, StoryView, SceneView)}

_ENV = None


def _env():
    global _ENV
    if _ENV is None:
        _ENV = template_environment()
    return _ENV


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a template: what, on which line of the template, what to do."""

    message: str
    lineno: int | None = None  # 1-based line inside the template
    hint: str | None = None


@dataclass(frozen=True)
class Names:
    """The names a template may use and how to explain a wrong one."""

    values: dict  # name -> value
    kind: str  # N_("prompt templates"), N_("caption templates"): for messages, translated where used
    unknown_hint: str  # when no close name exists


# --- scenes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedScene:
    """The raw text a scene's templates rendered to (before normalisation)."""

    scene: Scene
    prompt: str
    negative: str  # "" when the scene has no negative


def render_scenes(story: Story, budget: Budget | None = None) -> list[RenderedScene]:
    """Render every scene's prompt and negative, all within one Budget. Raises SpecError with
    a diagnostic per template problem, each naming the scene and the line in the story file."""
    budget = budget or Budget()
    context = _context(story)
    diags: list[Diagnostic] = []
    out: list[RenderedScene] = []
    for scene in story.scenes:
        values = dict(context, scene=SceneView(scene.index + 1, scene.caption, scene.shot or ""))
        characters = ", ".join(k for k in values if k not in ("style", "story", "scene")) or _("none")
        names = Names(values, N_("prompt templates"), _("characters: {names}").format(names=characters))
        prompt = _scene_template(scene.prompt, names, budget, scene, "prompt", scene.prompt_loc, diags)
        negative = ""
        if scene.negative:
            negative = _scene_template(scene.negative, names, budget, scene, "negative", scene.negative_loc or scene.loc, diags)
        if prompt is not None and negative is not None:
            out.append(RenderedScene(scene, prompt, negative))
    if diags:
        raise SpecError(diags)
    return out


def _context(story: Story) -> dict:
    ctx: dict = {
        key: CharacterView(key=c.key, look=c.look, name=c.name or c.key) for key, c in story.characters.items()
    }
    style: Style = story.style
    ctx["style"] = StyleView(style.id, style.name, style.trigger, style.negative)
    ctx["story"] = StoryView(story.id, story.title, story.team)
    return ctx


def _scene_template(source: str, names: Names, budget: Budget, scene: Scene, what: str, loc: Loc,
                    diags: list[Diagnostic]) -> str | None:
    text, problems = render_template(source, names, budget)
    where = _(_WHERE.get(what, "in the {what} of scene {n}")).format(what=what, n=scene.index + 1)
    for p in problems:
        line = loc.line
        if p.lineno and p.lineno > 1:  # only block scalars (| or >) keep line breaks: same indent
            line = loc.line + p.lineno - 1
        diags.append(Diagnostic(loc.file, line, loc.col, f"scenes[{scene.index}].{what}",
                                 _("{message} {where}").format(message=p.message, where=where), p.hint))
    return text


# --- one template -------------------------------------------------------------------------


def render_template(source: str, names: Names, budget: Budget) -> tuple[str | None, list[Problem]]:
    """(text, []) or (None, problems): check the template without running it, then render it
    in the sandbox within `budget`. Never raises for anything the template holds."""
    if len(source) > MAX_TEXT:
        return None, [Problem(_("the template is {n} characters long (limit {limit})").format(
            n=f"{len(source):,}", limit=f"{MAX_TEXT:,}"))]
    problems: list[Problem] = []
    simple = _render_simple(source, names, problems)
    if simple is not _NOT_SIMPLE:
        return simple, problems
    tokens = count_tokens(_env(), source, TEMPLATE_TOKENS)
    if tokens > TEMPLATE_TOKENS:
        return None, [Problem(_("template over budget: more than {limit} pieces of template code (names, "
                                "operators, tags) in one template").format(limit=TEMPLATE_TOKENS),
                              None, _(_BUDGET_HINT))]
    try:
        budget.charge_tokens(tokens)
    except BudgetError as exc:
        return None, [Problem(_("template over budget: {problem}").format(problem=exc), None, _(_BUDGET_HINT))]
    ast = _parse(source, problems)
    if ast is None or not _static_check(ast, names, problems):
        return None, problems
    text = _run(ast, names.values, budget, problems)
    control = _CONTROL.search(text) if text is not None else None
    if control:  # e.g. {{ '\\x00' }}: a NUL would break the PNG text chunks that carry the prompt
        problems.append(Problem(_("the template renders a control character (U+{code})").format(
            code=f"{ord(control.group()):04X}"), None,
            _("text may hold tabs and line breaks, no other control character")))
        return None, problems
    return (text, problems) if text is not None else (None, problems)


def _parse(source: str, problems: list[Problem]):
    from jinja2 import TemplateSyntaxError

    try:
        return _env().parse(source)
    except TemplateSyntaxError as exc:
        problems.append(Problem(_("template syntax error: {problem}").format(problem=exc.message), exc.lineno))
    except (RecursionError, MemoryError):
        problems.append(Problem(_("template syntax error: nested too deeply")))
    return None


def _static_check(ast, names: Names, problems: list[Problem]) -> bool:
    """Everything that can be known without running the template. False when it must not run."""
    from jinja2 import TemplateSyntaxError, meta, nodes

    before = len(problems)
    try:
        undeclared = meta.find_undeclared_variables(ast)  # compiles: unknown filters show up here
    except TemplateSyntaxError as exc:
        problems.append(Problem(_("template error: {problem}").format(problem=exc.message), exc.lineno))
        return False
    except (RecursionError, MemoryError):
        problems.append(Problem(_("template error: nested too deeply")))
        return False
    for name in sorted(undeclared):
        node = next((n for n in ast.find_all(nodes.Name) if n.name == name), None)
        _check_name(name, names, node.lineno if node else None, problems)
    for node in ast.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name in names.values:
            _check_attr(node.node.name, node.attr, names, node.lineno, problems)
    for kind, tag in _FORBIDDEN_TAGS.items():
        for node in ast.find_all(getattr(nodes, kind)):
            problems.append(Problem(_("{tag} is not allowed in {kind}").format(tag=tag, kind=_(names.kind)), node.lineno))
    for node in ast.find_all(nodes.For):
        if node.recursive:
            problems.append(Problem(_("recursive loops are not allowed in {kind}").format(kind=_(names.kind)), node.lineno))
    assignments = sum(1 for _ in ast.find_all((nodes.Assign, nodes.AssignBlock, nodes.With)))
    if assignments > MAX_ASSIGNMENTS:
        problems.append(Problem(_("more than {n} {{% set %}}/{{% with %}} in one template").format(n=MAX_ASSIGNMENTS)))
    if _loop_depth(ast, nodes) > MAX_LOOP_NESTING:
        problems.append(Problem(_("loops nested more than {n} deep are not allowed in {kind}").format(
            n=MAX_LOOP_NESTING, kind=_(names.kind))))
    return len(problems) == before


def _run(ast, values: dict, budget: Budget, problems: list[Problem]) -> str | None:
    from jinja2.exceptions import SecurityError, TemplateError, UndefinedError

    from kolorsc.spec import sandbox

    try:
        return sandbox.render(_env(), ast, values, budget, _TEMPLATE_FILE)
    except sandbox.BudgetError as exc:
        problems.append(Problem(_("template over budget: {problem}").format(problem=str(exc).rstrip(".")),
                                _template_line(exc), _(_BUDGET_HINT)))
    except SecurityError as exc:
        problems.append(Problem(_("template not allowed: {problem}").format(problem=str(exc).rstrip(".")),
                                _template_line(exc), _("templates may only use the story's names and plain text")))
    except UndefinedError as exc:
        problems.append(Problem(_("template error: {problem}").format(problem=exc.message), _template_line(exc)))
    except TemplateError as exc:
        problems.append(Problem(_("template error: {problem}").format(problem=exc), _template_line(exc)))
    except RecursionError:
        problems.append(Problem(_("template error: recursion too deep")))
    except (ArithmeticError, TypeError, ValueError, LookupError, AttributeError, MemoryError, SyntaxError) as exc:
        problems.append(Problem(_("template error: {problem}").format(problem=f"{type(exc).__name__}: {exc}"),
                                _template_line(exc)))
    return None


def _check_name(name: str, names: Names, lineno, problems: list[Problem]) -> bool:
    if name in names.values or name in _env().globals:
        return True
    close = difflib.get_close_matches(name, list(names.values), n=1)
    hint = _("did you mean \"{name}\"?").format(name=close[0]) if close else names.unknown_hint
    problems.append(Problem(_("undefined name \"{name}\"").format(name=name), lineno, _named_hint(name, names.values) or hint))
    return False


def _named_hint(name: str, values: dict) -> str | None:
    """{{ 小雨 }}: the author wrote the character's name, not its key (kolorsc.spec.suggest)."""
    from kolorsc.spec.suggest import character_named

    key = character_named(name, [(k, v.name) for k, v in values.items() if isinstance(v, CharacterView)])
    return _("\"{name}\" is the name of the character \"{key}\": write {{{{ {key} }}}}").format(name=name, key=key) if key else None


def _check_attr(name: str, attr: str, names: Names, lineno, problems: list[Problem]) -> bool:
    allowed = _VIEW_FIELDS.get(type(names.values[name]))
    if allowed is None or attr in allowed:  # not a view (caption values): the sandbox decides
        return True
    close = difflib.get_close_matches(attr, allowed, n=1)
    problems.append(Problem(_("\"{name}\" has no field \"{field}\"").format(name=name, field=attr), lineno,
                            _("did you mean \"{name}\"?").format(name=close[0]) if close
                            else _("fields: {names}").format(names=", ".join(allowed))))
    return False


# Most prompts are text with `{{ name }}` / `{{ name.field }}` and nothing else. Those are
# substituted directly: the same result as Jinja (a test compares both on every example),
# without paying ~1 ms to compile each template, which is most of `kolorsc check`'s time.
# The length of the result is known before it is made, and held to the same limit.
_NOT_SIMPLE = object()
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SIMPLE_EXPR = re.compile(r"\{\{ *([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))? *\}\}")
_JINJA_MARK = re.compile(r"\{[{%#]|[}%#]\}")


def _render_simple(source: str, names: Names, problems: list[Problem]):
    rest = _SIMPLE_EXPR.sub("", source)
    if _JINJA_MARK.search(rest):
        return _NOT_SIMPLE
    found = list(_SIMPLE_EXPR.finditer(source))
    for m in found:
        name, attr = m.group(1), m.group(2)
        value = names.values.get(name)
        if name not in names.values:
            if name in _env().globals:
                return _NOT_SIMPLE  # e.g. {{ range }}: Jinja says what it is
        elif not (type(value) in _VIEW_FIELDS or attr is None and type(value) in (str, int, float)):
            return _NOT_SIMPLE  # e.g. a caption's {{ stem.upper }}: Jinja decides
    ok = True
    for m in found:
        lineno = source.count("\n", 0, m.start()) + 1
        if not _check_name(m.group(1), names, lineno, problems):
            ok = False
        elif m.group(2) and not _check_attr(m.group(1), m.group(2), names, lineno, problems):
            ok = False
    if not ok:
        return None
    values = [_simple_value(names.values, m) for m in found]
    length = len(rest) + sum(map(len, values))
    if length > MAX_TEXT:
        line = next((source.count("\n", 0, m.start()) + 1 for m, v in zip(found, values) if len(v) > MAX_TEXT // 2), None)
        problems.append(Problem(_("template over budget: the text would be {n} characters long (limit {limit})").format(
            n=f"{length:,}", limit=f"{MAX_TEXT:,}"), line, _(_BUDGET_HINT)))
        return None
    it = iter(values)
    text = _SIMPLE_EXPR.sub(lambda m: next(it), source)
    return text[:-1] if text.endswith("\n") else text  # Jinja drops one trailing newline


def _simple_value(values: dict, m: re.Match) -> str:
    obj = values[m.group(1)]
    value = getattr(obj, m.group(2)) if m.group(2) else obj
    return str(value)


def _loop_depth(node, nodes, depth: int = 0) -> int:
    deepest = depth
    for child in node.iter_child_nodes():
        d = depth + 1 if isinstance(child, nodes.For) else depth
        deepest = max(deepest, _loop_depth(child, nodes, d))
    return deepest


def _template_line(exc: BaseException) -> int | None:
    """The template line of an error raised while rendering (Jinja rewrites tracebacks)."""
    line = getattr(exc, "lineno", None)
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _TEMPLATE_FILE:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def referenced_names(source: str) -> set[str]:
    """The top-level names a template reads, by Jinja's static analysis: `{{ girl }}`,
    `{{ girl.look }}`, `{% for x in [girl, prince] %}` all name "girl". A name counts wherever
    it appears, also inside an `{% if %}` branch that is not taken. A template that does not
    parse names nothing (`kolorsc check` reports its syntax error)."""
    return set(_referenced_names(source))


@functools.lru_cache(maxsize=256)
def _referenced_names(source: str) -> frozenset[str]:
    # Planning asks this of every scene three times (inputs, graph, per-character scores):
    # parsing is most of it (~0.8 ms a scene), and the answer depends on the text alone.
    from jinja2 import TemplateSyntaxError, meta

    try:
        return frozenset(meta.find_undeclared_variables(_analysis_environment().parse(source)))
    except TemplateSyntaxError:
        return frozenset()


@functools.lru_cache(maxsize=1)
def _analysis_environment():
    # Parsing runs nothing and changes no state of the environment, so one serves every
    # static analysis (making one wraps every filter: ~1 ms, more than parsing a prompt).
    return template_environment()


# --- dataset captions ---------------------------------------------------------------------

CAPTION_NAMES = ("stem", "index", "sidecar")
_CAPTION_HINT = N_("a caption template sees stem, index and sidecar")
_CAPTION_SAMPLE = {"stem": "image", "index": 0, "sidecar": "a caption"}


def _caption_names(values: dict) -> Names:
    return Names(values, N_("caption templates"), _(_CAPTION_HINT))


def caption_template_problems(source: str) -> list[tuple[str, int | None, str | None]]:
    """Problems of a dataset caption template as (message, template line, hint): the same
    checks and sandbox as scene templates, then a trial render with sample values."""
    _, problems = render_template(source, _caption_names(dict(_CAPTION_SAMPLE)), Budget())
    return [(p.message, p.lineno, p.hint) for p in problems]


def render_caption(source: str, *, stem: str, index: int, sidecar: str) -> tuple[str | None, list[Problem]]:
    """The caption of one image: (text, []) or (None, problems), never an exception."""
    text, problems = render_template(source, _caption_names({"stem": stem, "index": index, "sidecar": sidecar}), Budget())
    return (None if text is None else text.strip()), problems
