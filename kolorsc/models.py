"""The models directory: which model files kolorsc needs, where they live, and a clear error
when they are missing.

Layout: `<models_dir>/<ModelScope repo id>/...`, the layout modelscope's snapshot_download
writes. Every loader goes through `require()` so that a missing or half-downloaded model
fails with one message that names the files and the command that fetches them.
(`pull`, `verify` and `list` are completed in the Kolors-engine work.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kolorsc.errors import ModelMissingError


@dataclass(frozen=True)
class ModelSpec:
    name: str  # short name on the command line: `kolorsc models pull <name>`
    repo: str  # ModelScope model id
    required: tuple[str, ...]  # files (relative to the model folder) that must be present
    purpose: str

    def folder(self, models_dir: Path) -> Path:
        return Path(models_dir) / self.repo


# Filled in by each area (engine, scoring) with the exact files its loader reads.
REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    REGISTRY[spec.name] = spec
    return spec


def missing_files(spec: ModelSpec, models_dir: Path) -> list[str]:
    folder = spec.folder(models_dir)
    return [rel for rel in spec.required if not (folder / rel).is_file()]


def require(name: str, models_dir: Path) -> Path:
    """Return the model's folder, or raise ModelMissingError naming what is missing and how to get it."""
    spec = REGISTRY[name]
    missing = missing_files(spec, models_dir)
    if missing:
        folder = spec.folder(models_dir)
        listed = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ModelMissingError(
            f"model '{name}' ({spec.purpose}) is missing from {folder}: {listed}. "
            f"Fetch it with `kolorsc models pull {name}` (or set --models-dir / KOLORSC_MODELS "
            f"to a folder that has {spec.repo}).",
            missing=[str(folder / m) for m in missing],
        )
    return spec.folder(models_dir)
