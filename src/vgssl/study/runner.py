"""`run_study`: the whole study in stages, one progress line each, resumable at every stage.

Stages: the corpus (found or built), then every run's training and, right after it, its evaluation, then
the baselines, then the report. With `launch.parallel_runs` > 1 the runs share the machine's slots, the
longest first, each trained in its slot and evaluated there in a process of its own (`slot_process`), so
evaluation overlaps the other slots' training. Everything is checked before the first stage (config,
languages against the corpus, every run's training config), so a mistake costs seconds, not a trained grid.
A run whose training or evaluation fails is recorded as failed in its `status.json` and the study goes on;
re-running the study retries it, skips what is done and resumes what was interrupted.
"""

from __future__ import annotations

import functools
import json
import os
import queue
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from vgssl.atomic import atomic_write_json, atomic_write_text
from vgssl.evaluate.results import RunTag
from vgssl.locks import exclusive_lock
from vgssl.study.config import EvaluationSection, StudyConfigError, StudyFile, load_study_config
from vgssl.study.corpus import StudyCorpus, build_if_missing, locate_corpus, study_languages, train_hours
from vgssl.study.evaluation import (
    RANDOM_INIT_CHECKPOINT,
    ModelToEvaluate,
    evaluate_model,
    evaluate_retrieval,
    write_random_init,
)
from vgssl.study.grid import enumerate_runs
from vgssl.study.layout import ModelPaths, StudyLayout
from vgssl.study.progress import StageLog, format_duration
from vgssl.study.report import write_report
from vgssl.study.slot_process import SlotProcessError, run_in_slot
from vgssl.study.status import read_status, write_status
from vgssl.study.training import (
    RunPlan,
    Slot,
    TrainingFailedError,
    logged_step,
    plan_runs,
    train_run,
    training_slots,
)


@dataclass(frozen=True)
class StudyOutcome:
    report: Path
    failed: list[str]  # what failed: "vgs+ en: training", "mfcc: evaluation", ...


def run_study(
    config_path: str | Path, out: str | Path, *, progress: bool = True, write: Callable[[str], None] = print
) -> StudyOutcome:
    """Train, evaluate and report the study of `config_path` into `out` (see the module docstring)."""
    study = load_study_config(config_path)
    config = study.config
    layout = StudyLayout(Path(out).absolute())
    corpus = locate_corpus(study, layout.out)
    languages = study_languages(study, corpus)
    runs = enumerate_runs(
        objectives=config.objectives, languages=languages, seeds=config.seeds, pairwise=config.pairwise
    )
    plan_runs(study, runs, corpus, layout, hours=None)  # every config checked before the corpus build
    # One study per OUT: a second `vgssl study` on it fails at once, naming the PID of the first.
    with exclusive_lock(layout.out, job="study"):
        layout.out.mkdir(parents=True, exist_ok=True)
        _check_settings(layout, study, corpus)
        write(f"study {study.path}: {len(runs)} runs on {', '.join(languages)} -> {layout.out}")
        stages = StageLog(total=2 * len(runs) + 3, write=write)
        failed: list[str] = []

        started = time.perf_counter()
        was_missing = corpus.build_spec is not None
        corpus = build_if_missing(
            corpus, workers=config.corpus.workers or os.cpu_count() or 1, progress=progress
        )
        took = format_duration(time.perf_counter() - started)
        stages.line("corpus", f"built {corpus.path} in {took}" if was_missing else f"using {corpus.path}")

        hours = _matched_hours(study, corpus, languages)
        plans = plan_runs(study, runs, corpus, layout, hours=hours)
        slots = _slots(study)
        # Each run is evaluated right after its training, in its slot; with several slots the longest runs
        # go first and the (short) baselines last, so that no slot waits at the end.
        separate = len(slots) > 1  # evaluate in a process of the slot's, beside the other slots' work
        ordered = sorted(plans, key=_expected_cost, reverse=True) if separate else plans
        jobs: list[Callable[[Slot], list[str]]] = [
            functools.partial(_train_and_evaluate, plan, corpus, study, stages, progress, separate)
            for plan in ordered
        ]
        jobs.append(
            functools.partial(_baselines, study, corpus, layout, languages, stages, progress, separate)
        )
        for job_failed in _in_slots(jobs, slots):
            failed += job_failed

        started = time.perf_counter()
        report = write_report(study, corpus, layout, plans, languages, hours=hours)
        stages.line("report", f"written in {format_duration(time.perf_counter() - started)}: {report}")
        return StudyOutcome(report=report, failed=failed)


def _check_settings(layout: StudyLayout, study: StudyFile, corpus: StudyCorpus) -> None:
    """Refuse to mix results of other evaluation settings or of another corpus in one study directory.

    The configured valid items (`corpus.valid_items`) count too; a study directory from before they were
    recorded has no valid results to mix up, so it is accepted and recorded.
    """
    current = {
        "corpus": str(corpus.path),
        "evaluation": study.config.evaluation.model_dump(mode="json"),
        "valid_items": {language: str(path) for language, path in sorted(corpus.valid_items.items())},
    }
    if layout.settings.is_file():
        previous = json.loads(layout.settings.read_text(encoding="utf-8"))
        previous.setdefault("valid_items", current["valid_items"])  # not recorded before
        changed = [key for key in current if previous.get(key) != current[key]]
        if changed:
            raise StudyConfigError(
                f"{layout.out} holds a study made with another {' and '.join(changed)} section "
                f"({layout.settings}), whose results would not be comparable. Use another --out, or delete "
                f"{layout.out}/runs/*/results and {layout.out}/baselines to evaluate again."
            )
    atomic_write_json(layout.settings, {**current, "config": str(study.path.resolve())})


def _matched_hours(study: StudyFile, corpus: StudyCorpus, languages: Sequence[str]) -> float | None:
    """The one audio budget of every run: None when `train.data.hours` sets it, else the smallest language's
    training speech (what the trainer keeps of it)."""
    data = study.config.train.get("data", {})
    if "hours" in data:
        return None
    min_seconds = data.get("min_seconds", 1.0)
    return min(train_hours(corpus, tuple(languages), min_seconds=min_seconds).values())


def _attempt(
    paths: ModelPaths,
    stage: Literal["training", "evaluation"],
    work: Callable[[], str],
    *,
    traceback_file: Path | None,
) -> tuple[bool, str]:
    """Run one stage of a model and record it in the model's status.json; return (succeeded, message)."""
    status = read_status(paths.status)
    stage_status = getattr(status, stage)
    stage_status.state, stage_status.attempts = "running", stage_status.attempts + 1
    write_status(paths.status, status)
    started = time.perf_counter()
    try:
        message = work()
        stage_status.state, stage_status.error = "done", None
        return True, message
    except KeyboardInterrupt:
        stage_status.state = "interrupted"
        raise
    except Exception as error:  # a failing model must not stop the study: record why and go on
        own = isinstance(error, (TrainingFailedError, SlotProcessError))  # their message says it all
        stage_status.state, stage_status.error = (
            "failed",
            str(error) if own else f"{type(error).__name__}: {error}",
        )
        if traceback_file is not None:
            child = getattr(error, "child_traceback", None)  # the one that says where it failed
            atomic_write_text(traceback_file, child or traceback.format_exc())
        return False, stage_status.error
    finally:
        stage_status.wall_seconds += time.perf_counter() - started
        write_status(paths.status, status)


def _slots(study: StudyFile) -> list[Slot]:
    launch = study.config.launch
    gpus = _visible_gpus() if launch.parallel_runs > 1 else 0
    return training_slots(parallel_runs=launch.parallel_runs, nproc_per_node=launch.nproc_per_node, gpus=gpus)


def _expected_cost(plan: RunPlan) -> tuple[int, int, int]:
    """Grounded runs cost most per step (their caption steps add the speech–image branch), then bilingual
    ones (validation and evaluation in two languages)."""
    return plan.run.objective == "vgs+", len(plan.run.languages), plan.config.max_steps


def _in_slots(jobs: Sequence[Callable[[Slot], list[str]]], slots: Sequence[Slot]) -> Iterator[list[str]]:
    """Run every job, as many at once as there are slots (each with a slot of its own), in order; yield
    what each job says failed, as it finishes."""
    if len(slots) == 1:
        for job in jobs:
            yield job(slots[0])
        return
    free: queue.SimpleQueue[Slot] = queue.SimpleQueue()
    for slot in slots:
        free.put(slot)

    def in_a_slot(job: Callable[[Slot], list[str]]) -> list[str]:
        slot = free.get()
        try:
            return job(slot)
        finally:
            free.put(slot)

    # Threads only wait for their children (trainer, evaluation); the work is in those processes.
    with ThreadPoolExecutor(max_workers=len(slots), thread_name_prefix="vgssl-run") as pool:
        futures = [pool.submit(in_a_slot, job) for job in jobs]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BaseException:  # interrupted: stop every child and start no other
            for future in futures:
                future.cancel()
            for slot in slots:
                slot.stop.set()
            raise


def _train_and_evaluate(
    plan: RunPlan,
    corpus: StudyCorpus,
    study: StudyFile,
    stages: StageLog,
    progress: bool,
    separate_process: bool,
    slot: Slot,
) -> list[str]:
    """Train one run, then evaluate it (in a process of the slot's when `separate_process`); return what
    failed."""
    label = plan.run.label
    ok, message = _train(plan, study, progress, slot)
    stages.line(label, message)
    if not ok:
        stages.line(label, "evaluation not possible (training failed)")
        return [f"{label}: training"]
    ok, message = _evaluate_run(plan, corpus, study, progress, slot if separate_process else None)
    stages.line(label, message)
    return [] if ok else [f"{label}: evaluation"]


def _visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _train(plan: RunPlan, study: StudyFile, progress: bool, slot: Slot) -> tuple[bool, str]:
    """Train one run unless it is done; return (trained, what to say about it)."""
    if read_status(plan.paths.status).training.state == "done" and _same_config(plan):
        return True, f"training skipped (done: {logged_step(plan.paths.train_dir)} steps)"
    plan.paths.root.mkdir(parents=True, exist_ok=True)

    def work() -> str:
        train_run(plan, nproc_per_node=study.config.launch.nproc_per_node, progress=progress, slot=slot)
        return f"{logged_step(plan.paths.train_dir)} steps"

    started = time.perf_counter()
    ok, message = _attempt(plan.paths, "training", work, traceback_file=None)
    took = format_duration(time.perf_counter() - started)
    if ok:
        return True, f"training done in {took} ({message})"
    return False, f"training FAILED after {took}: {message.splitlines()[0]} (see {plan.paths.launch_log})"


def _same_config(plan: RunPlan) -> bool:
    """Whether the run was trained with the config it would get now (else the trainer must decide)."""
    if not plan.paths.train_yaml.is_file():
        return False
    saved = yaml.safe_load(plan.paths.train_yaml.read_text(encoding="utf-8"))
    return saved == plan.config.model_dump(mode="json")


def _evaluate(
    model: ModelToEvaluate,
    corpus: StudyCorpus,
    study: StudyFile,
    progress: bool,
    *,
    retrieval: bool = False,
    slot: Slot | None = None,
) -> tuple[bool, str]:
    """Write the model's missing results, here or in a process of `slot`'s; return (succeeded, what to say
    about it)."""
    settings = study.config.evaluation
    wants_retrieval = retrieval and not model.paths.retrieval.is_file()
    if not model.pending(corpus, settings) and not wants_retrieval:
        return True, "evaluation skipped (results exist)"
    work = functools.partial(_write_results, model, corpus, settings, wants_retrieval, progress=progress)
    if slot is not None:  # its progress bars would tangle with the other slots'
        work = functools.partial(run_in_slot, functools.partial(work, progress=False), slot)
    started = time.perf_counter()
    ok, message = _attempt(model.paths, "evaluation", work, traceback_file=model.paths.evaluate_log)
    took = format_duration(time.perf_counter() - started)
    if ok:
        return True, f"evaluation done in {took} ({message})"
    return False, f"evaluation FAILED after {took}: {message} (see {model.paths.evaluate_log})"


def _write_results(
    model: ModelToEvaluate,
    corpus: StudyCorpus,
    settings: EvaluationSection,
    retrieval: bool,
    *,
    progress: bool,
) -> str:
    written = evaluate_model(model, corpus, settings, progress=progress)
    if retrieval:
        evaluate_retrieval(model, corpus, device=settings.device)
        written.append(model.paths.retrieval)
    return ", ".join(path.stem for path in written)


def _evaluate_run(
    plan: RunPlan, corpus: StudyCorpus, study: StudyFile, progress: bool, slot: Slot | None
) -> tuple[bool, str]:
    run = plan.run
    captions = plan.config.captions
    model = ModelToEvaluate(
        spec=str(plan.paths.train_dir),
        paths=plan.paths,
        eval_languages=run.languages,
        tag=RunTag(objective=run.objective, train_languages=list(run.languages), seed=run.seed, run=run.name),
        image_features=captions.image_features if captions is not None else None,
    )
    retrieval = run.objective == "vgs+" and study.config.evaluation.retrieval
    return _evaluate(model, corpus, study, progress, retrieval=retrieval, slot=slot)


def _baselines(
    study: StudyFile,
    corpus: StudyCorpus,
    layout: StudyLayout,
    languages: Sequence[str],
    stages: StageLog,
    progress: bool,
    separate_process: bool,
    slot: Slot,
) -> list[str]:
    """Evaluate every baseline, as one stage (in processes of the slot's when `separate_process`); return
    what failed."""
    config = study.config
    started = time.perf_counter()
    done, failed = [], []
    for name in config.evaluation.baselines:
        paths = layout.baseline(name)
        spec = name
        if name == "random-init":
            spec = str(paths.root / RANDOM_INIT_CHECKPOINT)
            if not Path(spec).is_file():
                write_random_init(config.train.get("model", {}), seed=config.seeds[0], path=Path(spec))
        model = ModelToEvaluate(spec, paths, tuple(languages), RunTag(run=name))
        ok, _ = _evaluate(model, corpus, study, progress, slot=slot if separate_process else None)
        (done if ok else failed).append(name)
    took = format_duration(time.perf_counter() - started)
    message = f"evaluated {', '.join(done)} in {took}" if done else "none evaluated"
    if failed:
        message += f"; FAILED: {', '.join(failed)} (see {layout.out}/baselines/<name>/evaluate.log)"
    stages.line("baselines", message)
    return [f"{name}: evaluation" for name in failed]
