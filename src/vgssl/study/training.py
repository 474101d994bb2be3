"""Training the grid: one validated training config per run, each trained by `vgssl train` in its own process.

A run's config is the study's `train` section, then (VGS+ runs) its `grounded` section — or, for SSL-A runs
under the default `control: caption-speech` in a study with VGS+ runs, that section's `captions` and
`objective` without `grounding` —, then the run's `run_overrides`, then what the study owns: the run
directory, the seed, the corpus files of the run's languages (manifests; caption files for VGS+ and the
control; valid captions and, for `image_input: features` without `captions.image_features`, the corpus's
`image_features/` for VGS+ only) and, unless the config sets it, the audio budget `data.hours`, the
same for every run (the smallest language's training speech), so that with the default `matched-total`
mixture a bilingual run hears as much audio as a monolingual one, half per language.

The caption-speech control makes an SSL-A run hear exactly the caption utterances the VGS+ run of the same
languages and seed hears, in the same batches and at the same steps, without the images
(`vgssl.train.config`): a grounding gain then measures the images, not the extra speech.
`control_statement` says which control a study ran, for the report.

Each run trains in a child process (`python -m vgssl train`, or `torchrun --standalone` for several
processes): a run that crashes, even hard, cannot take the grid down, and the trainer's own resumption makes
an interrupted run continue where its last checkpoint left off. The child's output goes to the run's
`launch.log`; a progress bar follows the steps the trainer writes to `metrics.jsonl`.
"""

from __future__ import annotations

import copy
import os
import shlex
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from vgssl.atomic import atomic_write_text
from vgssl.errors import VgsslError
from vgssl.study.config import (
    CONTROL_SECTIONS,
    GROUNDED_SECTIONS,
    STUDY_OWNED_TRAIN_KEYS,
    Control,
    StudyConfig,
    StudyFile,
    nested_value,
)
from vgssl.study.corpus import StudyCorpus
from vgssl.study.grid import Run
from vgssl.study.layout import ModelPaths, StudyLayout
from vgssl.train.config import TrainConfig
from vgssl.train.metrics import METRICS_FILE, read_metrics
from vgssl.yaml_config import validate_config

POLL_SECONDS = 1.0
ERROR_MARKER = "vgssl train: error:"
_CORPUS_FILE_ERRORS = ("file_not_found", "dir_not_found")
CORPUS_KEYS = (("data",), ("captions",))  # training-config sections that name corpus files


@dataclass(frozen=True)
class RunPlan:
    run: Run
    paths: ModelPaths
    config: TrainConfig


def _merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = _merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def run_train_dict(
    study: StudyFile, run: Run, corpus: StudyCorpus, paths: ModelPaths, *, hours: float | None
) -> dict[str, Any]:
    """The run's training config before validation (see the module docstring for the merge order)."""
    config = study.config
    hears_captions = run.objective == "vgs+" or _has_control(config)
    raw = _merged(config.train, _run_sections(config, run))
    raw = _merged(raw, config.run_overrides.get(run.name, {}))
    raw["run_dir"] = str(paths.train_dir)
    raw["seed"] = run.seed
    data = raw.setdefault("data", {})
    data["train"] = [{"manifest": str(corpus.manifest(language, "train"))} for language in run.languages]
    valid = [corpus.manifest(language, "valid") for language in run.languages]
    if corpus.build_spec is not None or all(path.is_file() for path in valid):
        data["valid"] = [{"manifest": str(path)} for path in valid]
    data.setdefault("mixture", "matched-total")
    if hours is not None:
        data.setdefault("hours", hours)
    if run.objective == "vgs+":
        raw.setdefault("grounding", {})
    if hears_captions:
        captions = raw.setdefault("captions", {})
        captions["train"] = [{"captions": str(corpus.captions("train"))}]
        if run.objective == "vgs+":  # retrieval on the valid captions needs the grounding branch
            captions["valid"] = {"captions": str(corpus.captions("valid"))}
            image_input = raw["grounding"].get("image_input")
            if image_input == "features" and captions.get("image_features") is None:
                # The built-in corpus ships features of a frozen pretrained image encoder (`vgssl synth`).
                captions["image_features"] = str(corpus.image_features)
    return raw


def _run_sections(config: StudyConfig, run: Run) -> dict[str, Any]:
    """The `grounded` sections a run gets: all for VGS+, all but grounding for the control, else none."""
    if run.objective == "vgs+":
        return copy.deepcopy(config.grounded)
    if _has_control(config):
        return {
            key: copy.deepcopy(value) for key, value in config.grounded.items() if key in CONTROL_SECTIONS
        }
    return {}


def _has_control(config: StudyConfig) -> bool:
    """Whether SSL-A runs hear the caption speech: the control is on and there are VGS+ runs to match."""
    return config.control == "caption-speech" and "vgs+" in config.objectives


def run_control(config: TrainConfig) -> Control | None:
    """What a run's training config makes it: "caption-speech" (the control: caption speech without
    images), "none" (an audio-only run without caption speech), or None for a grounded (VGS+) run."""
    if config.is_grounded:
        return None
    return "caption-speech" if config.is_caption_control else "none"


def control_statement(study: StudyFile) -> str:
    """One sentence for the report: which control the SSL-A runs of this study had."""
    if _has_control(study.config):
        return (
            "Control: every SSL-A run also heard the caption speech of the VGS+ run with the same training "
            "languages and seed (the same selected caption utterances, in the same batches and at the same "
            "steps), without the images, so the only difference between SSL-A and VGS+ is the image "
            "(`control: caption-speech`)."
        )
    if "vgs+" not in study.config.objectives:
        return "Control: none needed; the study has no VGS+ runs, and its SSL-A runs heard no caption speech."
    return (
        "Control: none. SSL-A runs heard no caption speech, so a grounding gain mixes the effect of the "
        "images with that of the extra caption speech VGS+ runs hear (`control: none`; the default "
        "`caption-speech` removes that confound)."
    )


def _check_overrides(study: StudyFile, runs: Sequence[Run]) -> list[str]:
    names = [run.name for run in runs]
    problems = []
    for name, override in study.config.run_overrides.items():
        if name not in names:
            problems.append(
                study.problem(
                    ("run_overrides", name), f"no run is named {name!r}; the runs are {', '.join(names)}"
                )
            )
        for keys in STUDY_OWNED_TRAIN_KEYS:
            if nested_value(override, keys) is not None:
                problems.append(
                    study.problem(("run_overrides", name, *keys), "set by the study for each run; remove it")
                )
    return problems


def _source_section(run: Run, location: tuple[Any, ...], override: Mapping[str, Any]) -> tuple[str, ...]:
    """Where in the study config the key at `location` of a run's training config came from."""
    if any(nested_value(override, location[:end]) is not None for end in range(1, len(location) + 1)):
        return ("run_overrides", run.name)
    if location and location[0] in GROUNDED_SECTIONS:
        return ("grounded",)
    return ("train",)


def _validate(
    study: StudyFile, run: Run, raw: dict[str, Any], *, corpus_built: bool
) -> tuple[TrainConfig | None, list[str]]:
    try:
        return validate_config(TrainConfig, raw, base_dir=study.path.parent), []
    except ValidationError as error:
        problems = []
        override = study.config.run_overrides.get(run.name, {})
        for problem in error.errors():
            location = tuple(problem["loc"])
            if not corpus_built and problem["type"] in _CORPUS_FILE_ERRORS and location[:1] in CORPUS_KEYS:
                continue  # the corpus files appear when the study builds the corpus
            prefix = _source_section(run, location, override)
            # A shared section's problem reads the same for every run it breaks, so it is listed once.
            problems.append(study.problem((*prefix, *location), problem["msg"]))
        return None, problems


def plan_runs(
    study: StudyFile, runs: Sequence[Run], corpus: StudyCorpus, layout: StudyLayout, *, hours: float | None
) -> list[RunPlan]:
    """Every run's validated training config; raise `StudyConfigError` listing every problem first.

    Before the corpus is built its manifests do not exist: the configs are checked for everything else and
    no plan is returned.
    """
    corpus_built = corpus.build_spec is None
    problems = _check_overrides(study, runs)
    plans = []
    for run in runs:
        paths = layout.run(run.name)
        raw = run_train_dict(study, run, corpus, paths, hours=hours)
        config, found = _validate(study, run, raw, corpus_built=corpus_built)
        problems += [problem for problem in found if problem not in problems]
        if config is not None:
            plans.append(RunPlan(run, paths, config))
    if problems:
        raise study.fail(problems)
    return plans if corpus_built else []


def write_train_yaml(plan: RunPlan) -> None:
    """The full, resolved config the trainer reads (absolute paths, every default spelled out)."""
    header = f"# written by `vgssl study` for run {plan.run.name}; edit the study config, not this file\n"
    body = yaml.safe_dump(plan.config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    atomic_write_text(plan.paths.train_yaml, header + body)


def launch_command(train_yaml: Path, *, nproc_per_node: int) -> list[str]:
    if nproc_per_node == 1:
        return [sys.executable, "-m", "vgssl", "train", str(train_yaml)]
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc_per_node}",
        "-m", "vgssl", "train", str(train_yaml),
    ]  # fmt: skip


def logged_step(train_dir: Path) -> int:
    """The last training step the trainer logged (0 before the first log)."""
    path = train_dir / METRICS_FILE
    if not path.is_file():
        return 0
    return max((record["step"] for record in read_metrics(path) if record.get("split") == "train"), default=0)


def hours_seen(train_dir: Path) -> dict[str, float] | None:
    """Training audio heard so far over all ranks, in hours: {"audio": audio-only, "captions": with an image},
    and for the caption-speech control also "caption_speech" (caption speech heard without images).

    Read from the last checkpoint, which the trainer writes at the end of every run; None before it exists
    or when the checkpoint does not count them.
    """
    import torch

    from vgssl.train.checkpoint import last_checkpoint_path

    path = last_checkpoint_path(train_dir)
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)  # mmap: tensors stay on disk
    seconds = state.get("seconds_seen")
    return None if seconds is None else {source: value / 3600 for source, value in seconds.items()}


PR_SET_PDEATHSIG = 1  # linux/prctl.h


class TrainingFailedError(VgsslError):
    """The training process of a run exited with an error; the message is the trainer's own."""


def die_with_parent(parent: int) -> Callable[[], None] | None:
    """A `preexec_fn` (Linux): the child asks the kernel for SIGTERM when its parent dies, so a trainer never
    outlives a killed `vgssl study`, even on SIGKILL, which runs no clean-up of ours. None elsewhere.

    libc is loaded here, in the parent: between fork and exec the child may only call what is ready (an
    import there can fail under threads)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import signal

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    term = int(signal.SIGTERM)

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, term, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request took effect
            os.kill(os.getpid(), term)

    return arm


@dataclass(frozen=True)
class Slot:
    """Where one of several runs trained at once goes: its environment (threads, visible GPUs) and the line
    of its progress bar."""

    index: int
    environment: dict[str, str]
    stop: threading.Event = field(default_factory=threading.Event)  # set: stop the trainer, raise interrupt


def training_slots(*, parallel_runs: int, nproc_per_node: int, gpus: int) -> list[Slot]:
    """The `parallel_runs` slots: GPUs split into disjoint groups of `nproc_per_node` when there are any,
    else the CPU cores shared out as threads. One slot changes nothing in the environment."""
    if parallel_runs == 1:
        return [Slot(0, {})]
    if gpus:
        if gpus < parallel_runs * nproc_per_node:
            raise TrainingFailedError(
                f"launch.parallel_runs={parallel_runs} × nproc_per_node={nproc_per_node} needs "
                f"{parallel_runs * nproc_per_node} GPUs, {gpus} are visible; lower launch.parallel_runs"
            )
        return [
            Slot(
                i,
                {
                    "CUDA_VISIBLE_DEVICES": ",".join(
                        str(i * nproc_per_node + g) for g in range(nproc_per_node)
                    )
                },
            )
            for i in range(parallel_runs)
        ]
    threads = max(1, (os.cpu_count() or 1) // (parallel_runs * nproc_per_node))
    return [Slot(i, {"OMP_NUM_THREADS": str(threads)}) for i in range(parallel_runs)]


def train_run(plan: RunPlan, *, nproc_per_node: int, progress: bool, slot: Slot | None = None) -> None:
    """Train (or resume) one run in a child process; the child is stopped if this process is interrupted."""
    from tqdm import tqdm

    write_train_yaml(plan)
    command = launch_command(plan.paths.train_yaml, nproc_per_node=nproc_per_node)
    slot = slot or Slot(0, {})
    with plan.paths.launch_log.open("a", encoding="utf-8") as log:
        settings = "".join(f"{key}={value} " for key, value in sorted(slot.environment.items()))
        log.write(f"=== {datetime.now(UTC).isoformat(timespec='seconds')} {settings}{shlex.join(command)}\n")
        log.flush()
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent(os.getpid()),
            env={**os.environ, **slot.environment},
        )
        bar = tqdm(
            total=plan.config.max_steps,
            initial=logged_step(plan.paths.train_dir),
            desc=f"{plan.run.label}: training",
            unit="step",
            leave=False,
            disable=not progress,
            position=slot.index,
        )
        try:
            while True:
                try:
                    returncode = process.wait(timeout=POLL_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    if slot.stop.is_set():  # the study was interrupted in another thread
                        raise KeyboardInterrupt from None
                    bar.update(logged_step(plan.paths.train_dir) - bar.n)
        finally:
            bar.close()
            if process.poll() is None:  # interrupted here: do not leave the trainer running
                process.terminate()
                process.wait()
    if returncode != 0:
        raise TrainingFailedError(failure_summary(plan.paths.launch_log, returncode))


def failure_summary(log: Path, returncode: int) -> str:
    """The trainer's error message from the end of its log, or its last line (a traceback's exception)."""
    text = log.read_text(encoding="utf-8", errors="replace")
    attempt = text[text.rfind("\n=== ") + 1 :]  # this attempt only
    if ERROR_MARKER in attempt:
        return attempt[attempt.rfind(ERROR_MARKER) + len(ERROR_MARKER) :].strip()
    lines = [line for line in attempt.splitlines() if line.strip()]
    last = lines[-1].strip() if len(lines) > 1 else "no output"
    return f"exit status {returncode}: {last}"
