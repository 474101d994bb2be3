"""Forced alignments from disk: Montreal Forced Aligner TextGrids and Kaldi-style phone CTM files.

Both readers return `RawAlignment`s: one utterance's phone (and, from a TextGrid, word) intervals as the file
holds them, each remembering where it came from (file and tier, or file and line) so that later errors can
name it. `normalise` then turns one into vgssl's `Alignment` (`vgssl.data.alignments`):

* silence labels (MFA's `""`, `sil`, `sp`, `spn`; Kaldi's `SIL`, `SPN`, `NSN`, `<eps>`; compared without
  case) become `SIL`, and a gap between two phones is silence too;
* ARPAbet stress digits (`AH0` -> `AH`) and IPA stress marks (`ˈ`, `ˌ`) are stripped unless asked not to,
  and so are Kaldi's word-position suffixes (`AH0_B` -> `AH`);
* zero-length phones are dropped, so the phones on either side meet (nothing is invented or moved);
* adjacent silences merge, and times are rounded to the microsecond so that contiguous intervals meet
  exactly.

TextGrids are read with praatio (a maintained TextGrid library), never parsed by hand.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from vgssl.data.alignments import SILENCE, Alignment, AlignmentFormatError, Segment
from vgssl.errors import VgsslError

DEFAULT_SILENCES = ("", "sil", "sp", "spn", "nsn", "<eps>")
PHONE_TIER = "phones"
WORD_TIER = "words"
TEXTGRID_SUFFIX = ".textgrid"  # compared without case: MFA writes .TextGrid
_STRESS = re.compile(r"^(?P<base>[A-Za-z]+)[012]$")  # ARPAbet vowels: AH0, IY1, ER2
_POSITION = re.compile(r"^(?P<base>.+)_[BIES]$")  # Kaldi word-position-dependent phones: AH0_B
_IPA_STRESS = str.maketrans("", "", "ˈˌ")
_DIGITS = 6  # seconds are rounded to the microsecond
# An overlap this small is rounding (a CTM gives start and duration, each rounded), not a real overlap.
ROUNDING_SLACK = 0.0015


class AlignmentSourceError(VgsslError):
    """A forced-alignment file cannot be used: unreadable, malformed, or without the tier it needs."""


class TextGridReadError(AlignmentSourceError):
    """praatio cannot read a TextGrid file."""


class MissingPhoneTierError(AlignmentSourceError):
    """A TextGrid has no (unique) phone tier."""


class CtmFormatError(AlignmentSourceError):
    """A CTM line is not `<uttid> <channel> <start> <duration> <phone> [<confidence>]`."""


class OverlappingPhonesError(AlignmentSourceError):
    """Two phone intervals of one utterance overlap."""


class DuplicateAlignmentError(AlignmentSourceError):
    """Two alignments are given for one utterance."""


@dataclass(frozen=True)
class Interval:
    onset: float
    offset: float
    label: str
    where: str  # "file:line" or "file, tier 'phones'"


@dataclass(frozen=True)
class RawAlignment:
    utterance: str  # the utterance id: a TextGrid's name without suffix, or a CTM's first column
    source: Path  # the file it came from
    relative: str  # TextGrid: its path below the directory, without suffix; CTM: the utterance id
    phones: tuple[Interval, ...]
    words: tuple[Interval, ...] = ()


@dataclass(frozen=True)
class LabelRules:
    silences: frozenset[str] = frozenset(DEFAULT_SILENCES)  # lower-case
    strip_stress: bool = True
    strip_position: bool = True

    def label(self, raw: str) -> str:
        """The phone label written to item files: `SIL` for a silence, else the phone as configured."""
        text = raw.strip()
        if text.lower() in self.silences:
            return SILENCE
        if self.strip_position and (match := _POSITION.match(text)):
            text = match["base"]
        if self.strip_stress:
            text = text.translate(_IPA_STRESS)
            if match := _STRESS.match(text):
                text = match["base"]
        if text.lower() in self.silences:
            return SILENCE
        return text


@dataclass
class NormaliseCounts:
    zero_length: int = 0  # phones dropped because they had no duration
    labels: dict[str, int] = field(default_factory=dict)  # raw label -> label, for the summary


def find_textgrids(directory: Path) -> list[Path]:
    """Every TextGrid under `directory` (flat or `<speaker>/<uttid>.TextGrid`), sorted."""
    if not directory.is_dir():
        raise AlignmentSourceError(
            f"--textgrids {directory} is not a directory; give the output directory of `mfa align`"
        )
    found = sorted(
        path
        for path in directory.rglob("*")
        if path.suffix.lower() == TEXTGRID_SUFFIX and path.is_file() and not path.name.startswith(".")
    )
    if not found:
        raise AlignmentSourceError(
            f"no .TextGrid file under {directory}; give the output directory of `mfa align` "
            "(it holds <speaker>/<uttid>.TextGrid or <uttid>.TextGrid)"
        )
    return found


def _pick_tier(names: Sequence[str], wanted: str, path: Path, *, required: bool) -> str | None:
    """The tier called `wanted` (any case), or MFA's multi-speaker `<speaker> - <wanted>` if it is unique."""
    exact = [name for name in names if name == wanted]
    if exact:
        return exact[0]
    loose = [name for name in names if name.lower() == wanted.lower()]
    loose = loose or [name for name in names if name.lower().endswith(f" - {wanted.lower()}")]
    if len(loose) == 1:
        return loose[0]
    if not required:
        return None
    problem = f"{len(loose)} tiers could be it ({', '.join(loose)})" if loose else "none is"
    raise MissingPhoneTierError(
        f"{path}: no tier {wanted!r}; its tiers are {', '.join(repr(n) for n in names) or 'none'} and "
        f"{problem}; name the phone tier with --phone-tier (MFA writes 'phones' and 'words')"
    )


def read_textgrid(
    path: Path, *, directory: Path, phone_tier: str = PHONE_TIER, word_tier: str = WORD_TIER
) -> RawAlignment:
    """One TextGrid's phone tier (required) and word tier (if there is one)."""
    from praatio import textgrid
    from praatio.utilities.errors import PraatioException

    try:
        grid = textgrid.openTextgrid(str(path), includeEmptyIntervals=True, reportingMode="silence")
    except (PraatioException, ValueError, IndexError, UnicodeError) as error:
        raise TextGridReadError(
            f"{path}: praatio cannot read it as a TextGrid ({type(error).__name__}: {error}); re-run the "
            "aligner for this utterance or remove the file"
        ) from None
    names = list(grid.tierNames)
    tiers = {}
    for kind, wanted in (("phones", phone_tier), ("words", word_tier)):
        name = _pick_tier(names, wanted, path, required=kind == "phones")
        if name is None:
            continue
        tier = grid.getTier(name)
        if not isinstance(tier, textgrid.IntervalTier):
            raise MissingPhoneTierError(
                f"{path}: tier {name!r} is a point tier; the {kind} must be an interval tier"
            )
        where = f"{path}, tier {name!r}"
        tiers[kind] = tuple(
            Interval(round(float(e.start), _DIGITS), round(float(e.end), _DIGITS), e.label, where)
            for e in tier.entries
        )
    relative = path.relative_to(directory).with_suffix("").as_posix()
    return RawAlignment(path.stem, path, relative, tiers["phones"], tiers.get("words", ()))


def read_ctm(path: Path) -> list[RawAlignment]:
    """A phone CTM file, `<uttid> <channel> <start> <duration> <phone> [<confidence>]` per line, grouped by
    utterance (in order of first appearance); blank lines and `;;` comments are skipped."""
    if not path.is_file():
        raise AlignmentSourceError(f"--ctm {path} does not exist")
    grouped: dict[str, list[Interval]] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields or fields[0].startswith(";;"):
                continue
            where = f"{path}:{number}"
            if len(fields) not in (5, 6):
                raise CtmFormatError(
                    f"{where}: {len(fields)} fields; a phone CTM line is '<uttid> <channel> <start> "
                    f"<duration> <phone> [<confidence>]' (Kaldi's `ali-to-phones --ctm-output`), "
                    f"found {line!r}"
                )
            try:
                start, duration = float(fields[2]), float(fields[3])
            except ValueError:
                raise CtmFormatError(
                    f"{where}: start {fields[2]!r} and duration {fields[3]!r} must be numbers of seconds"
                ) from None
            if not (start >= 0 and duration >= 0):
                raise CtmFormatError(f"{where}: start {start} and duration {duration} must be >= 0")
            onset, offset = round(start, _DIGITS), round(start + duration, _DIGITS)
            grouped.setdefault(fields[0], []).append(Interval(onset, offset, fields[4], where))
    if not grouped:
        raise CtmFormatError(f"{path} holds no CTM line")
    return [
        RawAlignment(utterance, path, utterance, tuple(sorted(intervals, key=lambda i: i.onset)))
        for utterance, intervals in grouped.items()
    ]


def normalise(raw: RawAlignment, rules: LabelRules, counts: NormaliseCounts) -> Alignment:
    """`raw` as a vgssl `Alignment`: silences labelled `SIL` and merged, gaps filled with silence,
    zero-length phones dropped; overlapping phones are an error naming the file and line or tier."""
    phones: list[Segment] = []
    end = 0.0
    for interval in raw.phones:
        if interval.offset < interval.onset:
            raise OverlappingPhonesError(
                f"{interval.where}: phone {interval.label!r} ends at {interval.offset} s before it starts "
                f"at {interval.onset} s"
            )
        if end - ROUNDING_SLACK <= interval.onset < end:  # start + duration rounded (CTM): they touch
            interval = replace(interval, onset=end)
        if interval.onset < end:
            raise OverlappingPhonesError(
                f"{interval.where}: phone {interval.label!r} starts at {interval.onset} s, before the "
                f"previous phone of {raw.utterance} ends at {end} s; phones must not overlap"
            )
        if interval.offset == interval.onset:
            counts.zero_length += 1
            continue
        label = rules.label(interval.label)
        counts.labels.setdefault(interval.label, label)
        if any(ch.isspace() for ch in label):
            raise AlignmentSourceError(
                f"{interval.where}: phone label {label!r} holds whitespace, which item files cannot hold"
            )
        if interval.onset > end:
            _append(phones, Segment(end, interval.onset, SILENCE))
        _append(phones, Segment(interval.onset, interval.offset, label))
        end = interval.offset
    words = tuple(
        Segment(w.onset, w.offset, w.label.strip())
        for w in raw.words
        if w.offset > w.onset and rules.label(w.label) != SILENCE
    )
    try:
        return Alignment(tuple(phones), words)
    except AlignmentFormatError as error:
        raise AlignmentSourceError(f"{raw.source} ({raw.utterance}): {error}") from None


def _append(phones: list[Segment], segment: Segment) -> None:
    if phones and segment.label == SILENCE and phones[-1].label == SILENCE:
        phones[-1] = Segment(phones[-1].onset, segment.offset, SILENCE)
    else:
        phones.append(segment)
