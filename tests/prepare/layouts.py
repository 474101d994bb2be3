"""Small LibriSpeech and MLS trees in their published layouts, written by the tests themselves.

The audio is short noise-modulated tones (a different pitch per speaker) written with soundfile, so a test
knows every file's exact sample count; the transcripts are made-up words.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from vgssl.cli import build_parser, main

WORDS = ("the", "red", "circle", "above", "a", "blue", "square", "small", "near", "two")


@dataclass(frozen=True)
class Written:
    uttid: str
    path: Path
    num_samples: int
    speaker: str
    text: str


def write_audio(path: Path, num_samples: int, *, seed: int, sample_rate: int = 16_000) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / sample_rate
    audio = 0.2 * np.sin(2 * np.pi * (120 + seed % 200) * t) + 0.02 * rng.standard_normal(num_samples)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    fmt, subtype = {".flac": ("FLAC", "PCM_16"), ".opus": ("OGG", "OPUS"), ".wav": ("WAV", "PCM_16")}[suffix]
    soundfile.write(str(path), audio.astype(np.float32), sample_rate, format=fmt, subtype=subtype)


def _text(seed: int) -> str:
    rng = np.random.default_rng(seed)
    return " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), size=4))


def make_librispeech(
    root: Path,
    subsets: dict[str, dict[int, dict[int, int]]],
    *,
    lengths: tuple[int, int] = (4_000, 12_000),
    sample_rate: int = 16_000,
) -> dict[str, list[Written]]:
    """`subsets`: subset -> speaker -> chapter -> number of utterances. Returns what each subset holds."""
    written: dict[str, list[Written]] = {}
    serial = 0
    for subset, speakers in subsets.items():
        written[subset] = []
        for speaker, chapters in speakers.items():
            for chapter, count in chapters.items():
                chapter_dir = root / subset / str(speaker) / str(chapter)
                rows = []
                for utt in range(count):
                    serial += 1
                    uttid = f"{speaker}-{chapter}-{utt:04d}"
                    num_samples = lengths[0] + (serial * 997) % (lengths[1] - lengths[0])
                    path = chapter_dir / f"{uttid}.flac"
                    write_audio(path, num_samples, seed=speaker * 1000 + serial, sample_rate=sample_rate)
                    text = _text(serial).upper()
                    rows.append(f"{uttid} {text}")
                    written[subset].append(Written(uttid, path, num_samples, str(speaker), text))
                chapter_dir.mkdir(parents=True, exist_ok=True)
                (chapter_dir / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(rows) + "\n")
    return written


def make_mls(
    language_dir: Path,
    splits: dict[str, dict[int, dict[int, int]]],
    *,
    suffix: str = ".flac",
    segments: bool = True,
    segment_error_s: float = 0.0,
    lengths: tuple[int, int] = (4_000, 12_000),
    sample_rate: int = 16_000,
) -> dict[str, list[Written]]:
    """`splits`: split dir (train, dev, test) -> speaker -> book -> number of utterances. segments.txt
    times are off by `segment_error_s`, so a test can tell estimates from true counts."""
    written: dict[str, list[Written]] = {}
    serial = 0
    for split, speakers in splits.items():
        written[split] = []
        transcripts, segment_rows = [], []
        for speaker, books in speakers.items():
            for book, count in books.items():
                for utt in range(count):
                    serial += 1
                    uttid = f"{speaker}_{book}_{utt:06d}"
                    num_samples = lengths[0] + (serial * 991) % (lengths[1] - lengths[0])
                    path = language_dir / split / "audio" / str(speaker) / str(book) / f"{uttid}{suffix}"
                    write_audio(path, num_samples, seed=speaker * 1000 + serial, sample_rate=sample_rate)
                    text = _text(serial)
                    transcripts.append(f"{uttid}\t{text}")
                    start = 10.0 * utt
                    end = start + num_samples / sample_rate + segment_error_s
                    segment_rows.append(
                        f"{uttid}\thttp://www.archive.org/download/x/{book}.mp3\t{start}\t{end}"
                    )
                    written[split].append(Written(uttid, path, num_samples, str(speaker), text))
        (language_dir / split).mkdir(parents=True, exist_ok=True)
        (language_dir / split / "transcripts.txt").write_text("\n".join(transcripts) + "\n")
        if segments:
            (language_dir / split / "segments.txt").write_text("\n".join(segment_rows) + "\n")
    return written


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """`vgssl ARGV` through the real entry point: (exit status, stdout, stderr)."""
    capsys.readouterr()
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def run_parsed(argv: list[str]) -> int | None:
    """`vgssl ARGV` parsed by the real parser but run without the CLI's error printing, so a test sees the
    named exception itself."""
    args: argparse.Namespace = build_parser().parse_args(argv)
    return args._run(args)
