"""Alignment clean-up on constructed espeak-like events and audio, the JSON form, and the JSONL reader."""

import json
from pathlib import Path

import numpy as np
import pytest

from vgssl.corpus.alignment import PhoneEvent, WordEvent, align_events
from vgssl.data.alignments import SILENCE, Alignment, AlignmentFormatError, Segment, read_alignments

RATE = 22_050


def tone(n: int) -> np.ndarray:
    return (8000 * np.cos(np.arange(n) * 2 * np.pi * 150 / RATE)).astype(np.int16)


def quiet(n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.int16)


def align(
    samples: np.ndarray,
    phonemes: list[PhoneEvent],
    *,
    end_sample: int | None = None,
    output_rate: int = RATE,
    words: tuple[WordEvent, ...] = (),
    text: str = "",
) -> Alignment:
    output_length = round(len(samples) * output_rate / RATE)
    return align_events(
        phonemes,
        words,
        text=text,
        samples=samples,
        sample_rate=RATE,
        end_sample=len(samples) if end_sample is None else end_sample,
        silence_level=64,
        output_rate=output_rate,
        output_length=output_length,
    )


def spans(alignment: Alignment) -> list[tuple[int, int, str]]:
    return [(round(s.onset * RATE), round(s.offset * RATE), s.label) for s in alignment.phones]


def test_closure_moves_from_the_previous_phone_into_the_stop_and_stress_is_stripped() -> None:
    samples = np.concatenate([tone(2000), quiet(1000), tone(1000), tone(2000)])
    events = [PhoneEvent(0, "ˈa"), PhoneEvent(3000, "t"), PhoneEvent(4000, "ˌa")]
    assert spans(align(samples, events)) == [(0, 2000, "a"), (2000, 4000, "t"), (4000, 6000, "a")]


def test_a_gap_before_a_non_stop_becomes_silence_even_a_little_past_the_onset() -> None:
    samples = np.concatenate([tone(2000), quiet(1020), tone(980), tone(2000)])
    events = [PhoneEvent(0, "a"), PhoneEvent(3000, "s"), PhoneEvent(4000, "a")]
    assert spans(align(samples, events)) == [
        (0, 2000, "a"),
        (2000, 3020, SILENCE),
        (3020, 4000, "s"),
        (4000, 6000, "a"),
    ]


def test_quiet_stretches_that_do_not_end_at_an_onset_or_are_short_stay_in_their_phone() -> None:
    far_from_onset = np.concatenate([tone(1000), quiet(1000), tone(2000)])
    too_short = np.concatenate([tone(2900), quiet(100), tone(1000)])  # 4.5 ms, under the 8 ms minimum
    for samples in (far_from_onset, too_short):
        events = [PhoneEvent(0, "a"), PhoneEvent(3000, "t")]
        assert spans(align(samples, events))[0] == (0, 3000, "a")


def test_pauses_leading_audio_and_echo_tail_are_silence() -> None:
    samples = np.concatenate([quiet(500), tone(1500), quiet(1000), tone(2000), tone(1000)])
    events = [PhoneEvent(500, "a"), PhoneEvent(2000, ""), PhoneEvent(3000, "m"), PhoneEvent(5000, "")]
    # espeak's END at 5000: the last 1000 samples (the echo, here audible) are silence too
    assert spans(align(samples, events, end_sample=5000)) == [
        (0, 500, SILENCE),
        (500, 2000, "a"),
        (2000, 3000, SILENCE),
        (3000, 5000, "m"),
        (5000, 6000, SILENCE),
    ]


def test_a_closure_that_reaches_back_into_a_pause_stays_silence() -> None:
    samples = np.concatenate([tone(1800), quiet(1200), tone(1000)])
    events = [PhoneEvent(0, "a"), PhoneEvent(2000, ""), PhoneEvent(3000, "t")]
    assert spans(align(samples, events)) == [(0, 1800, "a"), (1800, 3000, SILENCE), (3000, 4000, "t")]


def test_zero_length_phones_are_dropped_not_merged() -> None:
    samples = tone(4000)
    events = [PhoneEvent(0, "ʁ"), PhoneEvent(2000, "w"), PhoneEvent(2000, "a")]
    assert [s.label for s in align(samples, events).phones] == ["ʁ", "a"]


def test_times_land_on_the_output_grid_and_end_at_the_audio_length() -> None:
    samples = np.concatenate([tone(2001), quiet(999), tone(1013)])
    events = [PhoneEvent(0, "a"), PhoneEvent(3000, "k")]
    alignment = align(samples, events, output_rate=16_000)
    output_length = round(len(samples) * 16_000 / RATE)
    assert alignment.phones[-1].offset == output_length / 16_000
    for segment in alignment.phones:
        for t in (segment.onset, segment.offset):
            assert t * 16_000 == pytest.approx(round(t * 16_000), abs=1e-9)
    assert [s.label for s in alignment.phones] == ["a", "k"]


def test_words_take_the_written_word_and_span_their_phones() -> None:
    text = "I said 23, d'accord."
    samples = tone(8000)
    words = (
        WordEvent(0, 0, 1),
        WordEvent(1000, 2, 6),
        WordEvent(3000, 7, 9),
        WordEvent(5000, 8, 10),  # espeak's second word of "23" ("three") has an odd span
        WordEvent(6000, 11, 12),  # the elision: espeak's span is just "d"
    )
    events = [
        PhoneEvent(0, "aɪ", 0),
        PhoneEvent(1000, "s", 1),
        PhoneEvent(2000, "ɛ", 1),
        PhoneEvent(3000, "t", 2),
        PhoneEvent(5000, "θ", 3),
        PhoneEvent(5500, "", 3),
        PhoneEvent(6000, "d", 4),
        PhoneEvent(7000, "a", 4),
    ]
    alignment = align(samples, events, words=words, text=text)
    assert [(round(w.onset * RATE), round(w.offset * RATE), w.label) for w in alignment.words] == [
        (0, 1000, "I"),
        (1000, 3000, "said"),
        (3000, 5500, "23"),
        (6000, 8000, "d'accord"),
    ]


def test_json_round_trip_is_exact() -> None:
    alignment = Alignment(
        (Segment(0.0, 0.0125, SILENCE), Segment(0.0125, 0.1 / 3, "ɑ̃"), Segment(0.1 / 3, 0.25, "tʃ")),
        (Segment(0.0125, 0.25, "chant"),),
    )
    encoded = json.dumps(alignment.to_json(), ensure_ascii=False)
    assert Alignment.from_json(json.loads(encoded)) == alignment
    assert json.loads(encoded)["phones"][1] == [0.0125, 0.1 / 3, "ɑ̃"]


def test_scaled_multiplies_every_time() -> None:
    alignment = Alignment((Segment(0.0, 0.1, SILENCE), Segment(0.1, 0.3, "a")), (Segment(0.1, 0.3, "ah"),))
    half = alignment.scaled(0.5)
    assert [(s.onset, s.offset) for s in half.phones] == [(0.0, 0.05), (0.05, 0.15)]
    assert [(s.onset, s.offset, s.label) for s in half.words] == [(0.05, 0.15, "ah")]
    with pytest.raises(AlignmentFormatError, match="positive"):
        alignment.scaled(0.0)


@pytest.mark.parametrize(
    ("phones", "fragment"),
    [
        ([[0.0, 0.1, "a"], [0.2, 0.3, "b"]], "contiguous"),
        ([[0.0, 0.1, "a b"]], "contains whitespace"),
        ([[0.1, 0.1, "a"]], "onset < offset"),
        ([[0.0, "0.1", "a"]], r"\[onset, offset, label\]"),
    ],
)
def test_invalid_alignments_are_refused(phones: list, fragment: str) -> None:
    with pytest.raises(AlignmentFormatError, match=fragment):
        Alignment.from_json({"phones": phones, "words": []})


def test_read_alignments_names_the_bad_line(tmp_path: Path) -> None:
    good = {"uttid": "u1", "phones": [[0.0, 0.2, "a"]], "words": [[0.0, 0.2, "ah"]]}
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(good) + "\n\n" + json.dumps(good) + "\n")
    assert read_alignments(path) == [good, good]
    path.write_text(json.dumps(good) + "\n{not json\n")
    with pytest.raises(AlignmentFormatError, match=r"a\.jsonl:2: not valid JSON"):
        read_alignments(path)
    path.write_text(json.dumps(good) + "\n" + json.dumps({"phones": [[0.0, 0.2, "a"]]}) + "\n")
    with pytest.raises(AlignmentFormatError, match=r"a\.jsonl:2: .*\"words\""):
        read_alignments(path)
