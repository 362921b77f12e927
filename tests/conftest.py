"""Shared test set-up: the `_*_fixtures.py` helpers live here, beside this file, and the
test folders mirror the package (tests/build/ for kolorsc/build/, tests/spec/ for
kolorsc/spec/ ...); this makes the helpers importable from every folder."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Messages are compared in English unless a test chooses a language itself (tests/test_i18n.py):
# a developer's LANG=zh_CN.UTF-8 must not change what the suite expects.
import os  # noqa: E402

os.environ["KOLORSC_LANG"] = "en"

import pytest  # noqa: E402


@pytest.fixture
def proj(tmp_path, monkeypatch):
    """A copy of the example project (_spec_fixtures.make_project), the current directory.
    A test module that needs another kind of project defines its own `proj`."""
    from _spec_fixtures import make_project

    root = make_project(tmp_path)
    monkeypatch.chdir(root)
    return root
