"""The one Jinja environment of kolorsc: sandboxed, strict, and on a budget.

Story files come from other people, so a template must not be able to read files, reach
Python internals, or make `kolorsc check` allocate gigabytes or spin for minutes. Jinja's
`ImmutableSandboxedEnvironment` does the first two; this module adds the budget, enforced
while the template runs, before anything big is made:

- Every value a template makes is checked before it is made: text and lists up to
  MAX_TEXT characters/items (`'x' * n`, `+`, `~`, `replace`, `join`, `str.replace`...),
  whole numbers up to MAX_INT_BITS bits (`*` and `**` on numbers). Python methods that only
  pad or amplify text (`center`, `zfill`, `expandtabs`, `translate`, `format`...) are not
  available.
- Every step costs work units: an operator, a call, a filter, an attribute, one loop
  iteration cost STEP_COST, plus one unit per character or item read or made. One Budget
  is shared by all templates of a story file; spending it ends the render with a
  BudgetError. The work budget bounds both time and memory (every fresh value was paid for
  by its size), deterministically: the same story fails the same way on every machine.
  A CPU-time deadline is kept as a backstop only.
- What a template outputs must be text or a number: a function, a list or `None` is an
  error, never its Python repr (`{{ range }}` would put a memory address in the prompt and
  so in every cache key). The rendered text is bounded too (MAX_TEXT).

Loops and `~` are not hooks Jinja offers, so the parsed template is rewritten before it is
compiled (`budgeted`): every loop's iterable and every `~` go through internal filters
that charge the budget. All filters are marked as needing the context, which also stops
Jinja from running them at compile time, outside the budget.
"""

from __future__ import annotations

import functools
import math
import types

from jinja2 import StrictUndefined, nodes
from jinja2.environment import Template
from jinja2.exceptions import SecurityError
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import pass_context
from jinja2.visitor import NodeTransformer

from kolorsc.i18n import N_, _
from kolorsc.spec.budget import (  # noqa: F401 - MAX_TEXT, TEMPLATE_TOKENS: re-exported for callers
    CURRENT_BUDGET,
    MAX_INT_BITS,
    MAX_TEXT,
    RANGE_LIMIT,
    STEP_COST,
    TEMPLATE_TOKENS,
    Budget,
    BudgetError,
    bits,
    charge,
    check_size,
    check_value,
    current,
    replaced_length,
    size_of,
    to_text,
    too_big,
)

SAFE_FILTERS = (
    "abs capitalize count d default first float int join last length list lower map max min "
    "reject reverse round select sort string sum title trim truncate unique upper wordcount replace"
).split()

# Methods a template may call on text, lists and mappings: they make nothing bigger than
# what they read (replace and join are checked before they run). Everything else is refused.
_STR_METHODS = frozenset(
    "upper lower title capitalize casefold swapcase strip lstrip rstrip split rsplit splitlines "
    "startswith endswith count find rfind index rindex partition rpartition removeprefix "
    "removesuffix isalnum isalpha isascii isdecimal isdigit isidentifier islower isnumeric "
    "isprintable isspace istitle isupper replace join".split()
)
_LIST_METHODS = frozenset({"count", "index", "copy"})
_DICT_METHODS = frozenset({"keys", "values", "items", "get", "copy"})
_LOOP_METHODS = frozenset({"cycle", "changed"})

_LOOP_FILTER = "kolorsc:loop"  # names a user cannot write in a template
_CONCAT_FILTER = "kolorsc:concat"


# --- the environment ------------------------------------------------------------------------


class StorySandbox(ImmutableSandboxedEnvironment):
    # Intercepted binary operators also stop Jinja from folding `9**9**9` at compile time.
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

    def call_binop(self, context, operator, left, right):
        _check_binop(operator, left, right)
        return check_value(super().call_binop(context, operator, left, right))

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - Jinja's own signature
        owner = getattr(__obj, "__self__", None)
        charge(size_of(owner) + sum(map(size_of, args)))  # a method reads its object and arguments
        _check_method(__obj, args, kwargs)
        result = check_value(super().call(__context, __obj, *args, **kwargs))
        current().charge(size_of(result))
        return result

    def getattr(self, obj, attribute):
        charge()
        return super().getattr(obj, attribute)

    def getitem(self, obj, argument):
        charge()
        value = super().getitem(obj, argument)
        if isinstance(argument, slice) and isinstance(value, (str, list, tuple)):
            current().charge(len(value))
        return value

    def _parse(self, source, name, filename):
        # Every parse, also from_string's, rewrites loops and `~` to go through the budget.
        return budgeted(super()._parse(source, name, filename), self)

    def wrap_str_format(self, value):
        # str.format can pad to any width ('{:>999999999}'); prompts do not need it.
        if super().wrap_str_format(value) is not None:
            def refuse(*args, **kwargs):
                raise SecurityError(_("str.format is not available in templates"))

            return refuse
        return None


def _check_binop(op: str, left, right) -> None:
    """Refuse, before computing it, a result that would be too big."""
    charge(sum(len(v) for v in (left, right) if isinstance(v, (str, list, tuple))))
    seqs = (str, list, tuple)
    if op == "%" and isinstance(left, str):
        raise SecurityError(_("%-formatting is not available in templates"))
    if op == "+" and isinstance(left, seqs) and isinstance(right, seqs):
        check_size(len(left) + len(right))
    elif op == "*":
        for seq, n in ((left, right), (right, left)):
            if isinstance(seq, seqs) and isinstance(n, int):
                check_size(len(seq) * max(int(n), 0))
        if isinstance(left, int) and isinstance(right, int) and bits(left) + bits(right) > MAX_INT_BITS + 1:
            raise BudgetError(_("a number would grow beyond {bits} bits").format(bits=MAX_INT_BITS))
    elif op == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        if right * math.log2(abs(left)) > MAX_INT_BITS + 1:  # the result's bits, to within one
            raise BudgetError(_("a number would grow beyond {bits} bits").format(bits=MAX_INT_BITS))


def _check_method(obj, args, kwargs) -> None:
    """Only the methods listed above, and text-growing ones checked before they run."""
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    if owner is None or isinstance(owner, types.ModuleType):
        return  # a plain function (range): the sandbox's own rules apply
    if isinstance(owner, str):
        allowed = _STR_METHODS
    elif isinstance(owner, (list, tuple)):
        allowed = _LIST_METHODS
    elif isinstance(owner, dict):
        allowed = _DICT_METHODS
    elif isinstance(owner, LoopContext):
        allowed = _LOOP_METHODS
    else:
        allowed = frozenset()
    if name not in allowed:
        raise SecurityError(_("{method}() is not available in templates").format(
            method=f"{type(owner).__name__}.{name}"))
    if isinstance(owner, str) and name == "replace" and len(args) >= 2:
        count = args[2] if len(args) > 2 else kwargs.get("count", -1)
        check_size(replaced_length(owner, args[0], args[1], count))
    elif isinstance(owner, str) and name == "join" and args:
        items = args[0]
        if isinstance(items, (list, tuple)) and all(isinstance(i, str) for i in items):
            check_size(sum(map(len, items)) + len(owner) * max(len(items) - 1, 0))
        else:
            raise SecurityError(_("str.join() takes a list of text here; use the join filter"))


# --- filters --------------------------------------------------------------------------------


def _pass_arg(fn):
    from jinja2.utils import _PassArg

    return _PassArg.from_obj(fn)


def _budgeted_filter(name: str, fn):
    """Wrap one of Jinja's filters: charge the budget, check amplifying ones before they run,
    check the result's size. Marked pass_context so Jinja never runs it at compile time."""
    kind = _pass_arg(fn)
    pre = _PRE_CHECKS.get(name)

    weight = _SORTING.get(name, 1)

    @pass_context
    @functools.wraps(fn)
    def wrapper(context, value, *args, **kwargs):
        n = size_of(value)
        charge(n * weight(n) if callable(weight) else n)
        if pre is not None:
            result = check_value(pre(context, fn, kind, value, *args, **kwargs))
        else:
            result = check_value(_call(fn, kind, context, value, *args, **kwargs))
        current().charge(size_of(result))
        return result

    return wrapper


def _call(fn, kind, context, *args, **kwargs):
    from jinja2.utils import _PassArg

    if kind is _PassArg.context:
        return fn(context, *args, **kwargs)
    if kind is _PassArg.eval_context:
        return fn(context.eval_ctx, *args, **kwargs)
    if kind is _PassArg.environment:
        return fn(context.environment, *args, **kwargs)
    return fn(*args, **kwargs)


def _replace(context, fn, kind, value, old, new, count=None):
    check_size(replaced_length(to_text(value), to_text(old), to_text(new), -1 if count is None else count))
    return _call(fn, kind, context, value, old, new, count)


def _join(context, fn, kind, value, d="", attribute=None):
    from jinja2.filters import make_attrgetter

    items = _bounded_list(value)
    if attribute is not None:
        get = make_attrgetter(context.environment, attribute)
        items = [get(i) for i in items]
    texts = [to_text(i) for i in items]
    sep = to_text(d)
    check_size(sum(map(len, texts)) + len(sep) * max(len(texts) - 1, 0))
    current().charge(sum(map(len, texts)))
    return sep.join(texts)


def _string(context, fn, kind, value):
    return to_text(value)


def _sum(context, fn, kind, value, attribute=None, start=0):
    from jinja2.filters import make_attrgetter

    items = _bounded_list(value)
    if attribute is not None:
        get = make_attrgetter(context.environment, attribute)
        items = [get(i) for i in items]
    total = start
    for item in items:
        if not isinstance(item, (int, float)) or not isinstance(total, (int, float)):
            raise SecurityError(_("sum adds numbers only"))
        total = check_value(total + item)
    return total


def _bounded_list(value) -> list:
    """Materialise an iterable, refusing more than MAX_TEXT items (and charging each)."""
    if isinstance(value, (str, list, tuple, dict, range)):
        current().charge(len(value))
        return list(value)
    out = []
    for item in value:
        out.append(item)
        check_size(len(out), N_("a list"))
        current().charge(1)
    return out


# Sorting compares items ~log2(n) times each: charged as such.
_SORTING = {name: (lambda n: 1 + max(n, 1).bit_length()) for name in ("sort", "unique", "max", "min")}

_PRE_CHECKS = {"replace": _replace, "join": _join, "string": _string, "sum": _sum}


@pass_context
def _loop_filter(context, iterable):
    """Every loop's iterable: one step of work per item."""
    budget = current()
    for item in iterable:
        budget.charge(STEP_COST + (len(item) if isinstance(item, str) else 0))
        yield item


@pass_context
def _concat_filter(context, parts):
    """`a ~ b ~ c`: the total length is checked before the text is made."""
    texts = [to_text(p) for p in parts]
    total = sum(map(len, texts))
    check_size(total)
    charge(total)
    return "".join(texts)


@pass_context
def _finalize(context, value):
    text = to_text(value)
    current().charge(len(text))
    return text


def _concat(pieces) -> str:
    """Join a template's output (and `{% set %}` blocks): bounded while it streams."""
    out, total = [], 0
    for piece in pieces:
        total += len(piece)
        if total > MAX_TEXT:
            raise too_big(N_("the rendered text"))
        out.append(piece)
    return "".join(out)


def _small_range(*args):
    r = range(*args)
    if len(r) > RANGE_LIMIT:
        raise SecurityError(_("range() is limited to {limit} items in templates").format(limit=RANGE_LIMIT))
    return r


_small_range.__name__ = "range"  # how messages name it


class BudgetedTemplate(Template):
    """A template that renders within the active Budget, or a fresh one when none is active
    (a caller's own `env.from_string(...).render(...)`)."""

    def render(self, *args, **kwargs) -> str:
        if CURRENT_BUDGET.get() is not None:
            return super().render(*args, **kwargs)
        token = CURRENT_BUDGET.set(Budget())
        try:
            return super().render(*args, **kwargs)
        finally:
            CURRENT_BUDGET.reset(token)


StorySandbox.template_class = BudgetedTemplate


def template_environment() -> StorySandbox:
    """The ONE Jinja environment factory of kolorsc: sandboxed, immutable, strict undefined,
    no autoescape, a small set of deterministic filters, and the budget of this module."""
    env = StorySandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False, finalize=_finalize)
    env.concat = _concat
    env.filters = {name: _budgeted_filter(name, env.filters[name]) for name in SAFE_FILTERS}
    env.filters[_LOOP_FILTER] = _loop_filter
    env.filters[_CONCAT_FILTER] = _concat_filter
    env.tests = dict(env.tests)
    env.globals = {"range": _small_range}
    return env


# --- rewriting and rendering ----------------------------------------------------------------


def count_tokens(env: StorySandbox, source: str, limit: int) -> int:
    """Tokens of template code in `source` (not the text between tags), counting stops
    past `limit`: lexing is lazy, so a huge template costs no more than `limit` tokens.
    A lexing error stops the count: parsing reports it."""
    from jinja2.exceptions import TemplateSyntaxError

    n = 0
    try:
        for _line, kind, _value in env.lexer.tokeniter(source, None):
            if kind not in ("data", "whitespace"):
                n += 1
                if n > limit:
                    break
    except TemplateSyntaxError:
        pass
    return n


class _Budgeted(NodeTransformer):
    """Route loops' iterables and `~` through the internal filters (see the module docstring)."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, _LOOP_FILTER, [], [], None, None, lineno=node.iter.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        parts = nodes.List(list(node.nodes), lineno=node.lineno)
        return nodes.Filter(parts, _CONCAT_FILTER, [], [], None, None, lineno=node.lineno)


def budgeted(ast: nodes.Template, env) -> nodes.Template:
    """The parsed template with its loops and `~` going through the budget (changes `ast`).
    `StorySandbox.parse` applies it: callers never need to."""
    ast = _Budgeted().visit(ast)
    ast.set_environment(env)
    return ast


def render(env: StorySandbox, ast: nodes.Template, context: dict, budget: Budget, filename: str) -> str:
    """Compile a template parsed with `env.parse` (and checked) and render it within `budget`."""
    token = CURRENT_BUDGET.set(budget)
    try:
        code = env.compile(ast, filename=filename)
        template = env.template_class.from_code(env, code, env.make_globals(None))
        return template.render(context)
    finally:
        CURRENT_BUDGET.reset(token)
