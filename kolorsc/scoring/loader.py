"""Load the scorers from the models directory.

The aesthetic predictor is required (it is the challenge's gate): when its files are absent,
kolorsc.models.require raises ModelMissingError naming `kolorsc models pull aesthetic`.
Chinese-CLIP is optional: without it `alignment` is None and alignment is reported as not
computed, with `kolorsc models pull chinese-clip` as the way to get it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kolorsc import optional
from kolorsc.errors import ModelFileError
from kolorsc.i18n import _
from kolorsc.models import missing_files, require
from kolorsc.scoring.models import AESTHETIC, CHINESE_CLIP

SCORING_PACKAGES = ("torch", "transformers", "aesthetics_predictor")

ALIGNMENT_MISSING_NOTE = (
    "alignment not computed: Chinese-CLIP is not in the models directory "
    f"(run `kolorsc models pull {CHINESE_CLIP.name}`)"
)


@dataclass
class Scorers:
    aesthetic: object  # AestheticScorer
    alignment: object | None  # AlignmentScorer, or None when Chinese-CLIP is absent
    device: str

    @property
    def identity(self) -> dict:
        """Everything that decides the numbers; part of every score's cache key."""
        return {
            "aesthetic": self.aesthetic.identity,
            "alignment": self.alignment.identity if self.alignment is not None else None,
        }

    @property
    def alignment_note(self) -> str | None:
        return None if self.alignment is not None else ALIGNMENT_MISSING_NOTE


def scorer_identity(models_dir: Path) -> dict:
    """The identity `load_scorers(models_dir).identity` would have, without loading a model
    (configs and the head of the weights are read: milliseconds). When the aesthetic
    predictor is absent it says so, and a score made then records "not computed": the
    identity changes the day the weights arrive, and every score runs again."""
    from kolorsc.scoring import aesthetic, alignment

    root = Path(models_dir)
    if missing_files(AESTHETIC, root):
        return {"aesthetic": {"model": AESTHETIC.repo, "absent": True}, "alignment": None}
    aligned = None if missing_files(CHINESE_CLIP, root) else alignment.scorer_identity(CHINESE_CLIP.folder(root))
    return {"aesthetic": aesthetic.scorer_identity(AESTHETIC.folder(root)), "alignment": aligned}


def load_scorers(models_dir: Path, device: str | None = None, purpose: str | None = None) -> Scorers:
    """Load the aesthetic predictor (required) and Chinese-CLIP (when present) on one device.

    Raises, never a traceback: ModelMissingError (files absent: `kolorsc models pull`),
    MissingPackageError (the models extra is not installed), ModelFileError (the files are
    there but do not load: damaged, or not the model)."""
    folder = require(AESTHETIC.name, Path(models_dir))
    optional.require(*SCORING_PACKAGES, purpose=purpose or _("scoring"))
    from kolorsc.scoring.aesthetic import AestheticScorer, pick_device

    device = pick_device(device)
    aesthetic = _load(AestheticScorer, AESTHETIC.name, folder, device)
    alignment = None
    if not missing_files(CHINESE_CLIP, Path(models_dir)):
        from kolorsc.scoring.alignment import AlignmentScorer

        alignment = _load(AlignmentScorer, CHINESE_CLIP.name, CHINESE_CLIP.folder(Path(models_dir)), device)
    return Scorers(aesthetic=aesthetic, alignment=alignment, device=device)


def _load(cls, name: str, folder: Path, device: str):
    try:
        return cls(folder, device=device)
    except Exception as exc:  # noqa: BLE001 - transformers/torch raise many kinds for bad files
        text = " ".join(str(exc).split())
        raise ModelFileError(_(
            "the {name} model in {folder} cannot be loaded on {device}: {problem}. Check it with "
            "`kolorsc models verify {name}`; if a file is damaged, delete it and run `kolorsc models pull {name}`"
        ).format(name=name, folder=folder, device=device,
                 problem=f"{type(exc).__name__}: {text[:300]}{'...' if len(text) > 300 else ''}")) from None
