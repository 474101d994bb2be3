"""Speed perturbation by resampling, as sox `speed` and Kaldi-style data augmentation do it.

Factor f plays the audio f times faster: the duration is divided by f and every frequency, pitch included,
is multiplied by f. The factor is rounded to a ratio of small integers for polyphase resampling; the rounded
(effective) factor and the exact time scale are returned so that alignments can follow the audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import scipy.signal

from vgssl.corpus.acoustics.errors import AcousticsInputError

# Denominators up to 1000 put every factor in 0.5-2 within 0.001 of the request; resampling 5 s of audio
# with such a ratio still takes only a few milliseconds.
_MAX_RATIO_DENOMINATOR = 1000


@dataclass(frozen=True)
class SpeedChange:
    audio: np.ndarray
    factor: float  # the effective factor after rounding to a ratio of integers
    time_scale: float  # new_time = old_time * time_scale; equals len(audio) / len(original) exactly


def change_speed(audio: np.ndarray, *, factor: float) -> SpeedChange:
    """Resample `audio` so that it plays `factor` times faster (factor 1 returns it unchanged)."""
    if not factor > 0:
        raise AcousticsInputError(f"speed factor must be > 0, got {factor}")
    if audio.shape[0] == 0:
        raise AcousticsInputError("cannot change the speed of empty audio")
    ratio = Fraction(factor).limit_denominator(_MAX_RATIO_DENOMINATOR)
    if ratio == 1:
        return SpeedChange(audio=audio, factor=1.0, time_scale=1.0)
    # Output sample k is taken at input time k·f, so an event at input sample n lands at n / f.
    resampled = scipy.signal.resample_poly(audio, up=ratio.denominator, down=ratio.numerator)
    return SpeedChange(audio=resampled, factor=float(ratio), time_scale=resampled.shape[0] / audio.shape[0])
