"""`vgssl demo`: the main job on the built-in corpus, with no download: `vgssl study` with the demo preset."""

from __future__ import annotations

import argparse
import sys
from importlib.resources import as_file, files
from pathlib import Path

HELP = "the study on the built-in corpus (built if missing): about 30 minutes on a 2-core CPU"
DESCRIPTION = """\
Build the default built-in corpus into OUT/corpus if it is missing, then run `vgssl study` with the demo
preset (configs/demo.yaml: SSL-A and VGS+ models trained on en, fr and en+fr, a few minutes each on the
CPU) and write OUT/report.md. --tiny uses the CI preset instead (configs/tiny.yaml: minutes, nothing
scientific). Re-running the same command resumes where it stopped."""

HYPOTHESES_HEADING = "## The paper's two hypotheses"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="study directory")
    parser.add_argument(
        "--tiny", action="store_true", help="the tiny CI preset (minutes) instead of the demo"
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bars, only one line per stage"
    )


def hypotheses_section(report_md: Path) -> str:
    """The report's answer to the paper's two hypotheses, to print at the end of the demo."""
    text = report_md.read_text(encoding="utf-8")
    start = text.find(HYPOTHESES_HEADING)
    end = text.find("\n## ", start + len(HYPOTHESES_HEADING))
    return text[start:end].strip()


def run(args: argparse.Namespace) -> int:
    from vgssl.study.command import report_outcome
    from vgssl.study.runner import run_study

    # The presets ship inside the package; configs/*.yaml in the repository are links to them.
    preset = files("vgssl.study") / "presets" / ("tiny.yaml" if args.tiny else "demo.yaml")
    with as_file(preset) as config:
        outcome = run_study(config, args.out, progress=not args.no_progress and sys.stderr.isatty())
    print()
    print(hypotheses_section(outcome.report))
    print()
    return report_outcome(outcome)
