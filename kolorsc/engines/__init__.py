"""Rendering engines. `get_engine(name, **options)` is the only way the runner obtains one;
`EngineSpec` says how another process (a Ray worker) makes the same engine."""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class EngineSpec:
    """An engine another process can make: by name and constructor options (a worker builds
    its own, on its own device and models folder), or a given instance, which travels pickled
    with the spec (what the tests and benchmarks pass: engines that count or sleep)."""

    name: str
    options: dict = field(default_factory=dict)
    instance: Engine | None = None

    @classmethod
    def of(cls, engine: Engine) -> EngineSpec:
        return cls(engine.name, instance=engine)

    def make(self) -> Engine:
        return self.instance if self.instance is not None else get_engine(self.name, **self.options)
