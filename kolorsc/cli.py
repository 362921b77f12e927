"""Command line: parse arguments, call the library, print, choose the exit code.

This is the only module that prints or exits. Exit codes: 0 ok, 1 build failed, 2 bad input.
Heavy libraries (torch, diffsynth, ...) are never imported here, not even indirectly at
import time: `kolorsc --help` and `kolorsc check` must stay instant.
"""

from __future__ import annotations

import functools
import sys

import click

from kolorsc import __version__
from kolorsc.errors import KolorscError, SpecError


def report_errors(fn):
    """Turn the library's errors into a message on stderr and the documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SpecError as exc:
            for d in exc.diagnostics:
                click.echo(d.format(), err=True)
            sys.exit(exc.exit_code)
        except KolorscError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kolorsc")
def main() -> None:
    """kolorsc: compile a story written in YAML into eight Kolors panels, a storyboard and a
    submission bundle."""


# --- story format: check, prompts, init, schema (issue: story format) ---

# --- build: build, plan, cache (issue: kolorsc build) ---

# --- outputs: bundle verify (issue: kolorsc build, emit) ---

# --- models: models pull|list|verify (issue: Kolors engine) ---

# --- training: (issue: LoRA training) ---

# --- scoring: score (issue: scoring) ---


if __name__ == "__main__":  # pragma: no cover
    main()
