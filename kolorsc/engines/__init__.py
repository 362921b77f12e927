"""Rendering engines. `get_engine(name, **options)` is the only way the runner obtains one."""

from __future__ import annotations

from kolorsc.engines.base import Engine, LoraWeights, RenderJob  # noqa: F401
