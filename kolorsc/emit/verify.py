"""`kolorsc bundle verify`: check a submission bundle against the challenge's rules.

Rules (challenge write-up, 3.4/3.5): the LoRA file, its description, at least eight images
with their prompts so results can be reproduced, and a mean aesthetic score >= 6 (the
official scorer averages every file of the image folder, so images/ must hold exactly the
eight panels). Every problem found is reported, not just the first.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from kolorsc.emit.bundlename import name_problems
from kolorsc.emit.common import image_name
from kolorsc.emit.modelcard import PREVIEW_MARKER
from kolorsc.errors import UsageError
from kolorsc.i18n import N_, _
from kolorsc.spec.model import SCENE_COUNT
from kolorsc.weightfiles import read_safetensors_header

ERROR = "error"
WARNING = "warning"
_LEVELS = (N_("error"), N_("warning"))  # shown translated by Finding.format
EXPECTED_IMAGES = tuple(f"images/{image_name(i)}" for i in range(1, SCENE_COUNT + 1))
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
LORA_PAIRS = ((".lora_down.", ".lora_up."), (".lora_A.", ".lora_B."))


class AestheticScorer(Protocol):
    def score(self, images: list) -> list[float]: ...


@dataclass(frozen=True)
class Finding:
    level: str  # "error" or "warning"
    message: str

    def format(self) -> str:
        return f"{_(self.level)}: {self.message}"


@dataclass
class VerifyReport:
    path: Path
    findings: list[Finding] = field(default_factory=list)
    aesthetic_mean: float | None = None
    threshold: float = 6.0
    rescored: bool = False  # True when the mean was recomputed from the images

    @property
    def ok(self) -> bool:
        return not any(f.level == ERROR for f in self.findings)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == ERROR]

    def error(self, message: str) -> None:
        self.findings.append(Finding(ERROR, message))

    def warning(self, message: str) -> None:
        self.findings.append(Finding(WARNING, message))


def lora_tensor_problem(header: dict) -> str | None:
    """None when the tensors look like a LoRA (down/up or A/B pairs), else what is wrong."""
    names = [k for k in header if k != "__metadata__"]
    if not names:
        return _("holds no tensors")
    for down, up in LORA_PAIRS:
        downs = {n.replace(down, "|") for n in names if down in n}
        ups = {n.replace(up, "|") for n in names if up in n}
        if downs or ups:
            unpaired = sorted(downs ^ ups)
            if unpaired:
                return _("{n} {down}/{up} tensors without their pair, e.g. {example}").format(
                    n=len(unpaired), down=down.strip("."), up=up.strip("."), example=unpaired[0].replace("|", ".?."))
            return None
    return _("no lora_down/lora_up (or lora_A/lora_B) tensors among {n} tensors, e.g. {example}").format(
        n=len(names), example=repr(names[0]))


def _open_image(data: bytes):
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()  # decode fully: verify() alone misses truncated pixel data
    return image


def _check_images(zf: zipfile.ZipFile, names: list[str], report: VerifyReport) -> dict[str, object]:
    files = [n for n in names if n.startswith("images/") and not n.endswith("/")]
    if not files:
        nested = sorted({n.split("/images/")[0] for n in names if "/images/" in n})
        hint = _(" (found {folder}/images/: zip the folder's contents, not the folder)").format(folder=nested[0]) if nested else ""
        report.error(_("images/ is missing or empty: a submission has eight panel images in images/") + hint)
        return {}
    extras = [n for n in files if n not in EXPECTED_IMAGES]
    missing = [n for n in EXPECTED_IMAGES if n not in files]
    if len(files) != SCENE_COUNT:
        detail = []
        if extras:
            detail.append(_("extra: {names}").format(names=", ".join(extras)))
        if missing:
            detail.append(_("missing: {names}").format(names=", ".join(missing)))
        report.error(
            _("images/ holds {n} files, not exactly {count} (the official scorer averages every file in the folder)"
              ).format(n=len(files), count=SCENE_COUNT) + ("; " + "; ".join(detail) if detail else "")
        )
    elif extras:
        report.warning(_("images/ holds eight files but not named 01.png..08.png: {names}").format(names=", ".join(extras)))
    images = {}
    for name in files:
        if not name.lower().endswith(IMAGE_SUFFIXES):
            report.error(_("{name} is not an image file (images/ must hold only the panels)").format(name=name))
            continue
        try:
            images[name] = _open_image(zf.read(name))
        except Exception as exc:  # Pillow raises many types for broken files
            report.error(_("{name} cannot be read as an image: {problem}").format(name=name, problem=exc))
    return images


def _check_prompts(zf: zipfile.ZipFile, names: list[str], images: dict, report: VerifyReport) -> dict | None:
    if "prompts.json" not in names:
        report.error(_("prompts.json is missing: the challenge needs each image's prompt to reproduce it"))
        return None
    try:
        data = json.loads(zf.read("prompts.json").decode("utf-8"))
        panels = {p["image"]: p for p in data["panels"]}
    except (ValueError, KeyError, TypeError) as exc:
        report.error(_("prompts.json is not a kolorsc prompts file: {problem}").format(problem=exc))
        return None
    without = [n for n in sorted(images) if not str(panels.get(n, {}).get("prompt") or "").strip()]
    if without:
        report.error(_("no prompt in prompts.json for {names}").format(names=", ".join(without)))
    no_seed = [n for n in sorted(images) if n in panels and panels[n].get("seed") is None]
    if no_seed:
        report.warning(_("no seed in prompts.json for {names}").format(names=", ".join(no_seed)))
    return data


def _check_lora(zf: zipfile.ZipFile, names: list[str], report: VerifyReport) -> None:
    loras = [n for n in names if n.lower().endswith(".safetensors")]
    if not loras:
        report.error(_("no LoRA .safetensors file in the bundle: the challenge requires the trained LoRA"))
        return
    for name in loras:
        try:
            with zf.open(name) as stream:
                header = read_safetensors_header(stream, zf.getinfo(name).file_size)
        except ValueError as exc:
            report.error(_("{name} is not a loadable safetensors file: {problem}").format(name=name, problem=exc))
            continue
        problem = lora_tensor_problem(header)
        if problem:
            report.error(_("{name} is not a LoRA: {problem}").format(name=name, problem=problem))


def _check_preview(zf: zipfile.ZipFile, names: list[str], prompts: dict | None, images: dict, report: VerifyReport) -> None:
    reasons = []
    if PREVIEW_MARKER in names:
        reasons.append(PREVIEW_MARKER)
    if prompts is not None and prompts.get("preview") is True:
        reasons.append(_("prompts.json says preview"))
    marked = [n for n, im in sorted(images.items()) if getattr(im, "text", {}).get("kolorsc:preview") == "true"]
    if marked:
        reasons.append(_("{n} image(s) marked kolorsc:preview").format(n=len(marked)))
    if reasons:
        report.error(_("this is a PREVIEW bundle (drafts, not Kolors renders), not a valid submission: {reasons}").format(
            reasons="; ".join(reasons)))


def _check_gate(zf: zipfile.ZipFile, names: list[str], images: dict, scorer, report: VerifyReport) -> None:
    t = report.threshold
    if scorer is not None:
        if not images:
            report.error(_("cannot score: no readable images"))
            return
        ordered = [images[n].convert("RGB") for n in sorted(images)]
        scores = [float(s) for s in scorer.score(ordered)]
        report.aesthetic_mean = sum(scores) / len(scores)
        report.rescored = True
        source = _("recomputed from {n} images").format(n=len(scores))
    else:
        if "scores.json" not in names:
            report.warning(_("the aesthetic gate could not be checked: no scores.json (run with --rescore)"))
            return
        try:
            mean = json.loads(zf.read("scores.json").decode("utf-8")).get("aesthetic_mean")
        except (ValueError, AttributeError) as exc:
            report.error(_("scores.json is not valid JSON: {problem}").format(problem=exc))
            return
        if mean is None:
            report.warning(_("the aesthetic gate could not be checked: scores.json has no aesthetic score (run with --rescore)"))
            return
        report.aesthetic_mean = float(mean)
        source = _("from scores.json")
    if report.aesthetic_mean < t:
        report.error(_("mean aesthetic score {mean} ({source}) is below the threshold {threshold}").format(
            mean=f"{report.aesthetic_mean:.3f}", source=source, threshold=t))


def verify_bundle(path: Path, *, threshold: float = 6.0, scorer: AestheticScorer | None = None) -> VerifyReport:
    """Check the bundle at `path`. Raises UsageError when it is missing or not a zip (exit 2);
    every rule broken is a finding in the report (report.ok is False on any error)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(_("{path}: no such file").format(path=path))
    if not zipfile.is_zipfile(path):
        raise UsageError(_("{path}: not a zip file").format(path=path))
    report = VerifyReport(path=path, threshold=threshold)
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()  # CRC of every member
            if bad is not None:
                report.error(_("{name} is corrupt in the zip (CRC mismatch)").format(name=bad))
                return report
            names = sorted(zf.namelist())
            unsafe = [n for n in names if n.startswith("/") or ".." in Path(n).parts]
            if unsafe:
                report.error(_("unsafe paths in the zip: {names}").format(names=", ".join(unsafe)))
            images = _check_images(zf, names, report)
            prompts = _check_prompts(zf, names, images, report)
            report.findings += [Finding(level, message) for level, message in name_problems(path, prompts)]
            _check_lora(zf, names, report)
            if "README.md" not in names:
                report.warning(_("README.md (the LoRA's model card) is missing: the challenge asks for a description"))
            _check_preview(zf, names, prompts, images, report)
            _check_gate(zf, names, images, scorer, report)
    except (zipfile.BadZipFile, OSError) as exc:
        report.error(_("the zip cannot be read: {problem}").format(problem=exc))
    return report
