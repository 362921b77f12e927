"""Rendering engines. `get_engine(name, **options)` is the only way the runner obtains one."""

from __future__ import annotations

from kolorsc.engines.base import (  # noqa: F401
    Engine,
    LoraWeights,
    Reference,
    RenderJob,
    SharedAttention,
    SharedMember,
)
from kolorsc.errors import UsageError
from kolorsc.i18n import _

ENGINES = ("preview", "kolors")


def get_engine(name: str, **options) -> Engine:
    """A new engine by name. Options (models_dir, device, ...) go to its constructor.

    The kolors engine is imported only when asked for: it pulls in torch and diffsynth."""
    if name == "preview":
        from kolorsc.engines.preview import PreviewEngine

        return PreviewEngine(**options)
    if name == "kolors":
        from kolorsc.engines.kolors import KolorsEngine

        return KolorsEngine(**options)
    raise UsageError(_("unknown engine {name}: choose one of {engines}").format(
                       name=repr(name), engines=', '.join(ENGINES)))
