"""Shared by `recipe_sweep.py` and `learning_curve.py`: train one run of a study preset, then measure it.

A probe is one run of a study config's grid (`--objective ssl-a|vgs+`, `--language en`), built exactly as
`vgssl study` builds it (same merge of `train`, `grounded` and the study-owned keys, same audio budget), plus
dotted `key=value` overrides. It trains in a child `vgssl train` process and is measured by

* phone ABX across speaker, within context, triphone items, every layer, on the VALID items (to choose the
  layer) and on the TEST items (reported at the valid-chosen layer);
* for VGS+ runs, test speech→image R@10 against its chance level.

Baselines (normalised MFCC, random init) are measured the same way, so every number is comparable.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vgssl.study.config import load_study_config
from vgssl.study.corpus import StudyCorpus, train_hours
from vgssl.study.grid import Run
from vgssl.study.layout import StudyLayout
from vgssl.study.training import run_train_dict

CONDITION = ("across", "within")  # speaker, context


@dataclass
class Probe:
    study_config: Path
    corpus: Path
    out: Path
    objective: str = "ssl-a"
    language: str = "en"
    seed: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)
    # The run's training languages; empty: `language` alone (a bilingual run: ("en", "fr")).
    languages: tuple[str, ...] = ()

    def train_config(self) -> dict[str, Any]:
        study = load_study_config(self.study_config)
        corpus = StudyCorpus(path=self.corpus, languages=tuple(study.config.languages), card=None)
        min_seconds = study.config.train.get("data", {}).get("min_seconds", 1.0)
        hours = min(train_hours(corpus, tuple(study.config.languages), min_seconds=min_seconds).values())
        languages = self.languages or (self.language,)
        name = f"{self.objective}_{'+'.join(languages)}_seed{self.seed}"
        run = Run(objective=self.objective, languages=languages, seed=self.seed, name=name)
        layout = StudyLayout(self.out)
        raw = run_train_dict(study, run, corpus, layout.run(run.name), hours=hours)
        raw["run_dir"] = str(self.out / "run")
        for dotted, value in self.overrides.items():
            target = raw
            *parents, last = dotted.split(".")
            for key in parents:
                target = target.setdefault(key, {})
            target[last] = value
        return raw

    def train(self) -> float:
        """Train (or resume) the run; returns wall seconds spent training in this call."""
        self.out.mkdir(parents=True, exist_ok=True)
        config = self.out / "train.yaml"
        config.write_text(yaml.safe_dump(self.train_config(), sort_keys=False), encoding="utf-8")
        start = time.perf_counter()
        with (self.out / "train.out").open("a", encoding="utf-8") as log:
            subprocess.run(
                [sys.executable, "-m", "vgssl", "train", str(config)],
                stdout=log, stderr=subprocess.STDOUT, check=True,
            )  # fmt: skip
        return time.perf_counter() - start


def add_probe_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every probe script takes: the study preset, the corpus, the output and the language."""
    parser.add_argument("--study", type=Path, default=Path(__file__).parents[1] / "configs" / "demo.yaml")
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--language", default="en")


def write_tables(rows: list[dict[str, Any]], columns: list[str], stem: Path) -> list[str]:
    """`stem`.csv and `stem`.md of `rows`; returns the markdown lines."""
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    stem.with_suffix(".csv").write_text(table.getvalue())
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return lines


def parse_value(text: str) -> Any:
    return yaml.safe_load(text)


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"override {pair!r} is not key=value")
        result[key] = parse_value(value)
    return result


def phone_abx_by_layer(spec: str, corpus: Path, language: str, work: Path) -> dict[str, dict[int, float]]:
    """{"valid": {layer: error %}, "test": {...}} across speaker, within context, triphone items."""
    return phone_abx_conditions(spec, corpus, language, work, speakers=(CONDITION[0],))["errors"][
        CONDITION[0]
    ]


def phone_abx_conditions(
    spec: str, corpus: Path, language: str, work: Path, *, speakers: tuple[str, ...] = ("across", "within")
) -> dict[str, Any]:
    """Phone ABX (triphone items, within context) of every layer on the valid and test items:
    {"errors": {speaker: {split: {layer: error %}}}, "cells": {speaker: {layer: {"A|B": error %}}}} with
    the test split's collapsed cells (phone pairs), for bootstrapping."""
    import torch

    from vgssl.data.manifest import read_manifest
    from vgssl.evaluate.abx import run_phone_abx
    from vgssl.evaluate.features import Utterance, extract_features, load_feature_model

    model = load_feature_model(spec)
    layers = list(range(model.num_layers()))
    errors: dict[str, dict[str, dict[int, float]]] = {speaker: {} for speaker in speakers}
    cells: dict[str, dict[int, dict[str, float]]] = {speaker: {} for speaker in speakers}
    for split in ("valid", "test"):
        items = corpus / "items" / f"{language}_{split}_triphone.item"
        if not items.is_file():
            continue
        manifest = read_manifest(corpus / "manifests" / f"{language}_{split}.tsv")
        utterances = [Utterance(e.key, manifest.audio_path(e), e.num_samples) for e in manifest.entries]
        features = work / f"features-{split}"
        extract_features(
            model, utterances, features, layers=layers, overwrite=True,
            batch_seconds=60.0, device=torch.device("cpu"), progress=False,
        )  # fmt: skip
        result = run_phone_abx(
            features, items, layers=layers, speakers=list(speakers), contexts=[CONDITION[1]],
            max_size_group=10, max_x_across=5, seed=0, device=torch.device("cpu"), progress=False,
        )  # fmt: skip
        for score in result.scores:
            errors[score.speaker].setdefault(split, {})[score.layer] = score.error
            if split == "test":
                pairs = zip(score.cells.a, score.cells.b, score.cells.error, strict=True)
                cells[score.speaker][score.layer] = {f"{a}|{b}": error for a, b, error in pairs}
    return {"errors": errors, "cells": cells}


def chosen(errors: dict[str, dict[int, float]]) -> tuple[int, float, float]:
    """(layer chosen on valid, its test error, the best test error over layers)."""
    select = errors.get("valid") or errors["test"]
    layer = min(select, key=select.get)
    return layer, errors["test"][layer], min(errors["test"].values())


def retrieval_r10(
    run: Path, corpus: Path, language: str, work: Path, *, checkpoint: Path | None = None
) -> tuple[float, float]:
    """(speech→image R@10 %, chance %) on the test captions of `language` (the run's best or `checkpoint`)."""
    import argparse

    from vgssl.evaluate import retrieval_command

    parser = argparse.ArgumentParser()
    retrieval_command.add_arguments(parser)
    out = work / "retrieval.json"
    options = [str(checkpoint or run), str(corpus / "captions_test.json"), "--out", str(out), "--overwrite"]
    options += ["--languages", language, "--device", "cpu"]
    config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    if (config.get("grounding") or {}).get("image_input") == "features":
        options += ["--image-features", str(config["captions"]["image_features"])]
    with contextlib.redirect_stdout(io.StringIO()):
        retrieval_command.run(parser.parse_args(options))
    score = json.loads(out.read_text(encoding="utf-8"))["languages"][language]
    return score["speech_to_image"]["R@10"], score["chance"]["speech_to_image"]["R@10"]


def last_metrics(run: Path) -> dict[str, Any]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]
    train = [r for r in records if r.get("split") == "train"]
    return train[-1] if train else {}
