"""Running the `kolorsc` command in-process, as the CLI tests do."""

from __future__ import annotations

from click.testing import CliRunner

from kolorsc.cli import main


def run(*args):
    """`kolorsc ARGS...` (paths given as Path are fine); an unexpected exception propagates."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
