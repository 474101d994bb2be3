"""Acoustic and speaker variability for the synthetic corpus (pure numpy/scipy).

Clean espeak speech makes phone ABX nearly trivial; these transforms make it realistic. Per utterance, with
one generator seeded for that utterance (`rng`), the corpus builder:

1. `draw_voice_jitter(config=..., rng=rng)` and synthesises with the jittered espeak rate and pitch;
2. `insert_pauses(audio, sr, words=..., phones=..., config=..., rng=rng)`: disfluent pauses, with the
   alignments shifted;
3. `apply_acoustics(audio, sr, config=..., rng=rng, speaker_timbre=..., babble_pool=...)`: timbre → speed →
   reverb → noise → channel; multiply every alignment time by the returned `time_scale`.

Each speaker's timbre comes from its own seed: `draw_speaker_timbre(speaker_seed, config=...)`.
"""

from vgssl.corpus.acoustics.chain import AcousticsResult, apply_acoustics
from vgssl.corpus.acoustics.channel import Channel, apply_channel, draw_channel
from vgssl.corpus.acoustics.config import AcousticsConfig, AcousticsConfigError, NoiseTypeWeights
from vgssl.corpus.acoustics.errors import AcousticsInputError
from vgssl.corpus.acoustics.jitter import VoiceJitter, draw_voice_jitter
from vgssl.corpus.acoustics.noise import (
    NoiseType,
    babble_noise,
    mix_at_snr,
    pink_noise,
    signal_to_noise_db,
    white_noise,
)
from vgssl.corpus.acoustics.pauses import SILENCE, Pause, PausedUtterance, insert_pauses, insert_silences
from vgssl.corpus.acoustics.reverb import apply_reverb, measure_rt60, synthetic_impulse_response
from vgssl.corpus.acoustics.spectral import PeakingBand
from vgssl.corpus.acoustics.speed import SpeedChange, change_speed
from vgssl.corpus.acoustics.timbre import SpeakerTimbre, apply_timbre, draw_speaker_timbre

__all__ = [
    "SILENCE",
    "AcousticsConfig",
    "AcousticsConfigError",
    "AcousticsInputError",
    "AcousticsResult",
    "Channel",
    "NoiseType",
    "NoiseTypeWeights",
    "Pause",
    "PausedUtterance",
    "PeakingBand",
    "SpeakerTimbre",
    "SpeedChange",
    "VoiceJitter",
    "apply_acoustics",
    "apply_channel",
    "apply_reverb",
    "apply_timbre",
    "babble_noise",
    "change_speed",
    "draw_channel",
    "draw_speaker_timbre",
    "draw_voice_jitter",
    "insert_pauses",
    "insert_silences",
    "measure_rt60",
    "mix_at_snr",
    "pink_noise",
    "signal_to_noise_db",
    "synthetic_impulse_response",
    "white_noise",
]
