"""The budget of the story templates: limits, the Budget of one story file, size checks.

kolorsc.spec.sandbox enforces these while a template runs (see its docstring): every value
a template makes is checked here before it is made, and every step is charged to the one
Budget of the story file being rendered (held in a context variable, so hooks Jinja calls
without a context can reach it).

Work units: STEP_COST per operator, call, filter, attribute or loop iteration, plus one per
character or list item read or made. Fresh values are paid for by their size, so the work
budget bounds memory as well as time (at most ~4 bytes a unit), and the same story fails
the same way on every machine. The CPU-time deadline is a backstop only.
"""

from __future__ import annotations

import contextvars
import math
import time
from dataclasses import dataclass, field

from jinja2.exceptions import SecurityError
from jinja2.runtime import LoopContext, Undefined

from kolorsc.i18n import N_, _

MAX_TEXT = 20_000  # characters (or list items) any value or rendered text may reach
MAX_INT_BITS = 1024  # whole numbers up to ~10**308; prompts need a scene number at most
RANGE_LIMIT = 100  # range() items
STEP_COST = 100  # work units of one operator, call, filter, attribute or loop iteration
WORK_BUDGET = 4_000_000  # work units for all templates of one story file
# Parsing and compiling cost ~0.04 ms per token of template code (names, operators,
# tags; text between tags is free), before any budget hook can run: so the code is counted
# from the lexer, which stops at the limit, before Jinja parses it.
TEMPLATE_TOKENS = 500  # in one template (a real prompt template has a few dozen)
STORY_TOKENS = 4_000  # in all templates of one story file (~40 us each when parsed and compiled)
TIME_BUDGET = 2.0  # CPU seconds, a backstop only: the work budget ends any render well before

class BudgetError(SecurityError):
    """A template went over its budget (size of a value, work, time)."""


@dataclass
class Budget:
    """What the templates of one story file may still spend."""

    work: int = WORK_BUDGET
    tokens: int = STORY_TOKENS
    seconds: float = TIME_BUDGET
    deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        # CPU time of this process, not wall time: a loaded machine must not change the verdict
        self.deadline = time.process_time() + self.seconds

    def charge(self, units: int) -> None:
        self.work -= units
        if self.work < 0:
            raise BudgetError(_(
                "the story's templates do too much work (more than {limit} units: loops "
                "times the length of the text they handle)").format(limit=f"{WORK_BUDGET:,}"))
        if time.process_time() > self.deadline:
            raise BudgetError(_("the story's templates took more than {seconds} s of CPU time to render").format(
                seconds=f"{self.seconds:g}"))

    def charge_tokens(self, n: int) -> None:
        self.tokens -= n
        if self.tokens < 0:
            raise BudgetError(_("the story's templates hold more than {limit} pieces of template code "
                                "(names, operators, tags)").format(limit=f"{STORY_TOKENS:,}"))


CURRENT_BUDGET: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("kolorsc_template_budget", default=None)


def current() -> Budget:
    # None only while Jinja folds constants at compile time (getattr): a throwaway budget
    return CURRENT_BUDGET.get() or Budget()


def charge(units: int = 0) -> None:
    current().charge(STEP_COST + units)


# --- sizes ----------------------------------------------------------------------------------


def too_big(what: str = N_("a value")) -> BudgetError:
    """`what`: a description marked with N_(), translated here."""
    return BudgetError(_("{what} would grow beyond {limit} characters").format(what=_(what), limit=f"{MAX_TEXT:,}"))


def check_size(n: int, what: str = N_("a value")) -> None:
    if n > MAX_TEXT:
        raise too_big(what)


def size_of(value) -> int:
    return len(value) if isinstance(value, (str, list, tuple, dict)) else 0


def bits(n: int) -> int:
    return abs(int(n)).bit_length()


def check_value(value):
    """Refuse a value that is too big; return it unchanged otherwise (cheap: no copy)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if bits(value) > MAX_INT_BITS:
            raise BudgetError(_("a number would grow beyond {bits} bits (about 10**{digits})").format(
                bits=MAX_INT_BITS, digits=int(MAX_INT_BITS * math.log10(2))))
    elif isinstance(value, float) and not math.isfinite(value):
        raise BudgetError(_("the result is not a finite number"))
    elif isinstance(value, complex):
        raise BudgetError(_("the result is not a real number"))
    elif isinstance(value, (str, list, tuple, dict)):
        check_size(len(value))
    return value


def _describe(value) -> str:
    if value is None:
        return _("nothing (none)")
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, LoopContext):
        return _("the loop object")
    if callable(value):
        name = getattr(value, "__name__", type(value).__name__)
        return _("the function {name} (call it with (...), or leave it out)").format(name=repr(name))
    if isinstance(value, (list, tuple)):
        return _("a list (join it: |join(', '))")
    if isinstance(value, dict):
        return _("a mapping")
    return _("a {type} object").format(type=type(value).__name__)


def to_text(value) -> str:
    """The text of an output value: text, whole or decimal numbers, and the story's names
    (which render as their text). Anything else is an error rather than a Python repr."""
    if isinstance(value, Undefined):
        return str(value)  # StrictUndefined: raises with Jinja's own message
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        raise SecurityError(_("a template can only output text or numbers, not {what}").format(what=_describe(value)))
    if isinstance(value, (int, float)):
        check_value(value)
        return str(value)
    text = getattr(type(value), "kolorsc_text", None)  # the views of spec.templates
    if text is not None:
        return text(value)
    raise SecurityError(_("a template can only output text or numbers, not {what}").format(what=_describe(value)))


def replaced_length(text, old, new, count=-1) -> int:
    """Length of text.replace(old, new, count), computed without making it."""
    if not all(isinstance(v, str) for v in (text, old, new)):
        return len(text) if isinstance(text, str) else 0
    n = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        n = min(n, count)
    return len(text) + n * (len(new) - len(old))
