"""Scene templates: the one sandboxed Jinja environment and rendering of every scene.

This is the part of prompt compilation that can fail, so it lives with the spec: `kolorsc
check` renders every template (and so reports every template error) without building
panels. `kolorsc.prompts.compile_story` turns the rendered text into Panels.

What a template sees: each character by key ({{ girl }} renders its look; .look, .name,
.key), `style` (renders its trigger; .trigger, .negative, .name, .id), `story` (renders its
title; .title, .id, .team) and `scene` (renders its caption; .caption, .shot, .index 1..8).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, fields

from kolorsc.errors import Diagnostic, SpecError
from kolorsc.i18n import N_, _
from kolorsc.i18n import _
from kolorsc.spec.model import Loc, Scene, Story, Style

MAX_TEXT = 20_000  # characters any template value may grow to (Kolors reads 256 tokens anyway)
MAX_LOOP_NESTING = 2
MAX_ASSIGNMENTS = 10  # with loops, bounds how far a value can double itself
RANGE_LIMIT = 100
_TEMPLATE_FILE = "<kolorsc-template>"
_SAFE_FILTERS = (
    "abs capitalize count d default first float int join last length list lower map max min "
    "reject reverse round select sort string sum title trim truncate unique upper wordcount replace"
).split()
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


@dataclass(frozen=True)
class StyleView:
    id: str
    name: str
    trigger: str
    negative: str

    def __str__(self) -> str:
        return self.trigger


@dataclass(frozen=True)
class StoryView:
    id: str
    title: str
    team: str

    def __str__(self) -> str:
        return self.title


@dataclass(frozen=True)
class SceneView:
    index: int  # 1..8
    caption: str
    shot: str

    def __str__(self) -> str:
        return self.caption


_VIEW_FIELDS = {cls: tuple(f.name for f in fields(cls)) for cls in (CharacterView, StyleView, StoryView, SceneView)}


def _limited_text(fn):
    def wrapper(*args, **kwargs):
        result = fn(*args, **kwargs)
        if isinstance(result, (str, list, tuple)) and len(result) > MAX_TEXT:
            from jinja2.exceptions import SecurityError

            raise SecurityError(_("a value grew beyond {limit} characters").format(limit=f"{MAX_TEXT:,}"))
        return result

    wrapper.__dict__.update(getattr(fn, "__dict__", {}))  # keep jinja's pass_context markers
    return wrapper


def template_environment():
    """The ONE Jinja environment factory of kolorsc: sandboxed, immutable, strict undefined,
    no autoescape, a small set of deterministic filters, and bounded growth of values."""
    from jinja2 import StrictUndefined
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class StorySandbox(ImmutableSandboxedEnvironment):
        # Intercepting these also stops Jinja from folding `9**9**9` at compile time.
        intercepted_binops = frozenset({"*", "**", "%", "+"})

        def call_binop(self, context, operator, left, right):
            if operator == "**" and isinstance(right, (int, float)) and abs(right) > 64:
                raise SecurityError(_("exponent too large"))
            if operator == "*":
                for seq, n in ((left, right), (right, left)):
                    if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * max(n, 0) > MAX_TEXT:
                        raise SecurityError(_("a value grew beyond {limit} characters").format(limit=f"{MAX_TEXT:,}"))
            if operator == "%" and isinstance(left, str):
                raise SecurityError(_("%-formatting is not available in prompt templates"))
            result = super().call_binop(context, operator, left, right)
            if isinstance(result, (str, list, tuple)) and len(result) > MAX_TEXT:
                raise SecurityError(_("a value grew beyond {limit} characters").format(limit=f"{MAX_TEXT:,}"))
            return result

        def wrap_str_format(self, value):
            # str.format can pad to any width ('{:>999999999}'); prompts do not need it.
            if super().wrap_str_format(value) is not None:
                def refuse(*args, **kwargs):
                    raise SecurityError(_("str.format is not available in prompt templates"))

                return refuse
            return None

    env = StorySandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
    env.filters = {name: _limited_text(env.filters[name]) for name in _SAFE_FILTERS}
    env.tests = dict(env.tests)
    env.globals = {"range": _small_range}
    return env


def _small_range(*args):
    r = range(*args)
    if len(r) > RANGE_LIMIT:
        from jinja2.exceptions import SecurityError

        raise SecurityError(_("range() is limited to {limit} items in prompt templates").format(limit=RANGE_LIMIT))
    return r


_ENV = None


def _env():
    global _ENV
    if _ENV is None:
        _ENV = template_environment()
    return _ENV



@dataclass(frozen=True)
class RenderedScene:
    """The raw text a scene's templates rendered to (before normalisation)."""

    scene: Scene
    prompt: str
    negative: str  # "" when the scene has no negative


def render_scenes(story: Story) -> list[RenderedScene]:
    """Render every scene's prompt and negative. Raises SpecError with a diagnostic per
    template problem, each naming the scene and the line in the story file."""
    context = _context(story)
    diags: list[Diagnostic] = []
    out: list[RenderedScene] = []
    for scene in story.scenes:
        scene_ctx = dict(context, scene=SceneView(scene.index + 1, scene.caption, scene.shot or ""))
        prompt = _render(scene.prompt, scene_ctx, scene, "prompt", scene.prompt_loc, diags)
        negative = ""
        if scene.negative:
            negative = _render(scene.negative, scene_ctx, scene, "negative", scene.negative_loc or scene.loc, diags)
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


def _render(source: str, ctx: dict, scene: Scene, what: str, loc: Loc, diags: list[Diagnostic]) -> str | None:
    """Parse, check names statically, render. Appends diagnostics and returns None on failure."""
    from jinja2 import TemplateSyntaxError, meta, nodes
    from jinja2.exceptions import SecurityError, TemplateError, UndefinedError

    env = _env()
    path = f"scenes[{scene.index}].{what}"
    where = _(_WHERE.get(what, "in the {what} of scene {n}")).format(what=what, n=scene.index + 1)

    def add(message: str, lineno: int | None = None, hint: str | None = None) -> None:
        line, col = loc.line, loc.col
        if lineno and lineno > 1:  # only block scalars (| or >) keep line breaks: same indent
            line = loc.line + lineno - 1
        diags.append(Diagnostic(loc.file, line, col, path, _("{message} {where}").format(message=message, where=where), hint))

    simple = _render_simple(source, ctx, add)
    if simple is not _NOT_SIMPLE:
        return simple
    try:
        ast = env.parse(source)
    except TemplateSyntaxError as exc:
        add(_("template syntax error: {problem}").format(problem=exc.message), exc.lineno)
        return None
    try:
        undeclared = meta.find_undeclared_variables(ast)  # compiles: unknown filters show up here
    except TemplateSyntaxError as exc:
        add(_("template error: {problem}").format(problem=exc.message), exc.lineno)
        return None
    ok = True
    for name in sorted(undeclared):
        node = next((n for n in ast.find_all(nodes.Name) if n.name == name), None)
        ok &= _check_name(name, ctx, node.lineno if node else None, add)
    for node in ast.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name in ctx:
            ok &= _check_attr(node.node.name, node.attr, ctx, node.lineno, add)
    for kind, tag in _FORBIDDEN_TAGS.items():
        for node in ast.find_all(getattr(nodes, kind)):
            add(_("{tag} is not allowed in prompt templates").format(tag=tag), node.lineno)
            ok = False
    assignments = sum(1 for _ in ast.find_all((nodes.Assign, nodes.AssignBlock, nodes.With)))
    if assignments > MAX_ASSIGNMENTS:
        add(_("more than {n} {{% set %}}/{{% with %}} in one template").format(n=MAX_ASSIGNMENTS))
        ok = False
    if _loop_depth(ast, nodes) > MAX_LOOP_NESTING:
        add(_("loops nested more than {n} deep are not allowed in prompt templates").format(n=MAX_LOOP_NESTING))
        ok = False
    if not ok:
        return None
    try:
        code = env.compile(ast, filename=_TEMPLATE_FILE)
        text = env.template_class.from_code(env, code, env.make_globals(None)).render(ctx)
    except SecurityError as exc:
        add(_("template not allowed: {problem}").format(problem=str(exc).rstrip(".")), _template_line(exc),
            _("templates may only use the story's names and plain text"))
        return None
    except UndefinedError as exc:
        add(_("template error: {problem}").format(problem=exc.message), _template_line(exc))
        return None
    except TemplateError as exc:
        add(_("template error: {problem}").format(problem=exc), _template_line(exc))
        return None
    except RecursionError:
        add(_("template error: recursion too deep"))
        return None
    except (ArithmeticError, TypeError, ValueError, LookupError, AttributeError, MemoryError) as exc:
        add(_("template error: {problem}").format(problem=f"{type(exc).__name__}: {exc}"), _template_line(exc))
        return None
    if len(text) > MAX_TEXT:
        add(_("renders to {n} characters (limit {limit})").format(n=f"{len(text):,}", limit=f"{MAX_TEXT:,}"))
        return None
    return text


def _check_name(name: str, ctx: dict, lineno, add) -> bool:
    if name in ctx or name == "range":
        return True
    close = difflib.get_close_matches(name, list(ctx), n=1)
    characters = ", ".join(k for k in ctx if k not in ("style", "story", "scene")) or _("none")
    hint = (_("did you mean \"{name}\"?").format(name=close[0]) if close
            else _("characters: {names}").format(names=characters))
    add(_("undefined name \"{name}\"").format(name=name), lineno, _named_hint(name, ctx) or hint)
    return False


def _named_hint(name: str, ctx: dict) -> str | None:
    """{{ 小雨 }}: the author wrote the character's name, not its key (kolorsc.spec.suggest)."""
    from kolorsc.spec.suggest import character_named

    key = character_named(name, [(k, v.name) for k, v in ctx.items() if isinstance(v, CharacterView)])
    return _("\"{name}\" is the name of the character \"{key}\": write {{{{ {key} }}}}").format(name=name, key=key) if key else None


def _check_attr(name: str, attr: str, ctx: dict, lineno, add) -> bool:
    allowed = _VIEW_FIELDS.get(type(ctx[name]), ())
    if attr in allowed:
        return True
    close = difflib.get_close_matches(attr, allowed, n=1)
    add(_("\"{name}\" has no field \"{field}\"").format(name=name, field=attr), lineno,
        _("did you mean \"{name}\"?").format(name=close[0]) if close else _("fields: {names}").format(names=", ".join(allowed)))
    return False


# Most prompts are text with `{{ name }}` / `{{ name.field }}` and nothing else. Those are
# substituted directly: the same result as Jinja (a test compares both on every example),
# without paying ~1 ms to compile each template, which is most of `kolorsc check`'s time.
_NOT_SIMPLE = object()
_SIMPLE_EXPR = re.compile(r"\{\{ *([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))? *\}\}")
_JINJA_MARK = re.compile(r"\{[{%#]|[}%#]\}")


def _render_simple(source: str, ctx: dict, add):
    rest = _SIMPLE_EXPR.sub("", source)
    if _JINJA_MARK.search(rest):
        return _NOT_SIMPLE
    if any(m.group(1) not in ctx and m.group(1) in _env().globals for m in _SIMPLE_EXPR.finditer(source)):
        return _NOT_SIMPLE  # e.g. {{ range }}: let Jinja say what it is
    ok = True
    for m in _SIMPLE_EXPR.finditer(source):
        lineno = source.count("\n", 0, m.start()) + 1
        if not _check_name(m.group(1), ctx, lineno, add):
            ok = False
        elif m.group(2) and not _check_attr(m.group(1), m.group(2), ctx, lineno, add):
            ok = False
    if not ok:
        return None

    def value(m: re.Match) -> str:
        obj = ctx[m.group(1)]
        return str(getattr(obj, m.group(2)) if m.group(2) else obj)

    text = _SIMPLE_EXPR.sub(value, source)
    return text[:-1] if text.endswith("\n") else text  # Jinja drops one trailing newline


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


CAPTION_NAMES = ("stem", "index", "sidecar")


def caption_template_problems(source: str) -> list[tuple[str, int | None, str | None]]:
    """Problems of a dataset caption template as (message, template line, hint): syntax, and
    names other than stem, index and sidecar (what kolorsc.data gives it)."""
    from jinja2 import TemplateSyntaxError, meta

    env = _env()
    try:
        undeclared = meta.find_undeclared_variables(env.parse(source))
    except TemplateSyntaxError as exc:
        return [(_("template syntax error: {problem}").format(problem=exc.message), exc.lineno, None)]
    out = []
    for name in sorted(undeclared - set(CAPTION_NAMES) - set(env.globals)):
        close = difflib.get_close_matches(name, CAPTION_NAMES, n=1)
        hint = (_("did you mean \"{name}\"?").format(name=close[0]) if close
                else _("a caption template sees stem, index and sidecar"))
        out.append((_("undefined name \"{name}\" in the caption template").format(name=name), None, hint))
    return out
