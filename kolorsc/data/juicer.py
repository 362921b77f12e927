"""Run the style's filters through Data-Juicer's Python API and say which filter dropped what.

One Data-Juicer run (`init_configs(args=["--config", recipe])` + `DefaultExecutor(cfg).run()`)
with its tracer on: every sample a filter removes is written to `trace/sample_trace-<op>.jsonl`
(trace_num is set to the sample count, so none is left out), which attributes each drop
to its filter. Deduplicators trace only example pairs, so their drops are what is missing
after the filters. Data-Juicer's own logs go to a file in the work folder, not the terminal.

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

from kolorsc.errors import TrainingError
from kolorsc.spec.model import DataFilter

# Operators kolorsc runs, and the modules each needs beyond Data-Juicer's own requirements.
SUPPORTED_OPS = {
    "image_shape_filter": (),
    "image_aspect_ratio_filter": (),
    "image_size_filter": (),
    "image_deduplicator": ("imagededup",),
    "image_aesthetics_filter": ("aesthetics_predictor",),
}
DEDUPLICATORS = {"image_deduplicator"}
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
    if unknown:
        raise TrainingError(
            f"unsupported Data-Juicer operator(s): {', '.join(unknown)} "
            f"(kolorsc runs: {', '.join(sorted(SUPPORTED_OPS))})"
        )
    needed = set(CORE_NEEDS) | {m for f in filters for m in SUPPORTED_OPS[f.op]}
    missing = sorted(m for m in needed if importlib.util.find_spec(m) is None)
    if missing:
        raise TrainingError(
            f"Data-Juicer needs {', '.join(missing)} for this recipe and kolorsc will not install "
            f"packages at run time: pip install 'kolorsc[models]'"
        )


def recipe(ops: list[DataFilter], input_jsonl: Path, export: Path, n: int) -> dict:
    return {
        "project_name": "kolorsc-dataset",
        "dataset_path": str(input_jsonl),
        "export_path": str(export),
        "np": 1,  # a style dataset is small: worker processes cost more than they save
        "text_keys": "text",
        "image_key": "images",
        "image_special_token": "<__dj__image>",
        "open_tracer": True,
        "trace_num": max(n, 1),
        "use_cache": False,
        "process": [{f.op: {**f.args, "num_proc": 1}} for f in ops],
    }


def run(ops: list[DataFilter], samples: list[dict], work: Path) -> list[int]:
    """Run Data-Juicer over `samples` ({kolorsc_index, images, text}); return kept indices in order."""
    import yaml

    work.mkdir(parents=True, exist_ok=True)
    input_jsonl = work / "input.jsonl"
    with input_jsonl.open("w", encoding="utf-8") as f:
        for s in samples:
            f.write(json.dumps(s, ensure_ascii=False) + "\n")
    export = work / "out" / "result.jsonl"
    config = work / "recipe.yaml"
    config.write_text(yaml.safe_dump(recipe(ops, input_jsonl, export, len(samples)), allow_unicode=True), encoding="utf-8")
    with _quiet(work / "data-juicer.log"):
        from data_juicer.config import init_configs
        from data_juicer.core import DefaultExecutor

        try:
            cfg = init_configs(args=["--config", str(config)])
            DefaultExecutor(cfg).run()
        except Exception as exc:
            raise TrainingError(f"Data-Juicer failed: {type(exc).__name__}: {exc} (log: {work / 'data-juicer.log'})") from exc
    if not export.is_file():  # Data-Juicer exports nothing when no sample is left
        return []
    with export.open(encoding="utf-8") as f:
        return [json.loads(line)[ID_KEY] for line in f if line.strip()]


def attribute(ops: list[DataFilter], names: dict[int, str], kept: list[int], work: Path) -> list[OpCount]:
    """Per operator, in order: how many it kept and which it dropped (from Data-Juicer's traces)."""
    traces = {p.name: p for p in (work / "out").rglob("sample_trace-*.jsonl")}
    remaining = list(names)
    counts = []
    dedup_slots = []
    for op in ops:
        dropped: list[int] = []
        trace = traces.get(f"sample_trace-{op.op}.jsonl")
        if op.op not in DEDUPLICATORS and trace is not None:
            with trace.open(encoding="utf-8") as f:
                dropped = [json.loads(line)[ID_KEY] for line in f if line.strip()]
        if op.op in DEDUPLICATORS:
            dedup_slots.append(len(counts))
        remaining = [i for i in remaining if i not in set(dropped)]
        counts.append(OpCount(op.op, len(remaining), len(dropped), [names[i] for i in dropped]))
    # What no filter trace explains was removed by the deduplicator(s).
    unexplained = [i for i in remaining if i not in set(kept)]
    if unexplained:
        if not dedup_slots:
            raise TrainingError(f"Data-Juicer dropped {len(unexplained)} image(s) no filter traced")
        slot = dedup_slots[0]  # with one deduplicator (the usual recipe) this is exact
        counts[slot].dropped += len(unexplained)
        counts[slot].dropped_names += [names[i] for i in unexplained]
        for later in counts[slot:]:
            later.kept -= len(unexplained)
    return counts


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
