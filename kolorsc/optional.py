"""Optional packages (the `models` extra): import them, or say how to install them.

`kolorsc check`, `prompts` and preview builds need only the core; scoring, LoRA files and
the Kolors engine need torch & co. A command that needs a missing package ends with one
line naming the package and the pip command, never an ImportError traceback: the same line
as every command that checks before it starts (kolorsc.extras). A package that is installed
but fails to import is named with its import error and what needed it (`purpose`).
"""

from __future__ import annotations

import importlib

from kolorsc.errors import MissingPackageError
from kolorsc.extras import EXTRA_OF, how, missing_package
from kolorsc.i18n import _


def require(*modules: str, purpose: str) -> None:
    """Import each module; raise MissingPackageError for the first that cannot be imported.
    `purpose` (translated by the caller) completes "... needs": e.g. "reading the LoRA file x"."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            package = name.split(".")[0]
            extra = EXTRA_OF.get(package, "models")
            if getattr(exc, "name", None) in (name, package):
                raise missing_package(extra, package) from None
            raise MissingPackageError(_("{purpose} needs the Python package {package}, which cannot be imported "
                                        "({problem}): {how}").format(purpose=purpose, package=repr(package),
                                                                     problem=exc, how=how(extra))) from None
