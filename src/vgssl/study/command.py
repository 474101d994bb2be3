"""`vgssl study CONFIG.yaml --out DIR`: train the grid, evaluate every model, write the report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vgssl.study.runner import StudyOutcome

HELP = "the whole study: train the grid of runs, evaluate them and the baselines, write the report"
DESCRIPTION = """\
Train every run of the grid objective {ssl-a, vgs+} x training languages {each alone, all together (and
every pair, on request)} x seeds on one corpus (built into DIR/corpus when the config says how and it is
missing), then extract features, score phone ABX per language and layer, language ABX and, for VGS+ runs,
speech-image retrieval; evaluate the MFCC and random-init baselines once; and write DIR/report.md,
DIR/report.json and PNG figures with the multilingual gap, the grounding gain and the paper's two
hypotheses. Re-running the command skips what is done, resumes interrupted runs and retries failed ones.
Presets: configs/tiny.yaml (minutes), configs/demo.yaml (`vgssl demo`), configs/paper-like.yaml (GPUs)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG.yaml", type=Path, help="study config (see configs/*.yaml)")
    parser.add_argument("--out", type=Path, required=True, help="study directory (created; re-use to resume)")
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bars, only one line per stage"
    )


def report_outcome(outcome: StudyOutcome) -> int:
    """Print where the report is and what failed; the exit status is 1 when anything failed."""
    print(f"report: {outcome.report}")
    if outcome.failed:
        print(f"{len(outcome.failed)} stage(s) failed: {'; '.join(outcome.failed)}", file=sys.stderr)
        print(
            "the report marks them; fix the cause and re-run the same command to retry them", file=sys.stderr
        )
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    from vgssl.study.runner import run_study

    # Bars only on a terminal: in a log file they would be thousands of redraws.
    outcome = run_study(args.config, args.out, progress=not args.no_progress and sys.stderr.isatty())
    return report_outcome(outcome)
