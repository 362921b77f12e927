"""`kolorsc score DIR`: score a folder like the challenge's script, and say it in words/JSON.

The library builds the text and the JSON; cli.py only prints them and picks the exit code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kolorsc.errors import UsageError
from kolorsc.i18n import _
from kolorsc.images import MAX_PIXELS
from kolorsc.scoring.aesthetic import DEFAULT_BATCH
from kolorsc.scoring.folder import FolderScan, read_prompts, scan_folder
from kolorsc.scoring.report import ScoreReport, gate, summarize


@dataclass(frozen=True)
class FolderResult:
    folder: Path
    scan: FolderScan
    report: ScoreReport
    threshold: float

    @property
    def gate(self) -> str:
        return gate(self.report.aesthetic_mean, self.threshold)


def score_folder(
    folder: Path,
    models_dir: Path,
    device: str | None = None,
    threshold: float = 6.0,
    prompts: Path | None = None,
) -> FolderResult:
    """Scan first (cheap: headers only, reports stray and oversized files), then load the
    models and score the images a few at a time: the decoded pixels held at once stay within
    the pixel budget (kolorsc.images), however many or large the files are."""
    from kolorsc.scoring.loader import load_scorers

    scan = scan_folder(folder)
    if not scan.images:
        raise UsageError(_("{folder}: no image files to score").format(folder=folder))
    texts = read_prompts(prompts, scan.images) if prompts else None
    scorers = load_scorers(models_dir, device=device)
    results, unreadable = _score_in_batches(scan.images, texts, scorers)
    if unreadable:  # the header looked fine but the pixels did not decode
        raise UsageError(_("{folder}: cannot score {images}").format(folder=folder, images="; ".join(unreadable)))
    note = scorers.alignment_note if texts is not None and scorers.alignment is None else None
    report = summarize(results, scorer=scorers.identity, note=note)
    return FolderResult(folder=Path(folder), scan=scan, report=report, threshold=threshold)


def _pixel_batches(paths: tuple[Path, ...], max_pixels: int, max_count: int):
    """Consecutive groups of paths whose declared pixels sum to at most `max_pixels` (an image
    alone always forms a group: scan_folder already held each to the budget)."""
    from PIL import Image

    batch, pixels = [], 0
    for i, path in enumerate(paths):
        with Image.open(path) as im:
            n = im.width * im.height
        if batch and (pixels + n > max_pixels or len(batch) >= max_count):
            yield batch
            batch, pixels = [], 0
        batch.append(i)
        pixels += n
    if batch:
        yield batch


def _score_in_batches(paths: tuple[Path, ...], texts: list[str] | None, scorers):
    from kolorsc.images import ImageProblem, open_checked
    from kolorsc.scoring.report import score_one_batch

    results, unreadable = [], []
    for batch in _pixel_batches(paths, MAX_PIXELS, DEFAULT_BATCH):
        images = []
        for i in batch:
            try:
                images.append(open_checked(str(paths[i])))
            except (ImageProblem, OSError) as exc:
                unreadable.append(f"{paths[i].name}: {exc}")
        if unreadable:
            return results, unreadable
        results += score_one_batch(images, [texts[i] for i in batch] if texts is not None else None, scorers)
        for im in images:
            im.close()
    return results, unreadable


def _num(x: float | None, fmt: str = "{:.4f}") -> str:
    return _("not computed") if x is None else fmt.format(x)


def _alignment_why(rep: ScoreReport) -> str:
    return rep.note or _("give --prompts FILE to compare each image with its prompt")


def _gate_why(result: FolderResult) -> str:
    mean = result.report.aesthetic_mean
    if mean is None:
        return _("(no aesthetic score)")
    return _("(mean {mean} {op} threshold {threshold})").format(
        mean=f"{mean:.4f}", op=">=" if result.gate == "PASS" else "<", threshold=f"{result.threshold:g}")


def as_text(result: FolderResult) -> str:
    rep = result.report
    lines = []
    for i, (path, s) in enumerate(zip(result.scan.images, rep.images), start=1):
        extra = _("  alignment {value}").format(value=f"{s.alignment:.4f}") if s.alignment is not None else ""
        lines.append(f"{i:2d}  {path.name:<32} " + _("aesthetic {value}").format(value=f"{s.aesthetic:.4f}") + extra)
    coh = rep.coherence
    outlier = result.scan.images[coh.outlier_panel - 1].name if coh.outlier_panel else None
    lines += [
        _("aesthetic mean  {mean}  over {n} images").format(mean=_num(rep.aesthetic_mean), n=len(rep.images)),
        _("coherence       mean {mean}  min {min}").format(mean=_num(coh.mean), min=_num(coh.min))
        + (_("  stands out: {name}").format(name=outlier) if outlier else ""),
        _("alignment mean  {mean}").format(mean=_num(rep.alignment_mean))
        + (f"  ({_alignment_why(rep)})" if rep.alignment_mean is None else ""),
        _("gate            {gate}  {why}").format(gate=result.gate, why=_gate_why(result)),
    ]
    return "\n".join(lines)


def as_json(result: FolderResult) -> dict:
    rep = result.report
    coh = rep.coherence
    return {
        "folder": str(result.folder),
        "images": [
            {"file": p.name, "aesthetic": s.aesthetic, "alignment": s.alignment}
            for p, s in zip(result.scan.images, rep.images)
        ],
        "aesthetic_mean": rep.aesthetic_mean,
        "threshold": result.threshold,
        "gate": result.gate,
        "coherence": {
            "mean": coh.mean,
            "min": coh.min,
            "outlier": result.scan.images[coh.outlier_panel - 1].name if coh.outlier_panel else None,
            "matrix": [list(r) for r in coh.matrix],
        },
        "alignment_mean": rep.alignment_mean,
        "note": rep.note,
        "not_images": [p.name for p in result.scan.not_images],
        "too_large": [p.name for p in result.scan.too_large],
        "warnings": list(result.scan.warnings),
        "scorer": rep.scorer,
    }
