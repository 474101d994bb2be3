import math
from typing import Literal

import numpy as np
import pytest
from pydantic import BaseModel

from vgssl.corpus.acoustics import (
    SILENCE,
    AcousticsConfig,
    AcousticsConfigError,
    AcousticsInputError,
    Channel,
    PeakingBand,
    SpeakerTimbre,
    VoiceJitter,
    apply_acoustics,
    apply_channel,
    apply_reverb,
    apply_timbre,
    babble_noise,
    change_speed,
    draw_speaker_timbre,
    draw_voice_jitter,
    insert_pauses,
    insert_silences,
    measure_rt60,
    mix_at_snr,
    pink_noise,
    signal_to_noise_db,
    synthetic_impulse_response,
    white_noise,
)

SR = 16_000


def speechlike(seconds: float, *, f0: float, seed: int) -> np.ndarray:
    """A harmonic complex with a syllable-rate envelope and silent gaps: roughly speech's level statistics."""
    rng = np.random.default_rng(seed)
    time = np.arange(round(seconds * SR)) / SR
    harmonics = sum(np.sin(2 * np.pi * f0 * k * time + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 20))
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * time + rng.uniform(0, 2 * np.pi)), 0.0, None)
    return (0.3 * harmonics * envelope / np.max(np.abs(harmonics))).astype(np.float32)


def everything_on(**overrides: object) -> AcousticsConfig:
    probabilities = {
        name: 1.0
        for name in (
            "speed_probability",
            "reverb_probability",
            "noise_probability",
            "band_limit_probability",
            "random_eq_probability",
        )
    }
    return AcousticsConfig(**{**probabilities, **overrides})


def clean_with(**updates: object) -> AcousticsConfig:
    return AcousticsConfig.model_validate({**AcousticsConfig.clean().model_dump(), **updates})


def only_noise(noise_type: str) -> AcousticsConfig:
    weights = {"white": 0.0, "pink": 0.0, "babble": 0.0, noise_type: 1.0}
    return clean_with(noise_probability=1.0, noise_type_weights=weights)


POOL = [speechlike(1.3 + 0.2 * index, f0=110 + 30 * index, seed=100 + index) for index in range(5)]


# --- configuration -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"snr_db_range": (30.0, 5.0)}, "snr_db_range"),
        ({"rt60_s_range": (0.0, 0.5)}, "rt60_s_range"),
        ({"rt60_s_range": (-0.2, 0.5)}, "rt60_s_range"),
        ({"speed_factor_range": (0.0, 1.1)}, "speed_factor_range"),
        ({"noise_probability": 1.5}, "noise_probability"),
        ({"reverb_probability": -0.1}, "reverb_probability"),
        ({"pause_duration_s_range": (0.0, 0.2)}, "pause_duration_s_range"),
        ({"babble_talker_count_range": (0, 3)}, "babble_talker_count_range"),
        ({"noise_type_weights": {"white": -1.0}}, "noise_type_weights.white"),
        ({"noise_type_weights": {"brown": 1.0}}, "noise_type_weights.brown"),
        ({"noise_type_weights": {"white": 0, "pink": 0, "babble": 0}}, "noise_type_weights"),
        ({"highpass_cutoff_hz_range": (50.0, 4000.0)}, "highpass_cutoff_hz_range"),
        ({"snr_db_range": "loud"}, "snr_db_range"),
        ({"speed_probability": math.nan}, "speed_probability"),
        ({"reverb": True}, "reverb"),
    ],
)
def test_bad_options_raise_a_named_error_naming_the_field(options: dict[str, object], field: str) -> None:
    with pytest.raises(AcousticsConfigError, match=field.replace(".", r"\.")):
        AcousticsConfig(**options)


def test_named_error_also_from_yaml_style_and_nested_validation() -> None:
    with pytest.raises(AcousticsConfigError, match="rt60_s_range"):
        AcousticsConfig.model_validate({"rt60_s_range": [1.0, 0.5]})

    class Corpus(BaseModel):
        acoustics: AcousticsConfig = AcousticsConfig()

    with pytest.raises(AcousticsConfigError, match="snr_db_range"):
        Corpus.model_validate({"acoustics": {"snr_db_range": [20, 0]}})
    assert Corpus.model_validate({"acoustics": {"snr_db_range": [0, 20]}}).acoustics.snr_db_range == (0, 20)


def test_frequencies_above_nyquist_are_refused_before_any_work() -> None:
    with pytest.raises(AcousticsConfigError, match="lowpass_cutoff_hz_range"):
        apply_acoustics(
            speechlike(0.5, f0=100, seed=0),
            8000,
            config=AcousticsConfig(),
            rng=np.random.default_rng(0),
            speaker_timbre=draw_speaker_timbre(0, config=AcousticsConfig()),
            babble_pool=POOL,
        )


def test_frequency_options_of_disabled_transforms_do_not_matter() -> None:
    audio = speechlike(0.5, f0=100, seed=0)
    result = apply_acoustics(audio, 8000, config=AcousticsConfig.clean(), rng=np.random.default_rng(0))
    assert np.array_equal(result.audio, audio)


def test_missing_timbre_or_babble_pool_is_an_input_error() -> None:
    audio = speechlike(0.5, f0=100, seed=0)
    config = AcousticsConfig()
    with pytest.raises(AcousticsInputError, match="speaker_timbre"):
        apply_acoustics(audio, SR, config=config, rng=np.random.default_rng(0), babble_pool=POOL)
    with pytest.raises(AcousticsInputError, match="babble_pool"):
        apply_acoustics(
            audio,
            SR,
            config=config,
            rng=np.random.default_rng(0),
            speaker_timbre=draw_speaker_timbre(0, config=config),
        )


# --- the chain ---------------------------------------------------------------------------------------------


def test_clean_config_is_the_identity() -> None:
    audio = speechlike(1.0, f0=120, seed=1)
    result = apply_acoustics(audio, SR, config=AcousticsConfig.clean(), rng=np.random.default_rng(3))
    assert result.audio.dtype == np.float32
    assert np.array_equal(result.audio, audio)
    assert result.time_scale == 1.0
    assert result.applied["noise_type"] is None and result.applied["rt60_s"] is None


def test_same_seed_gives_the_same_bytes_and_another_seed_differs() -> None:
    audio = speechlike(1.0, f0=120, seed=1)
    config = everything_on()
    timbre = draw_speaker_timbre((7, 3), config=config)

    def run(seed: int):
        return apply_acoustics(
            audio, SR, config=config, rng=np.random.default_rng(seed), speaker_timbre=timbre, babble_pool=POOL
        )

    first, again, other = run(11), run(11), run(12)
    assert first.audio.tobytes() == again.audio.tobytes()
    assert first.applied == again.applied
    assert first.audio.tobytes() != other.audio.tobytes()
    assert first.applied != other.applied
    for result in (first, other):
        assert result.audio.dtype == np.float32
        assert np.isfinite(result.audio).all() and np.max(np.abs(result.audio)) <= 1.0
        assert result.audio.shape[0] == round(audio.shape[0] * result.time_scale)
        assert all(result.applied[key] is not None for key in ("rt60_s", "snr_db", "lowpass_hz"))


def test_switching_a_stage_off_does_not_change_what_the_others_draw() -> None:
    audio = speechlike(0.5, f0=120, seed=1)
    timbre = draw_speaker_timbre(0, config=AcousticsConfig())
    with_reverb = apply_acoustics(
        audio,
        SR,
        config=everything_on(),
        rng=np.random.default_rng(5),
        speaker_timbre=timbre,
        babble_pool=POOL,
    )
    without_reverb = apply_acoustics(
        audio,
        SR,
        config=everything_on(reverb_probability=0.0),
        rng=np.random.default_rng(5),
        speaker_timbre=timbre,
        babble_pool=POOL,
    )
    assert without_reverb.applied["rt60_s"] is None
    for key in ("speed_factor", "snr_db", "noise_type", "lowpass_hz", "eq_bands"):
        assert without_reverb.applied[key] == with_reverb.applied[key]


def test_output_that_would_clip_is_peak_normalised() -> None:
    loud = 5.0 * speechlike(0.5, f0=150, seed=2)
    result = apply_acoustics(loud, SR, config=AcousticsConfig.clean(), rng=np.random.default_rng(0))
    assert np.max(np.abs(result.audio)) == pytest.approx(0.95, rel=1e-6)
    np.testing.assert_allclose(result.audio, loud * result.applied["peak_gain"], rtol=1e-6)


def energy_ratio_db(speech: np.ndarray, noise: np.ndarray) -> float:
    """The test's own SNR: 10·log10(Σ s² / Σ n²) over the whole signals (equal lengths)."""
    assert speech.shape == noise.shape
    speech_energy = float(np.sum(np.square(speech, dtype=np.float64)))
    return 10.0 * math.log10(speech_energy / float(np.sum(np.square(noise, dtype=np.float64))))


def schroeder_rt60(impulse_response: np.ndarray, *, lower_db: float) -> float:
    """The test's own RT60, two-point: the Schroeder backward integral E(t) = Σ_{τ ≥ t} h(τ)², its level
    10·log10(E(t) / E(0)), the first samples at which it falls to the upper and to `lower_db` dB, and 60 dB
    over the slope between them. The upper point is −5 dB (ISO 3382), or 3 dB below the level right after the
    direct sound when the direct path alone drops the curve past −5 dB (it stays flat until the tail starts).
    """
    energy = np.asarray(impulse_response, dtype=np.float64) ** 2
    remaining = energy.sum() - np.concatenate([[0.0], np.cumsum(energy)[:-1]])  # E(t) at every sample
    level_db = 10.0 * np.log10(np.maximum(remaining, 1e-300) / remaining[0])
    upper_db = min(-5.0, level_db[1] - 3.0)
    start = int(np.argmax(level_db <= upper_db))
    stop = int(np.argmax(level_db <= lower_db))
    assert 0 < start < stop, "the response must decay through the fit range"
    return 60.0 * (stop - start) / SR / (level_db[start] - level_db[stop])


# --- noise -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("noise_type", ["white", "pink", "babble"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chain_adds_noise_at_the_requested_snr(noise_type: str, seed: int) -> None:
    speech = speechlike(1.0, f0=130, seed=seed)
    result = apply_acoustics(
        speech, SR, config=only_noise(noise_type), rng=np.random.default_rng(seed), babble_pool=POOL
    )
    assert result.applied["noise_type"] == noise_type
    noise = result.audio.astype(np.float64) - speech
    assert abs(energy_ratio_db(speech, noise) - result.applied["snr_db"]) < 0.5  # not the package's meter
    assert signal_to_noise_db(speech, noise) == pytest.approx(energy_ratio_db(speech, noise), abs=1e-9)


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 12.5, 40.0])
def test_mix_at_snr_hits_the_request(snr_db: float) -> None:
    speech = speechlike(0.5, f0=100, seed=4)
    rng = np.random.default_rng(0)
    for noise in (white_noise(speech.shape[0], rng=rng), pink_noise(speech.shape[0], rng=rng)):
        mixed = mix_at_snr(speech, 0.01 * noise, snr_db)
        assert energy_ratio_db(speech, mixed - speech) == pytest.approx(snr_db, abs=1e-6)
        assert signal_to_noise_db(speech, mixed - speech) == pytest.approx(snr_db, abs=1e-6)


def test_signal_to_noise_db_on_known_signals() -> None:
    # Powers 1 and 1/100 -> 20 dB; a noise of half the speech's amplitude -> 20·log10(2) = 6.02 dB.
    assert signal_to_noise_db(np.ones(100), np.full(100, 0.1)) == pytest.approx(20.0)
    speech = speechlike(0.5, f0=120, seed=5)
    assert signal_to_noise_db(speech, 0.5 * speech) == pytest.approx(20 * math.log10(2.0))


def test_pink_noise_falls_3_db_per_octave() -> None:
    noise = pink_noise(8 * SR, rng=np.random.default_rng(0))
    power = np.abs(np.fft.rfft(noise)) ** 2
    frequencies = np.fft.rfftfreq(noise.shape[0], 1 / SR)

    def density(low: float) -> float:
        return float(np.mean(power[(frequencies >= low) & (frequencies < 2 * low)]))

    assert 10 * np.log10(density(100) / density(1600)) == pytest.approx(12.0, abs=1.0)  # 4 octaves
    assert np.sqrt(np.mean(noise**2)) == pytest.approx(1.0)


def test_babble_of_one_talker_is_that_talker_looped_at_unit_level() -> None:
    talker = POOL[0].astype(np.float64)
    babble = babble_noise(3 * talker.shape[0] + 17, pool=[talker], talkers=1, rng=np.random.default_rng(0))
    start = int(np.argmax(np.correlate(babble[: talker.shape[0]], np.concatenate([talker, talker]), "valid")))
    expected = np.resize(np.roll(talker, -((talker.shape[0] - start) % talker.shape[0])), babble.shape[0])
    np.testing.assert_allclose(babble, expected / np.sqrt(np.mean(expected**2)), atol=1e-9)


def test_empty_babble_pool_and_silent_noise_are_refused() -> None:
    with pytest.raises(AcousticsInputError, match="pool"):
        babble_noise(100, pool=[], talkers=2, rng=np.random.default_rng(0))
    with pytest.raises(AcousticsInputError, match="silent"):
        mix_at_snr(np.ones(10), np.zeros(10), 10.0)


# --- reverb ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rt60_s", [0.2, 0.4, 0.6, 0.8, 1.0])
@pytest.mark.parametrize(
    ("method", "direct_to_reverberant_db"),
    # With a 10 dB direct path the decay curve drops to -10.4 dB at once, which leaves T20 only 15 dB of
    # decay to fit: too few for 10 % at 0.2 s. T30 keeps 25 dB.
    [("T30", -3.0), ("T30", 10.0), ("T20", -3.0)],
)
def test_measured_rt60_is_within_10_percent_of_the_drawn_value(
    rt60_s: float, method: Literal["T20", "T30"], direct_to_reverberant_db: float
) -> None:
    for seed in range(3):
        impulse_response = synthetic_impulse_response(
            rt60_s=rt60_s,
            direct_to_reverberant_db=direct_to_reverberant_db,
            sample_rate=SR,
            rng=np.random.default_rng(seed),
        )
        assert impulse_response[0] == 1.0
        direct_db = 10 * np.log10(1.0 / np.sum(impulse_response[1:] ** 2))
        assert direct_db == pytest.approx(direct_to_reverberant_db)
        measured = measure_rt60(impulse_response, SR, method=method)
        assert measured == pytest.approx(rt60_s, rel=0.10)
        lower_db = {"T20": -25.0, "T30": -35.0}[method]
        assert schroeder_rt60(impulse_response, lower_db=lower_db) == pytest.approx(rt60_s, rel=0.10)
        assert measured == pytest.approx(schroeder_rt60(impulse_response, lower_db=lower_db), rel=0.05)


def test_reverb_keeps_the_length_and_starts_with_the_direct_path() -> None:
    impulse_response = synthetic_impulse_response(
        rt60_s=0.5, direct_to_reverberant_db=0.0, sample_rate=SR, rng=np.random.default_rng(0)
    )
    click = np.zeros(SR // 2)
    click[1000] = 1.0
    out = apply_reverb(click, impulse_response)
    assert out.shape == click.shape
    np.testing.assert_allclose(out[1000:], impulse_response[: click.shape[0] - 1000], atol=1e-9)
    np.testing.assert_allclose(out[:1000], 0.0, atol=1e-9)


# --- speed -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [0.9, 0.95, 1.0371, 1.1])
def test_speed_change_scales_length_and_event_times_exactly(factor: float) -> None:
    audio = np.zeros(SR + 123)
    impulse_times = [0.1, 0.5, 0.95]
    for time in impulse_times:
        audio[round(time * SR)] = 1.0
    change = change_speed(audio, factor=factor)
    assert change.factor == pytest.approx(factor, abs=1e-3)
    assert change.time_scale == change.audio.shape[0] / audio.shape[0]
    assert change.audio.shape[0] == pytest.approx(audio.shape[0] / change.factor, abs=1)
    for time in impulse_times:
        expected = round(time * SR) * change.time_scale
        window = change.audio[int(expected) - 20 : int(expected) + 21]
        landed = int(expected) - 20 + int(np.argmax(window))
        assert abs(landed - expected) <= 1


def test_speed_factor_one_is_the_identity_and_pitch_follows_the_factor() -> None:
    audio = speechlike(0.5, f0=200, seed=0)
    assert change_speed(audio, factor=1.0).audio is audio
    tone = np.sin(2 * np.pi * 1000 * np.arange(SR) / SR)
    faster = change_speed(tone, factor=1.1).audio
    spectrum = np.abs(np.fft.rfft(faster * np.hanning(faster.shape[0])))
    peak_hz = np.argmax(spectrum) * SR / faster.shape[0]
    assert peak_hz == pytest.approx(1100, abs=2)


# --- pauses ------------------------------------------------------------------------------------------------

PHONES = (
    (0.0, 0.1, SILENCE),
    (0.1, 0.2, "h"),
    (0.2, 0.3, "ɛ"),
    (0.3, 0.4, "l"),
    (0.4, 0.45, SILENCE),
    (0.45, 0.6, "o"),
    (0.6, 0.7, "w"),
    (0.7, 1.0, SILENCE),
)
WORDS = ((0.1, 0.4, "hel"), (0.45, 0.6, "o"), (0.6, 0.7, "w"))


def test_pauses_shift_later_segments_exactly_and_keep_earlier_ones() -> None:
    audio = speechlike(1.0, f0=120, seed=0)
    first, second = 1600, 2400  # samples: into the silence at 0.4-0.45 s, and between "o" and "w"
    paused = insert_silences(audio, SR, words=WORDS, phones=PHONES, pause_samples={0: first, 1: second})
    assert paused.audio.shape[0] == audio.shape[0] + first + second
    assert [(p.time_s, p.duration_s) for p in paused.pauses] == [(0.425, 0.1), (0.6, 0.15)]
    assert paused.words == (
        WORDS[0],
        (0.45 + first / SR, 0.6 + first / SR, "o"),
        (0.6 + (first + second) / SR, 0.7 + (first + second) / SR, "w"),
    )
    assert paused.phones == (
        *PHONES[:4],
        (0.4, 0.45 + first / SR, SILENCE),  # the existing silence got longer
        (0.45 + first / SR, 0.6 + first / SR, "o"),
        (0.6 + first / SR, 0.6 + (first + second) / SR, SILENCE),  # a new silence between two words
        (0.6 + (first + second) / SR, 0.7 + (first + second) / SR, "w"),
        (0.7 + (first + second) / SR, 1.0 + (first + second) / SR, SILENCE),
    )
    assert paused.phones[-1][1] == pytest.approx(paused.audio.shape[0] / SR)
    np.testing.assert_array_equal(paused.audio[: 6800 - 80], audio[: 6800 - 80])
    np.testing.assert_array_equal(paused.audio[6800 : 6800 + first], 0.0)
    np.testing.assert_array_equal(paused.audio[9600 + first + 80 : 9600 + first], audio[9600 + 80 : 9600])
    np.testing.assert_array_equal(paused.audio[9600 + first : 9600 + first + second], 0.0)
    tail = 9600 + first + second + 80
    np.testing.assert_array_equal(paused.audio[tail:], audio[tail - first - second :])


def test_drawn_pauses_are_deterministic_and_consistent_with_the_audio() -> None:
    audio = speechlike(1.0, f0=120, seed=0)
    config = AcousticsConfig(pause_probability=1.0)
    draws = [
        insert_pauses(audio, SR, words=WORDS, phones=PHONES, config=config, rng=np.random.default_rng(seed))
        for seed in (4, 4, 5)
    ]
    assert draws[0].audio.tobytes() == draws[1].audio.tobytes() and draws[0].phones == draws[1].phones
    assert draws[0].pauses != draws[2].pauses
    for paused in draws:
        assert len(paused.pauses) == 2
        added = paused.audio.shape[0] - audio.shape[0]
        assert added == round(sum(p.duration_s for p in paused.pauses) * SR)
        assert paused.phones[-1][1] == pytest.approx(paused.audio.shape[0] / SR)
        assert all(a[1] == b[0] for a, b in zip(paused.phones, paused.phones[1:], strict=False))
    unchanged = insert_pauses(
        audio, SR, words=WORDS, phones=PHONES, config=AcousticsConfig.clean(), rng=np.random.default_rng(0)
    )
    assert unchanged.audio is audio and unchanged.phones == PHONES


def test_segments_outside_the_audio_are_refused() -> None:
    with pytest.raises(AcousticsInputError, match="word segment 1"):
        insert_silences(np.zeros(SR // 2), SR, words=WORDS, phones=PHONES[:4], pause_samples={0: 10})


# --- timbre, channel, jitter -------------------------------------------------------------------------------


def sine_gain_db(filtered: np.ndarray, original: np.ndarray) -> float:
    middle = slice(SR // 4, -SR // 4)  # away from the ends, where the zero padding shows
    return float(10 * np.log10(np.mean(filtered[middle] ** 2) / np.mean(original[middle] ** 2)))


def test_timbre_is_a_speaker_property_with_the_drawn_response() -> None:
    config = AcousticsConfig()
    assert draw_speaker_timbre((1, 2), config=config) == draw_speaker_timbre((1, 2), config=config)
    assert draw_speaker_timbre((1, 2), config=config) != draw_speaker_timbre((1, 3), config=config)
    timbre = SpeakerTimbre(tilt_db_per_octave=-2.0, bands=(PeakingBand(2000.0, 6.0, 0.5),))
    time = np.arange(SR) / SR
    for frequency, expected_db in ((1000.0, 6.0 * math.exp(-2.0)), (2000.0, -2.0 + 6.0), (250.0, 4.0)):
        tone = np.sin(2 * np.pi * frequency * time)
        assert sine_gain_db(apply_timbre(tone, SR, timbre), tone) == pytest.approx(expected_db, abs=0.05)


def test_timbre_and_channel_move_nothing_in_time() -> None:
    click = np.zeros(SR // 2)
    click[4000] = 1.0
    timbre = draw_speaker_timbre(3, config=AcousticsConfig())
    channel = Channel(band=(200.0, 3400.0), eq_bands=(PeakingBand(800.0, 6.0, 0.5),))
    for filtered in (apply_timbre(click, SR, timbre), apply_channel(click, SR, channel)):
        assert filtered.shape == click.shape
        assert int(np.argmax(np.abs(filtered))) == 4000


def test_band_limiting_removes_what_lies_outside_the_band() -> None:
    time = np.arange(SR) / SR
    channel = Channel(band=(300.0, 3400.0), eq_bands=())
    for frequency in (60.0, 150.0, 300.0, 1000.0, 3400.0, 7000.0):
        # 4th-order Butterworth magnitudes: -10·log10(1 + (f/fc)^8) per edge.
        expected_db = -10 * np.log10(1 + (300.0 / frequency) ** 8) - 10 * np.log10(
            1 + (frequency / 3400.0) ** 8
        )
        tone = np.sin(2 * np.pi * frequency * time)
        assert sine_gain_db(apply_channel(tone, SR, channel), tone) == pytest.approx(expected_db, abs=0.1)
    assert sine_gain_db(apply_channel(tone, SR, channel), tone) < -25.0


def test_voice_jitter_draws_within_range_and_clamps_to_espeak_limits() -> None:
    config = AcousticsConfig(rate_jitter_factor_range=(0.9, 1.1), pitch_jitter_offset_range=(-5.0, 5.0))
    jitters = [draw_voice_jitter(config=config, rng=np.random.default_rng(seed)) for seed in range(20)]
    assert all(0.9 <= j.rate_factor <= 1.1 and -5.0 <= j.pitch_offset <= 5.0 for j in jitters)
    assert len({j.rate_factor for j in jitters}) == 20
    clean = draw_voice_jitter(config=AcousticsConfig.clean(), rng=np.random.default_rng(0))
    assert (clean.jittered_rate(175), clean.jittered_pitch(50)) == (175, 50)
    extreme = VoiceJitter(rate_factor=2.0, pitch_offset=-80.0)
    assert (extreme.jittered_rate(300), extreme.jittered_pitch(30)) == (450, 0)
