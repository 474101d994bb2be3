"""espeak-ng synthesis, for real: phone sequences, timing invariants, boundaries, determinism, errors."""

import multiprocessing
import time
from itertools import pairwise

import numpy as np
import pytest

from vgssl.corpus.alignment import strip_stress
from vgssl.corpus.espeak import (
    BadVoiceError,
    SynthesisError,
    UnknownLanguageError,
    UnknownVariantError,
    Voice,
    available_languages,
    available_variants,
    has_echo,
    render,
    synthesize,
    text_to_phonemes,
)
from vgssl.data.alignments import SILENCE

SENTENCES = {
    "en-us": [
        "The big red square is next to a small blue circle.",
        "A green triangle sits above two yellow stars, and a purple heart.",
        "Five small black circles are left of the orange diamond.",
        "She saw the fish and the vase, then jumped over the fence.",
    ],
    "fr": [
        "Un grand carré rouge est à côté d'un petit cercle bleu.",
        "Trois étoiles jaunes sont au-dessus du triangle vert.",
        "Le chat voit six poissons, et la vache boit de l'eau fraîche.",
        "Une fusée violette vole vers le soleil.",
    ],
}
FRICATIVES = frozenset("szfvʃʒ")
VOWEL_LETTERS = frozenset("aeiouyɑɐɒæɛɜəɚɘɪʊʌɔøœɶɤɯʉɨ")


def voice(language: str, variant: str = "m3", *, rate: int = 175, pitch: int = 50) -> Voice:
    return Voice(language, variant, rate, pitch, 50)


def is_subsequence(short: list[str], long: list[str]) -> bool:
    remaining = iter(long)
    return all(any(item == other for other in remaining) for item in short)


def test_voices_and_variants_are_listed() -> None:
    assert {"en-us", "en", "fr"} <= set(available_languages())
    assert {"m1", "m7", "f1", "f5", "klatt", "klatt2"} <= set(available_variants())
    assert has_echo("f2") and not has_echo("m3")
    assert voice("en-us").name == "en-us+m3"


@pytest.mark.parametrize("variant", ["m3", "f2", "klatt3"])
@pytest.mark.parametrize("language", ["en-us", "fr"])
def test_event_phones_equal_text_to_phonemes(language: str, variant: str) -> None:
    for text in SENTENCES[language][:3]:
        expected = text_to_phonemes(text, language=language)
        assert expected and all(phone and not phone.isspace() and "ˈ" not in phone for phone in expected)
        events = [strip_stress(e.label) for e in render(text, voice(language, variant)).phonemes if e.label]
        assert events == expected
        # The alignment keeps them in order; it only drops phones that have no audio of their own.
        phones = [s.label for s in synthesize(text, voice(language, variant)).alignment.phones]
        kept = [label for label in phones if label != SILENCE]
        assert is_subsequence(kept, expected) and len(kept) >= 0.95 * len(expected)


@pytest.mark.parametrize(
    ("language", "variant", "rate", "pitch"),
    [("en-us", "m3", 175, 50), ("fr", "f2", 140, 30), ("en-us", "f4", 210, 70), ("fr", "klatt", 450, 50)],
)
def test_segments_are_contiguous_monotone_and_end_at_the_audio_length(
    language: str, variant: str, rate: int, pitch: int
) -> None:
    text = SENTENCES[language][1]
    synthesis = synthesize(text, voice(language, variant, rate=rate, pitch=pitch))
    audio, phones = synthesis.audio, synthesis.alignment.phones
    assert synthesis.sample_rate == 16_000 and audio.dtype == np.float32 and np.abs(audio).max() <= 1.0
    assert phones[0].onset == 0.0 and phones[-1].offset == len(audio) / 16_000
    assert all(a.offset == b.onset for a, b in pairwise(phones))
    assert all(s.onset < s.offset for s in phones) and all(s.label.strip() == s.label for s in phones)
    words = synthesis.alignment.words
    assert [w.label for w in words] == [w.strip(",.") for w in text.split()]
    assert all(a.offset <= b.onset for a, b in pairwise(words))
    assert words[-1].offset <= phones[-1].offset


def test_echo_tail_after_the_end_event_is_silence() -> None:
    rendering = render(SENTENCES["en-us"][0], voice("en-us", "f2"))
    assert len(rendering.samples) - rendering.end_sample > 0.02 * 22_050  # f2's echo rings on
    synthesis = synthesize(SENTENCES["en-us"][0], voice("en-us", "f2"))
    last = synthesis.alignment.phones[-1]
    assert last.label == SILENCE and last.offset - last.onset > 0.02


def _silent_share_of_non_stop_phones(
    audio: np.ndarray, segments: list[tuple[float, float, str]], rate: int
) -> float:
    frame = int(0.005 * rate)
    silent = total = 0
    for onset, offset, label in segments:
        if label in ("", SILENCE) or label[0] in "pbtdkɡ":
            continue
        piece = audio[round(onset * rate) : round(offset * rate)]
        n = len(piece) // frame
        peaks = np.abs(piece[: n * frame]).reshape(n, frame).max(axis=1)
        silent += int((peaks < 0.002).sum())
        total += n
    return silent / total


def test_stop_closures_and_gaps_leave_the_other_phones() -> None:
    raw_share, clean_share = [], []
    for language, texts in SENTENCES.items():
        for text in texts:
            rendering = render(text, voice(language))
            events = rendering.phonemes
            ends = [e.sample for e in events[1:]] + [rendering.end_sample]
            raw = [
                (e.sample / 22_050, end / 22_050, strip_stress(e.label))
                for e, end in zip(events, ends, strict=True)
            ]
            raw_share.append(_silent_share_of_non_stop_phones(rendering.samples / 32768, raw, 22_050))
            synthesis = synthesize(text, voice(language))
            clean = [(s.onset, s.offset, s.label) for s in synthesis.alignment.phones]
            clean_share.append(_silent_share_of_non_stop_phones(synthesis.audio, clean, 16_000))
    assert np.mean(raw_share) > 0.04  # espeak's own boundaries leave closures in the previous phone
    assert np.mean(clean_share) < 0.005


def _zero_crossing_contrast(
    shift: float, items: list[tuple[np.ndarray, list]], half_window: float = 0.02
) -> float:
    """Mean (fricative side - vowel side) zero-crossing rate around every fricative/vowel boundary + shift."""
    n = int(half_window * 16_000)
    contrasts = []
    for audio, phones in items:
        crossings = np.concatenate(([0], np.cumsum(np.signbit(audio[1:]) != np.signbit(audio[:-1]))))
        for before, after in pairwise(phones):
            fricative_first = before.label in FRICATIVES and after.label[0] in VOWEL_LETTERS
            vowel_first = before.label[0] in VOWEL_LETTERS and after.label in FRICATIVES
            t = round((before.offset + shift) * 16_000)
            if (fricative_first or vowel_first) and n <= t < len(crossings) - n:
                left = crossings[t] - crossings[t - n]
                right = crossings[t + n] - crossings[t]
                contrasts.append((left - right if fricative_first else right - left) / n)
    return float(np.mean(contrasts))


@pytest.mark.parametrize("variant", ["m3", "f2"])
def test_boundaries_match_the_audio(variant: str) -> None:
    items = []
    for language, texts in SENTENCES.items():
        for text in texts:
            synthesis = synthesize(text, voice(language, variant))
            items.append((synthesis.audio, synthesis.alignment.phones))
    shifts = np.arange(-0.050, 0.0501, 0.002)
    contrast = [_zero_crossing_contrast(shift, items) for shift in shifts]
    assert abs(shifts[int(np.argmax(contrast))]) <= 0.010
    assert max(contrast) > 2 * contrast[0]  # a real peak, not a plateau


def test_same_text_and_voice_give_identical_audio_whatever_came_before() -> None:
    text, speaker = SENTENCES["en-us"][0], voice("en-us", "whisper")
    first = synthesize(text, speaker)
    synthesize(SENTENCES["fr"][1], voice("fr", "f2"))
    synthesize(SENTENCES["en-us"][2], voice("en-us", "klatt3", pitch=30))
    time.sleep(1.1)  # unseeded, espeak's breath noise would follow the clock's second
    second = synthesize(text, speaker)
    assert np.array_equal(first.audio, second.audio) and first.alignment == second.alignment


def _synthesize_in_child(text: str, speaker: Voice) -> np.ndarray:
    return synthesize(text, speaker).audio


def test_a_fresh_process_gives_the_same_audio() -> None:
    text, speaker = SENTENCES["fr"][2], voice("fr", "whisper")
    synthesize(SENTENCES["en-us"][1], voice("en-us", "m1"))
    here = synthesize(text, speaker).audio
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        there = pool.apply(_synthesize_in_child, (text, speaker))
    assert np.array_equal(here, there)


def test_variants_and_pitches_change_the_audio() -> None:
    text = SENTENCES["en-us"][0]
    base = synthesize(text, voice("en-us", "m3")).audio
    for other in (voice("en-us", "f1"), voice("en-us", "m3", pitch=70)):
        audio = synthesize(text, other).audio
        assert len(audio) != len(base) or not np.allclose(audio, base, atol=1e-3)


def test_unknown_language_or_variant_lists_what_is_available() -> None:
    with pytest.raises(UnknownLanguageError, match=r"'xx'.*available: .*en-us.*fr"):
        synthesize("hello", voice("xx"))
    with pytest.raises(UnknownVariantError, match=r"'m99'.*available: .*klatt2.*m3"):
        synthesize("hello", voice("en-us", "m99"))
    with pytest.raises(UnknownLanguageError):
        text_to_phonemes("hello", language="english")


def test_text_without_words_is_refused() -> None:
    with pytest.raises(SynthesisError, match="no phonemes"):
        synthesize("  ", voice("en-us"))


def test_refuses_to_run_when_another_module_keeps_espeak_loaded() -> None:
    import _ctypes

    import espeakng_loader

    held = espeakng_loader.load_library()  # as e.g. phonemizer would: espeak's state would then persist
    try:
        with pytest.raises(SynthesisError, match="stays loaded"):
            synthesize("hello", voice("en-us"))
    finally:
        _ctypes.dlclose(held._handle)
    assert synthesize("hello", voice("en-us")).audio.size > 0


def test_voice_settings_outside_espeaks_ranges_are_refused() -> None:
    with pytest.raises(BadVoiceError, match=r"pitch must be in \[0, 100\], got 130"):
        synthesize("hello", voice("en-us", pitch=130))
