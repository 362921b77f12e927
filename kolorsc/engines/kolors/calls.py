"""Counting model calls: the one counter the engine, the trainer and the benchmarks share.

The engine counts by hand where one logical call is one forward (`add("unet")` per
guidance batch); the trainer counts by forward hooks on whole modules (`attach`). Both read
back as `counter.unet` or `counter.counts["unet"]`: the benchmarks report calls per step and
the tests check them (e.g. 16 batched UNet calls for 8 panels of 2 steps).
"""

from __future__ import annotations


class CallCounter:
    def __init__(self, *names: str):
        self.counts: dict[str, int] = dict.fromkeys(names or ("unet", "text_encoder", "vae"), 0)
        self._hooks: list = []
        self._seen: set[int] = set()

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def attach(self, name: str, module) -> None:
        """Count every forward call of `module` under `name` (once per module)."""
        if id(module) in self._seen:
            return
        self._seen.add(id(module))
        self.counts.setdefault(name, 0)
        self._hooks.append(module.register_forward_pre_hook(lambda _module, _args: self.add(name)))

    def remove(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()

    def __getattr__(self, name: str) -> int:
        counts = self.__dict__.get("counts")
        if counts is None or name.startswith("_"):
            raise AttributeError(name)
        return counts.get(name, 0)
