"""Dataset preparation: source images -> captions -> Data-Juicer filters -> the trainer's layout.

    prepare_dataset(dataset, root, out_dir) writes, atomically,
        out_dir/train/00000.jpg ...           the kept images (original bytes)
        out_dir/train/metadata.csv            file_name,text (diffsynth's TextImageDataset layout)
        out_dir/report.json                   what each filter kept and dropped, what was skipped

    dataset_facts(dataset, root, ...) is what the build graph keys that output by: the source
    files' contents (or the ModelScope id, revision and the hub's listing of it), the
    filters and the caption rule; dataset_fingerprint is their digest.

Data-Juicer, PIL and modelscope are imported inside the functions that use them.
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kolorsc.atomic import replace_dir
from kolorsc.data.fingerprint import dataset_facts, dataset_fingerprint, modelscope_listing
from kolorsc.data.juicer import OpCount
from kolorsc.errors import InputError, TrainingError
from kolorsc.i18n import _
from kolorsc.spec.model import DataFilter, Dataset

__all__ = ["DatasetReport", "OpCount", "dataset_facts", "dataset_fingerprint", "modelscope_listing", "prepare_dataset"]

Progress = Callable[[int, int, str], None]
AESTHETIC_OP = "image_aesthetics_filter"


@dataclass
class DatasetReport:
    out_dir: Path
    source: str  # the folder, or the ModelScope id
    found: int  # images found in the source
    kept: int  # images written for training
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image, why) before filtering
    filters: list[OpCount] = field(default_factory=list)  # in recipe order
    files: list[tuple[str, str]] = field(default_factory=list)  # (written file name, source name)
    fingerprint: str = ""

    def to_json(self) -> dict:
        data = asdict(self)
        data["out_dir"] = str(self.out_dir)
        return data


def prepare_dataset(
    dataset: Dataset,
    root: Path,
    out_dir: Path,
    progress: Progress | None = None,
    *,
    models_dir: Path | None = None,
    fingerprint: str | None = None,
) -> DatasetReport:
    """Prepare the training set of `dataset` in `out_dir` (replaced atomically) and report on it.
    `fingerprint`: what the caller keys this dataset by (default: dataset_fingerprint)."""
    progress = progress or (lambda done, total, label: None)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".kolorsc-dataset-", dir=out_dir.parent))
    try:
        # 1. Read the source: every image decoded once; corrupt ones listed, never fatal.
        progress(0, 3, "reading images")
        from kolorsc.data import juicer, sources

        if dataset.source == "local":
            samples, skipped = sources.local_samples(dataset)
            where = str(dataset.path)
        elif dataset.source == "modelscope":
            rows = sources.modelscope_rows(dataset)
            samples, skipped = sources.rows_to_samples(dataset, rows, work / "staged")
            where = str(dataset.id)
        elif dataset.source == "generate":
            raise TrainingError(_("a generated dataset is rendered first (kolorsc.data.generate.generate_dataset), then "
                                  "prepared from that folder: prepare_dataset(as_local(dataset, folder), ...)"))
        else:
            raise TrainingError(_("unknown dataset source '{source}' (use local, modelscope or generate)").format(
                                  source=dataset.source))
        found = len(samples) + len(skipped)
        if dataset.max_images is not None:
            samples = samples[: dataset.max_images]
        if not samples:
            why = f"{len(skipped)} unreadable or uncaptioned" if skipped else "no images"
            error = InputError if dataset.source == "local" else TrainingError  # a local folder is the author's input
            raise error(_("dataset {where}: no usable image ({why})").format(where=where, why=why))

        # 2. Data-Juicer, with the filters the style asks for.
        progress(1, 3, "Data-Juicer filters")
        ops, notes = _runnable_ops(dataset.filters, models_dir)
        juicer.check_ops(tuple(ops))
        names = {s.index: s.name for s in samples}
        if ops:
            rows = [{juicer.ID_KEY: s.index, "images": [str(s.path)], "text": f"<__dj__image> {s.caption}"} for s in samples]
            kept_ids, counts = juicer.run(ops, rows, names, work / "dj")
        else:
            kept_ids, counts = [s.index for s in samples], []
        counts += [OpCount(op, -1, 0, [], note) for op, note in notes]
        if not kept_ids:
            last = next((c.op for c in counts if c.kept == 0), "the filters")
            raise TrainingError(_("dataset {where}: {last} removed the last images ({summary})").format(
                                  where=where, last=last, summary=_summary(counts)))

        # 3. Write the trainer's layout in the temp folder, then move it into place.
        progress(2, 3, "writing dataset")
        by_index = {s.index: s for s in samples}
        staged = work / "result"
        files = _write_layout(staged, [by_index[i] for i in kept_ids])
        report = DatasetReport(
            out_dir=out_dir, source=where, found=found, kept=len(files), skipped=skipped,
            filters=counts, files=files,
            fingerprint=fingerprint or dataset_fingerprint(dataset, root, models_dir=models_dir),
        )
        (staged / "report.json").write_text(json.dumps(report.to_json(), ensure_ascii=False, indent=2), encoding="utf-8")
        replace_dir(staged, out_dir)
        progress(3, 3, "dataset ready")
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)


def aesthetic_model_dir(models_dir: Path | None) -> Path | None:
    """The aesthetic predictor's folder when all its files are present, else None."""
    from kolorsc import models, paths
    from kolorsc.scoring import models as _scoring_models  # noqa: F401 - registers "aesthetic"

    spec = models.REGISTRY.get("aesthetic")
    if spec is None:
        return None
    folder_root = paths.models_dir(models_dir)
    return None if models.missing_files(spec, folder_root) else spec.folder(folder_root)


def _runnable_ops(filters: tuple[DataFilter, ...], models_dir: Path | None):
    """The operators to run, and (op, note) for those left out (aesthetic model absent)."""
    ops, notes = [], []
    for f in filters:
        if f.op == AESTHETIC_OP:
            folder = aesthetic_model_dir(models_dir)
            if folder is None:
                notes.append((f.op, "skipped: the aesthetic model is not installed (kolorsc models pull aesthetic)"))
                continue
            f = DataFilter(f.op, {**f.args, "hf_scorer_model": str(folder)})
        ops.append(f)
    return ops, notes


def _write_layout(folder: Path, samples) -> list[tuple[str, str]]:
    """train/<nnnnn><ext> + train/metadata.csv (file_name,text), as diffsynth's trainer reads it."""
    train = folder / "train"
    train.mkdir(parents=True)
    files = []
    with (train / "metadata.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file_name", "text"])
        for n, s in enumerate(samples):
            name = f"{n:05d}{s.path.suffix.lower()}"
            shutil.copyfile(s.path, train / name)
            writer.writerow([name, s.caption])
            files.append((name, s.name))
    return files


def _summary(counts: list[OpCount]) -> str:
    return ", ".join(f"{c.op}: kept {c.kept}, dropped {c.dropped}" for c in counts if c.kept >= 0)


def read_metadata(dataset_dir: Path) -> list[tuple[Path, str]]:
    """(image path, caption) rows of a prepared dataset, in file order."""
    csv_path = Path(dataset_dir) / "train" / "metadata.csv"
    if not csv_path.is_file():
        raise TrainingError(_("{dataset_dir} is not a prepared dataset: train/metadata.csv is missing").format(
                              dataset_dir=dataset_dir))
    with csv_path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [(csv_path.parent / r["file_name"], r["text"]) for r in rows]
