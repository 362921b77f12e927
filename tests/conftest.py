"""Shared test set-up: the `_*_fixtures.py` helpers live here, beside this file, and the
test folders mirror the package (tests/build/ for kolorsc/build/, tests/spec/ for
kolorsc/spec/ ...); this makes the helpers importable from every folder."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
