"""The utterance-level acoustic chain, in a fixed order: timbre → speed → reverb → noise → channel.

The order follows the physical path of a recording: the speaker's voice (timbre), how fast they speak
(speed), the room (reverb), other sound sources in the room (noise), then the microphone and line (channel).
All randomness comes from the `rng` argument, so seeding it per utterance makes the corpus independent of
the number of worker processes. Each stage draws from its own generator derived from `rng`, so switching
one stage off does not change what the others draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, get_args

import numpy as np

from vgssl.corpus.acoustics.channel import apply_channel, draw_channel
from vgssl.corpus.acoustics.config import AcousticsConfig
from vgssl.corpus.acoustics.errors import AcousticsInputError
from vgssl.corpus.acoustics.noise import NoiseType, make_noise, mix_at_snr
from vgssl.corpus.acoustics.reverb import apply_reverb, synthetic_impulse_response
from vgssl.corpus.acoustics.speed import change_speed
from vgssl.corpus.acoustics.timbre import SpeakerTimbre, apply_timbre

_STAGES = ("speed", "reverb", "noise", "channel")
# Output that would clip is scaled to this peak, leaving headroom for 16-bit PCM.
_PEAK_TARGET = 0.95


class AcousticsResult(NamedTuple):
    audio: np.ndarray  # float32, finite, peak <= 1
    time_scale: float  # new_time = old_time * time_scale (speed perturbation; exact in samples)
    applied: dict[str, Any]  # what was drawn, JSON-ready, for the corpus metadata


def _check_inputs(
    audio: np.ndarray,
    sample_rate: int,
    config: AcousticsConfig,
    speaker_timbre: SpeakerTimbre | None,
    babble_pool: Sequence[np.ndarray],
) -> None:
    if audio.ndim != 1 or audio.shape[0] == 0:
        raise AcousticsInputError(f"audio must be a non-empty 1-D waveform, got shape {audio.shape}")
    if not np.isfinite(audio).all():
        raise AcousticsInputError("audio holds NaN or infinite samples")
    if sample_rate <= 0:
        raise AcousticsInputError(f"sample_rate must be a positive number of Hz, got {sample_rate}")
    config.check_sample_rate(sample_rate)
    if config.timbre_enabled and speaker_timbre is None:
        raise AcousticsInputError(
            "timbre is enabled but no speaker_timbre was given: pass draw_speaker_timbre(speaker_seed, "
            "config=config), or set timbre_enabled to false"
        )
    if config.noise_probability > 0 and config.noise_type_weights.babble > 0 and not babble_pool:
        raise AcousticsInputError(
            "babble noise can be drawn but babble_pool is empty: pass waveforms of held-out-text "
            "utterances, or set noise_type_weights.babble to 0"
        )


def apply_acoustics(
    audio: np.ndarray,
    sample_rate: int,
    *,
    config: AcousticsConfig,
    rng: np.random.Generator,
    speaker_timbre: SpeakerTimbre | None = None,
    babble_pool: Sequence[np.ndarray] = (),
) -> AcousticsResult:
    """Apply the utterance-level transforms to synthesised `audio`; a `(audio, time_scale, applied)` tuple.

    Only speed perturbation changes the length; every other stage keeps it (reverb cuts its tail at the end
    of the input). Pauses, which need the alignment, are inserted before this, with `insert_pauses`.
    `babble_pool` holds utterances at `sample_rate`, spoken text absent from the split being built.
    """
    _check_inputs(audio, sample_rate, config, speaker_timbre, babble_pool)
    stage_rng = {
        stage: np.random.default_rng(seed)
        for stage, seed in zip(_STAGES, rng.integers(2**64, size=len(_STAGES), dtype=np.uint64), strict=True)
    }
    applied: dict[str, Any] = {"timbre": False, "speed_factor": 1.0, "time_scale": 1.0}
    signal = audio

    if config.timbre_enabled and speaker_timbre is not None:
        signal = apply_timbre(signal, sample_rate, speaker_timbre)
        applied["timbre"] = True

    if stage_rng["speed"].random() < config.speed_probability:
        change = change_speed(signal, factor=float(stage_rng["speed"].uniform(*config.speed_factor_range)))
        signal = change.audio
        applied.update(speed_factor=change.factor, time_scale=change.time_scale)

    applied.update(rt60_s=None, direct_to_reverberant_db=None)
    if stage_rng["reverb"].random() < config.reverb_probability:
        rt60_s = float(stage_rng["reverb"].uniform(*config.rt60_s_range))
        direct_to_reverberant_db = float(stage_rng["reverb"].uniform(*config.direct_to_reverberant_db_range))
        impulse_response = synthetic_impulse_response(
            rt60_s=rt60_s,
            direct_to_reverberant_db=direct_to_reverberant_db,
            sample_rate=sample_rate,
            rng=stage_rng["reverb"],
        )
        signal = apply_reverb(signal, impulse_response)
        applied.update(rt60_s=rt60_s, direct_to_reverberant_db=direct_to_reverberant_db)

    applied.update(noise_type=None, snr_db=None, babble_talkers=None)
    if stage_rng["noise"].random() < config.noise_probability:
        noise_rng = stage_rng["noise"]
        weights = config.noise_type_weights.as_dict()
        types: tuple[NoiseType, ...] = get_args(NoiseType)
        probabilities = np.array([weights[name] for name in types]) / sum(weights.values())
        noise_type = types[int(noise_rng.choice(len(types), p=probabilities))]
        snr_db = float(noise_rng.uniform(*config.snr_db_range))
        talkers = int(
            noise_rng.integers(config.babble_talker_count_range[0], config.babble_talker_count_range[1] + 1)
        )
        noise = make_noise(
            noise_type, signal.shape[0], rng=noise_rng, babble_pool=babble_pool, babble_talkers=talkers
        )
        signal = mix_at_snr(signal, noise, snr_db)
        applied.update(
            noise_type=noise_type, snr_db=snr_db, babble_talkers=talkers if noise_type == "babble" else None
        )

    channel = draw_channel(config=config, rng=stage_rng["channel"])
    signal = apply_channel(signal, sample_rate, channel)
    applied.update(channel.to_json())

    output = np.array(signal, dtype=np.float32)
    peak = float(np.max(np.abs(output)))
    applied["peak_gain"] = 1.0
    if peak > 1.0:
        applied["peak_gain"] = _PEAK_TARGET / peak
        output *= np.float32(applied["peak_gain"])
    return AcousticsResult(audio=output, time_scale=applied["time_scale"], applied=applied)
