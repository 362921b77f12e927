"""Tests that need the `models` extra (torch, diffsynth, Data-Juicer...) skip, with the
reason, where only the core is installed (`pip install -e '.[test]'`): call
`require_models()` before importing any of those libraries."""

import pytest

REASON = "needs the models extra: pip install -e '.[models,test]'"


def require_models(*more: str) -> None:
    for name in ("torch", "numpy", "diffsynth", *more):
        pytest.importorskip(name, reason=REASON)
