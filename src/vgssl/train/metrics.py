"""Training metrics: `metrics.jsonl` (one JSON object per logged step and split), TensorBoard, a tqdm bar.

Names follow fairseq's wav2vec 2.0 logs: loss, contrastive, diversity, code_perplexity, prob_perplexity,
accuracy, temp, gnorm, lr, fraction_masked, plus audio_seconds_per_second (throughput over all ranks).
Runs with captions add the caption phase (`caption_*`), VGS+ runs the grounding phase (`vg_*`, with
`vg_collapsed_loss`, the value `vg_loss` takes when every embedding is the same), `lr_head` (the grounding
parts' learning rate) and `grad_norm/<part>` / `grad_norm/<term>/<part>` (gradient norms before clipping,
measured on logging steps only, so they are that step's, not an interval mean). Validation records carry
`best_by/<criterion>`, the score best.pt follows.
Only rank 0 writes. On resumption, records after the resumed step (written before a crash, and about to be
redone) are dropped, so the file reads as one uninterrupted run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from vgssl.atomic import atomic_write_text

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"

Split = Literal["train", "valid"]


class MetricsLogger:
    def __init__(self, run_dir: Path, *, enabled: bool, tensorboard: bool, resume_step: int) -> None:
        self.enabled = enabled
        self.path = run_dir / METRICS_FILE
        self._writer: Any = None
        if not enabled:
            return
        if resume_step > 0 and self.path.is_file():
            _truncate_after(self.path, resume_step)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(
                log_dir=str(run_dir / TENSORBOARD_DIR), purge_step=resume_step + 1 if resume_step else None
            )

    def log(self, split: Split, step: int, values: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        record = {"split": split, "step": step, **{key: float(value) for key, value in values.items()}}
        # Appending one line keeps the file valid if the process dies; a torn last line is dropped on resume.
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if self._writer is not None:
            for key, value in values.items():
                self._writer.add_scalar(f"{split}/{key}", value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # a line torn by a crash
            continue
    return records


def _truncate_after(path: Path, step: int) -> None:
    kept = [record for record in read_metrics(path) if record["step"] <= step]
    atomic_write_text(path, "".join(json.dumps(record) + "\n" for record in kept))


class IntervalMeans:
    """Means of per-step values over a logging interval."""

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def add(self, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            self._sums[key] = self._sums.get(key, 0.0) + value
            self._counts[key] = self._counts.get(key, 0) + 1

    def pop(self) -> dict[str, float]:
        means = {key: total / self._counts[key] for key, total in self._sums.items()}
        self._sums.clear()
        self._counts.clear()
        return means
