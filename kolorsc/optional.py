"""Optional packages (the `models` extra): import them, or say how to install them.

`kolorsc check`, `prompts` and preview builds need only the core; scoring, LoRA files and
the Kolors engine need torch & co. A command that needs a missing package ends with one
line naming the package and the pip command, never an ImportError traceback.
"""

from __future__ import annotations

import importlib

from kolorsc.errors import MissingPackageError

MODELS_EXTRA = "pip install 'kolorsc[models]'"


def require(*modules: str, purpose: str) -> None:
    """Import each module; raise MissingPackageError for the first that cannot be imported.
    `purpose` completes "... needs": e.g. "`kolorsc score`"."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            package = name.split(".")[0]
            missing = getattr(exc, "name", None) in (name, package)
            why = "which is not installed" if missing else f"which cannot be imported ({exc})"
            raise MissingPackageError(f"{purpose} needs the Python package {package!r}, {why}: {MODELS_EXTRA}") from None
