"""Options of the acoustic and speaker variability transforms, validated before any audio is touched.

Every range is a `(low, high)` pair sampled uniformly per utterance (or per speaker, for timbre); a
probability says how often a transform is applied at all. `AcousticsConfig()` is the realistic default
of the built-in corpus; `AcousticsConfig.clean()` switches everything off.

Bad values raise `AcousticsConfigError` naming the option and what is allowed, also when the config is
nested in a larger pydantic model or loaded with `model_validate` from YAML.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    ModelWrapValidatorHandler,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from vgssl.errors import VgsslError


class AcousticsConfigError(VgsslError):
    """An acoustics option has a value that cannot work."""


def _option_name(info: ValidationInfo) -> str:
    return info.field_name or "<option>"


def _check_probability(value: float, info: ValidationInfo) -> float:
    if not 0.0 <= value <= 1.0:
        raise AcousticsConfigError(
            f"acoustics option {_option_name(info)} = {value!r} is not a probability: use a value in [0, 1]"
        )
    return value


def _check_ordered(value: tuple[float, float], info: ValidationInfo) -> tuple[float, float]:
    low, high = value
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise AcousticsConfigError(
            f"acoustics option {_option_name(info)} = {value!r} is not a range: "
            "give (low, high) with finite low <= high"
        )
    return value


def _check_positive(value: tuple[float, float], info: ValidationInfo) -> tuple[float, float]:
    if value[0] <= 0:
        raise AcousticsConfigError(
            f"acoustics option {_option_name(info)} = {value!r} must be strictly positive: "
            "give (low, high) with 0 < low <= high"
        )
    return value


def _check_count_range(value: tuple[int, int], info: ValidationInfo) -> tuple[int, int]:
    low, high = value
    if low < 1 or low > high:
        raise AcousticsConfigError(
            f"acoustics option {_option_name(info)} = {value!r} is not a count range: "
            "give (low, high) integers with 1 <= low <= high"
        )
    return value


def _check_non_negative(value: float, info: ValidationInfo) -> float:
    if value < 0:
        raise AcousticsConfigError(
            f"acoustics option noise_type_weights.{_option_name(info)} = {value!r} is negative: "
            "weights are relative frequencies >= 0"
        )
    return value


Probability = Annotated[float, AfterValidator(_check_probability)]
Range = Annotated[tuple[float, float], AfterValidator(_check_ordered)]
PositiveRange = Annotated[
    tuple[float, float], AfterValidator(_check_ordered), AfterValidator(_check_positive)
]
CountRange = Annotated[tuple[int, int], AfterValidator(_check_count_range)]
Weight = Annotated[float, AfterValidator(_check_non_negative)]


def _named_error(
    model: type[BaseModel], error: ValidationError, *, prefix: tuple[str, ...] = ()
) -> AcousticsConfigError:
    """Turn pydantic's type and unknown-key errors into an `AcousticsConfigError` naming the option."""
    problems = []
    for detail in error.errors():
        option = ".".join(str(part) for part in (*prefix, *detail["loc"])) or "<config>"
        if detail["type"] == "extra_forbidden":
            problems.append(f"{option}: unknown option; allowed: {', '.join(model.model_fields)}")
        else:
            problems.append(f"{option} = {detail.get('input')!r}: {detail['msg']}")
    return AcousticsConfigError(f"invalid {model.__name__}: " + "; ".join(problems))


class NoiseTypeWeights(BaseModel):
    """Relative frequencies of the noise types when noise is added (normalised to sum to 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    white: Weight = 1.0
    pink: Weight = 2.0
    babble: Weight = 2.0

    @model_validator(mode="wrap")
    @classmethod
    def _named_errors(
        cls, data: Any, handler: ModelWrapValidatorHandler[NoiseTypeWeights]
    ) -> NoiseTypeWeights:
        try:
            return handler(data)
        except ValidationError as error:
            raise _named_error(cls, error, prefix=("noise_type_weights",)) from None

    def as_dict(self) -> dict[str, float]:
        return {"white": self.white, "pink": self.pink, "babble": self.babble}


class AcousticsConfig(BaseModel):
    """Acoustic and speaker variability of a synthetic corpus; the defaults aim at realistic speech."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # Per speaker (drawn once from the speaker's seed): spectral tilt plus one peaking band per formant zone.
    timbre_enabled: bool = True
    timbre_tilt_db_per_octave_range: Range = (-3.0, 3.0)
    timbre_band_centre_hz_ranges: tuple[PositiveRange, ...] = (
        (300.0, 900.0),
        (900.0, 2400.0),
        (2400.0, 3800.0),
    )
    timbre_band_gain_db_range: Range = (-6.0, 6.0)
    timbre_band_width_octaves_range: PositiveRange = (0.25, 0.75)

    # Per utterance, applied by the builder through espeak's rate (words per minute) and pitch (0-100).
    rate_jitter_factor_range: PositiveRange = (0.92, 1.08)
    pitch_jitter_offset_range: Range = (-6.0, 6.0)

    # Disfluent pauses, drawn independently at every boundary between two words.
    pause_probability: Probability = 0.08
    pause_duration_s_range: PositiveRange = (0.1, 0.5)

    # Speed perturbation (sox `speed`: duration divided by the factor, pitch multiplied by it).
    speed_probability: Probability = 0.5
    speed_factor_range: PositiveRange = (0.9, 1.1)

    # Room reverberation from a synthetic impulse response.
    reverb_probability: Probability = 0.4
    rt60_s_range: PositiveRange = (0.2, 0.8)
    direct_to_reverberant_db_range: Range = (-3.0, 10.0)

    # Additive noise; babble mixes utterances of held-out text that the caller passes in.
    noise_probability: Probability = 0.8
    snr_db_range: Range = (5.0, 30.0)
    noise_type_weights: NoiseTypeWeights = NoiseTypeWeights()
    babble_talker_count_range: CountRange = (3, 6)

    # Channel: band-limiting (zero-phase Butterworth-shaped high- and low-pass) and random peaking EQ.
    band_limit_probability: Probability = 0.3
    highpass_cutoff_hz_range: PositiveRange = (50.0, 300.0)
    lowpass_cutoff_hz_range: PositiveRange = (3400.0, 7000.0)
    random_eq_probability: Probability = 0.3
    random_eq_band_count_range: CountRange = (1, 3)
    random_eq_centre_hz_range: PositiveRange = (200.0, 6000.0)
    random_eq_gain_db_range: Range = (-6.0, 6.0)
    random_eq_width_octaves_range: PositiveRange = (0.3, 1.5)

    @model_validator(mode="wrap")
    @classmethod
    def _named_errors(cls, data: Any, handler: ModelWrapValidatorHandler[AcousticsConfig]) -> AcousticsConfig:
        try:
            config = handler(data)
        except ValidationError as error:
            raise _named_error(cls, error) from None
        config._check_consistency()
        return config

    def _check_consistency(self) -> None:
        if self.highpass_cutoff_hz_range[1] >= self.lowpass_cutoff_hz_range[0]:
            raise AcousticsConfigError(
                f"acoustics options highpass_cutoff_hz_range = {self.highpass_cutoff_hz_range} and "
                f"lowpass_cutoff_hz_range = {self.lowpass_cutoff_hz_range} overlap: every high-pass cutoff "
                "must lie below every low-pass cutoff, or band-limiting could remove the whole signal"
            )
        if self.noise_probability > 0 and sum(self.noise_type_weights.as_dict().values()) == 0:
            raise AcousticsConfigError(
                "acoustics option noise_type_weights are all 0 while noise_probability > 0: "
                "give at least one noise type a positive weight, or set noise_probability to 0"
            )

    def check_sample_rate(self, sample_rate: int) -> None:
        """Raise `AcousticsConfigError` if a frequency option in use reaches the Nyquist frequency."""
        nyquist = sample_rate / 2
        frequency_ranges: dict[str, tuple[float, float]] = {}
        if self.band_limit_probability > 0:
            frequency_ranges["lowpass_cutoff_hz_range"] = self.lowpass_cutoff_hz_range
        if self.random_eq_probability > 0:
            frequency_ranges["random_eq_centre_hz_range"] = self.random_eq_centre_hz_range
        if self.timbre_enabled:
            for index, zone in enumerate(self.timbre_band_centre_hz_ranges):
                frequency_ranges[f"timbre_band_centre_hz_ranges[{index}]"] = zone
        for option, (_, high) in frequency_ranges.items():
            if high >= nyquist:
                raise AcousticsConfigError(
                    f"acoustics option {option} reaches {high} Hz, at or above the Nyquist frequency "
                    f"{nyquist} Hz of {sample_rate} Hz audio: keep every frequency below {nyquist} Hz"
                )

    @classmethod
    def clean(cls) -> AcousticsConfig:
        """Every transform off: `apply_acoustics` returns its input unchanged; no jitter, no pauses."""
        return cls(
            timbre_enabled=False,
            rate_jitter_factor_range=(1.0, 1.0),
            pitch_jitter_offset_range=(0.0, 0.0),
            pause_probability=0.0,
            speed_probability=0.0,
            reverb_probability=0.0,
            noise_probability=0.0,
            band_limit_probability=0.0,
            random_eq_probability=0.0,
        )
