"""Where everything of a study lives under its output directory DIR, so a person can browse it.

DIR/report.md, report.json, *.png      the report, at the top
DIR/study.json                          the settings the results depend on (checked on re-runs)
DIR/corpus/                             the corpus, when the study built it
DIR/runs/<run>/train.yaml               the run's full training config, as given to `vgssl train`
DIR/runs/<run>/train/                   the trainer's run directory: config.yaml, train.log,
                                        metrics.jsonl, selection.json, checkpoints/{best,last}.pt
DIR/runs/<run>/launch.log               everything the training process printed (errors included)
DIR/runs/<run>/results/                 phone_abx_<lang>.json/.csv (test items), phone_abx_<lang>_valid.json/
                                        .csv (valid items: they choose the layer), language_abx.json/.csv,
                                        retrieval.json
DIR/runs/<run>/evaluate.log             the evaluation's error, when it failed
DIR/runs/<run>/status.json              state, wall time and attempts of training and evaluation
DIR/baselines/<name>/results/           the same results for mfcc, mfcc-raw, fbank, random-init
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelPaths:
    """The files of one evaluated model: a trained run or a baseline."""

    root: Path

    @property
    def train_yaml(self) -> Path:
        return self.root / "train.yaml"

    @property
    def train_dir(self) -> Path:
        return self.root / "train"

    @property
    def launch_log(self) -> Path:
        return self.root / "launch.log"

    @property
    def features(self) -> Path:
        return self.root / "features"

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def evaluate_log(self) -> Path:
        return self.root / "evaluate.log"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    def phone_abx(self, language: str) -> Path:
        return self.results / f"phone_abx_{language}.json"

    def valid_phone_abx(self, language: str) -> Path:
        """Phone ABX on the valid items, on which the report chooses the layer of `language`."""
        return self.results / f"phone_abx_{language}_valid.json"

    @property
    def language_abx(self) -> Path:
        return self.results / "language_abx.json"

    @property
    def retrieval(self) -> Path:
        return self.results / "retrieval.json"


@dataclass(frozen=True)
class StudyLayout:
    out: Path

    def run(self, name: str) -> ModelPaths:
        return ModelPaths(self.out / "runs" / name)

    def baseline(self, name: str) -> ModelPaths:
        return ModelPaths(self.out / "baselines" / name)

    @property
    def settings(self) -> Path:
        return self.out / "study.json"

    @property
    def report_md(self) -> Path:
        return self.out / "report.md"

    @property
    def report_json(self) -> Path:
        return self.out / "report.json"

    def figure(self, name: str) -> Path:
        return self.out / f"{name}.png"

    def relative(self, path: Path) -> str:
        """A path as the report links it: relative to DIR."""
        return path.relative_to(self.out).as_posix()
