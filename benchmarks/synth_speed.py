"""Real-time factor of `vgssl synth`: seconds of audio produced per wall-clock second.

Runs the default build (or a scaled one with --hours/--images) in a temporary directory, timing the whole
build (planning, images, synthesis, transforms, writing, item files), and, side by side, espeak-ng synthesis
alone in one process on a sample of the same texts, the reference speed the build cannot beat per core.

    .venv/bin/python benchmarks/synth_speed.py [--workers 2] [--hours 1.5] [--images 1500]
Last line: RESULT realtime_factor=<build> espeak_only_factor=<one process> workers=<n>
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from vgssl.corpus.build import build_corpus
from vgssl.corpus.espeak import synthesize
from vgssl.corpus.plan import plan_corpus
from vgssl.corpus.spec import make_spec


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--hours", type=float, default=None, help="audio-only hours per language")
    parser.add_argument("--images", type=int, default=None, help="training images")
    parser.add_argument("--reference-utterances", type=int, default=200)
    args = parser.parse_args()

    spec = make_spec(hours=args.hours, images=args.images)
    jobs = plan_corpus(spec).utterances[
        :: max(1, len(plan_corpus(spec).utterances) // args.reference_utterances)
    ]
    started = time.perf_counter()
    reference_seconds = sum(
        len(synthesize(job.text, job.speaker.voice(job.espeak_language)).audio) / 16_000 for job in jobs
    )
    reference_factor = reference_seconds / (time.perf_counter() - started)

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        card = build_corpus(spec, Path(tmp) / "corpus", workers=args.workers, progress=False)
        wall = time.perf_counter() - started
    hours = sum(
        sum(info["hours"][kind].values())
        for info in card["languages"].values()
        for kind in ("speech", "captions")
    )
    factor = hours * 3600 / wall
    print(f"default build: {hours:.2f} h of audio in {wall:.1f} s with {args.workers} worker(s)")
    print(f"espeak-ng alone, one process, {len(jobs)} utterances: {reference_factor:.0f}x real time")
    result = f"realtime_factor={factor:.1f} espeak_only_factor={reference_factor:.1f} workers={args.workers}"
    print(f"RESULT {result}")


if __name__ == "__main__":
    main()
