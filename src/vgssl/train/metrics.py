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
from vgssl.audio.frames import SAMPLE_RATE
from vgssl.train.gradients import collapsed_grounding_loss
from vgssl.train.grounded_step import GroundedTotals
from vgssl.train.objective import TERMS, LossWeighting, StepKind

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


# -- a step's metrics from its phases' totals ---------------------------------------------------------------


def audio_seconds(totals: dict[str, float] | None) -> float:
    """Seconds of audio (all ranks) a phase trained on; 0 for a phase the step did not run."""
    return totals["audio_samples"] / SAMPLE_RATE if totals is not None else 0.0


def ssl_metrics(totals: dict[str, float]) -> dict[str, float]:
    """fairseq's names for the totals of an SSL phase (`gradients.SSL_STATISTICS` and `PHASE_COUNTS`)."""
    count = max(totals["num_masked"], 1.0)
    micro_batches = totals["micro_batches"]
    return {
        "loss": (totals["contrastive"] + totals["diversity"]) / count,
        "contrastive": totals["contrastive"] / count,
        "diversity": totals["diversity"] / count,
        "accuracy": totals["correct"] / count,
        "code_perplexity": totals["code_perplexity"] / micro_batches,
        "prob_perplexity": totals["prob_perplexity"] / micro_batches,
        "temp": totals["temperature"] / micro_batches,
        "fraction_masked": totals["fraction_masked"] / micro_batches,
    }


def grounded_metrics(totals: GroundedTotals, kind: StepKind, weighting: LossWeighting) -> dict[str, float]:
    """A grounded step's metrics: `loss` is the weighted total; the audio-only SSL phase keeps fairseq's names
    (its loss as `ssl_loss`), the caption SSL phase has them prefixed `caption_`, the grounding loss `vg_`."""
    values = {"loss": weighting.objective_value(totals.losses), "caption_step": float(kind != "audio")}
    if totals.audio is not None:
        ssl = ssl_metrics(totals.audio)
        ssl["ssl_loss"] = ssl.pop("loss")
        values |= ssl
    if totals.captions is not None:
        values |= {f"caption_{key}": value for key, value in ssl_metrics(totals.captions).items()}
    if totals.grounding is not None:
        vg = totals.grounding
        pairs = max(vg["num_pairs"], 1.0)
        values |= {
            "vg_loss": totals.losses["vg"],
            "vg_audio_to_image": vg["audio_to_image"] / pairs,
            "vg_image_to_audio": vg["image_to_audio"] / pairs,
            "vg_accuracy_audio_to_image": vg["correct_audio_to_image"] / pairs,
            "vg_accuracy_image_to_audio": vg["correct_image_to_audio"] / pairs,
            "vg_temperature": vg["temperature"] / vg["micro_batches"],
            # vg_loss if every embedding were the same (both directions; each direction's is half).
            "vg_collapsed_loss": collapsed_grounding_loss(vg),
        }
    if weighting.adaptive:
        values |= {f"weight_{term}": weighting.weight(term) for term in TERMS}
    return values


def interval_rates(
    interval_seconds: Mapping[str, float],
    seconds_seen: Mapping[str, float],
    elapsed: float,
    *,
    caption_key: str | None,
    grounded: bool,
) -> dict[str, float]:
    """Throughput over a logging interval (all ranks' audio per second) and, for runs with captions (their
    `caption_key` in the seconds), the caption stream's share of the training audio — VGS+: the share with
    an image — over the interval and over the run so far."""
    interval_audio = sum(interval_seconds.values())
    rates = {"audio_seconds_per_second": interval_audio / elapsed}
    if caption_key is not None:
        name = "grounded_fraction" if grounded else "caption_speech_fraction"
        rates[name] = interval_seconds[caption_key] / max(interval_audio, 1e-9)
        rates[f"{name}_so_far"] = seconds_seen[caption_key] / max(sum(seconds_seen.values()), 1e-9)
    return rates


def progress_bar(total: int, initial: int, *, enabled: bool) -> Any:
    """The training steps' tqdm bar; when enabled, shown on a terminal only (`disable=None`), so batch-job
    logs do not fill with bar redraws."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc="train",
        unit="step",
        disable=None if enabled else True,
        dynamic_ncols=True,
    )
