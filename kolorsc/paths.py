"""Where kolorsc keeps things on the user's machine. Every default has an override."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "KOLORSC_CACHE"
# Folders inside the build cache besides its objects (kolorsc.cache documents the layout).
WORK_DIR = "work"  # training runs in progress, by LoRA key (kept to resume a killed one)
EMBEDDINGS_DIR = "kolors-embeddings"  # the Kolors engine's prompt embeddings
MODELS_ENV = "KOLORSC_MODELS"


def user_cache_root() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) / "kolorsc" if xdg else Path.home() / ".cache" / "kolorsc"


def cache_dir(override: str | Path | None = None) -> Path:
    """The content-addressed build cache: --cache-dir, else $KOLORSC_CACHE, else the user cache."""
    if override:
        return Path(override).expanduser().resolve()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser().resolve()
    return user_cache_root() / "store"


def models_dir(override: str | Path | None = None) -> Path:
    """Model weights: --models-dir, else $KOLORSC_MODELS, else ~/.cache/kolorsc/models."""
    if override:
        return Path(override).expanduser().resolve()
    if os.environ.get(MODELS_ENV):
        return Path(os.environ[MODELS_ENV]).expanduser().resolve()
    return user_cache_root() / "models"
