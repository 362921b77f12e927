"""Run the style's filters through Data-Juicer's Python API and say which filter dropped what.

One Data-Juicer pass per operator (`init_configs(args=["--config", recipe])` +
`DefaultExecutor(cfg).run()`), each over what the previous one kept, so what an operator
dropped is simply its input minus its output: exact for filters and deduplicators alike.
(One pass reading Data-Juicer's tracer files does not work for operators that load a model,
such as image_aesthetics_filter: datasets >= 4 runs even num_proc=1 in a worker pool, the
tracer's functools.wraps wrapper is pickled by name, the worker runs the unwrapped method,
and those drops are never traced.) Data-Juicer's imports load once per process, so an extra
pass only re-reads a style dataset's few samples. Data-Juicer's own logs go to a file in
the work folder, not the terminal.

Dependencies: importing `data_juicer.core` imports its Ray executor, which needs `ray`;
`image_deduplicator` needs `imagededup`. Data-Juicer installs a missing module with uv at run
time; kolorsc declares both in its `models` extra and checks for them first, so a run never
installs anything (and fails clearly offline instead).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from kolorsc.errors import InputError, TrainingError
from kolorsc.i18n import _
from kolorsc.spec.model import DataFilter
from kolorsc.spec.operators import SUPPORTED_OPS  # noqa: F401 - the one list, re-exported

CORE_NEEDS = ("ray",)  # data_juicer.core imports ray_executor at import time
ID_KEY = "kolorsc_index"


@dataclass
class OpCount:
    op: str
    kept: int
    dropped: int
    dropped_names: list[str]
    note: str = ""  # e.g. "skipped: aesthetic model not installed"


def check_ops(filters: tuple[DataFilter, ...]) -> None:
    unknown = [f.op for f in filters if f.op not in SUPPORTED_OPS]
    if unknown:  # `kolorsc check` refuses these first; a story built through the API meets them here
        raise InputError(
            _("unsupported Data-Juicer operator(s): {unknown} (kolorsc runs: {supported_ops})").format(
              unknown=', '.join(unknown), supported_ops=', '.join(sorted(SUPPORTED_OPS)))
        )
    needed = set(CORE_NEEDS) | {m for f in filters for m in SUPPORTED_OPS[f.op]}
    missing = sorted(m for m in needed if importlib.util.find_spec(m) is None)
    if missing:
        raise TrainingError(
            _("Data-Juicer needs {missing} for this recipe and kolorsc will not install packages at "
              "run time: pip install 'kolorsc[models]'").format(
              missing=', '.join(missing))
        )


def recipe(op: DataFilter, input_jsonl: Path, export: Path) -> dict:
    return {
        "project_name": "kolorsc-dataset",
        "dataset_path": str(input_jsonl),
        "export_path": str(export),
        "np": 1,  # a style dataset is small: worker processes cost more than they save
        "text_keys": "text",
        "image_key": "images",
        "image_special_token": "<__dj__image>",
        "open_tracer": False,
        "use_cache": False,
        "process": [{op.op: {**op.args, "num_proc": 1}}],
    }


def run(ops: list[DataFilter], samples: list[dict], names: dict[int, str], work: Path) -> tuple[list[int], list[OpCount]]:
    """Run the operators in order over `samples` ({kolorsc_index, images, text}). Returns the kept
    indices in order and, per operator, how many it kept and which it dropped."""
    remaining, counts = samples, []
    for n, op in enumerate(ops):
        kept = set(_run_one(op, remaining, work / f"{n:02d}-{op.op}")) if remaining else set()
        dropped = [s[ID_KEY] for s in remaining if s[ID_KEY] not in kept]
        remaining = [s for s in remaining if s[ID_KEY] in kept]
        counts.append(OpCount(op.op, len(remaining), len(dropped), [names[i] for i in dropped]))
    return [s[ID_KEY] for s in remaining], counts


def _run_one(op: DataFilter, samples: list[dict], work: Path) -> list[int]:
    """One Data-Juicer pass with one operator; the indices of the samples it kept."""
    import yaml

    work.mkdir(parents=True, exist_ok=True)
    input_jsonl = work / "input.jsonl"
    with input_jsonl.open("w", encoding="utf-8") as f:
        for s in samples:
            f.write(json.dumps(s, ensure_ascii=False) + "\n")
    export = work / "out" / "result.jsonl"
    config = work / "recipe.yaml"
    config.write_text(yaml.safe_dump(recipe(op, input_jsonl, export), allow_unicode=True), encoding="utf-8")
    log = work.parent / "data-juicer.log"
    with _quiet(log):
        from data_juicer.config import init_configs
        from data_juicer.core import DefaultExecutor

        try:
            cfg = init_configs(args=["--config", str(config)])
            DefaultExecutor(cfg).run()
        except Exception as exc:
            raise TrainingError(_("Data-Juicer failed in {op}: {name__}: {problem} (log: {log})").format(
                                  op=op.op, name__=type(exc).__name__, problem=exc, log=log)) from exc
    if not export.is_file():  # Data-Juicer exports nothing when no sample is left
        return []
    with export.open(encoding="utf-8") as f:
        return [json.loads(line)[ID_KEY] for line in f if line.strip()]


@contextlib.contextmanager
def _quiet(log_path: Path):
    """Send Data-Juicer's loguru sinks and its progress bars to a log file, not the terminal."""
    from data_juicer.utils import logger_utils
    from loguru import logger

    logger_utils.LOGGER_SETUP = True  # kolorsc chooses the sinks: Data-Juicer must not add its own
    logger.remove()  # every sink, loguru's default stderr one included (only Data-Juicer logs with loguru)
    with log_path.open("a", encoding="utf-8") as log:
        sink = logger.add(log, level="INFO")
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield
        finally:
            logger.remove(sink)
