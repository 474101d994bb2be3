"""What a built-in corpus contains: sizes, speakers, languages and seed, validated before any work."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vgssl.corpus.acoustics import AcousticsConfig
from vgssl.errors import VgsslError


class CorpusSpecError(VgsslError):
    """A corpus option has a value that cannot produce a corpus."""


class CorpusSpec(BaseModel):
    """Sizes are per language unless stated. Defaults suit a multi-model study on a 2-core CPU.

    1.25 h of audio-only training speech and 1,200 training images x 1 caption per language (about 1 h of
    caption speech at ~2.8 s each) give more unique audio than a 10-20 CPU-minute SSL run sees (FACTS: most
    of the gain comes in the first few hundred steps), keep grounded audio a minority (about 40 %, the
    "limited grounding" of the study) and keep the build within a few minutes on 2 cores.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    languages: tuple[str, ...] = ("en", "fr")
    hours: float = Field(1.25, description="audio-only training speech per language, in hours")
    valid_fraction: float = Field(0.05, description="valid split size relative to train (audio and images)")
    test_minutes: float = Field(8.0, description="audio-only test speech per language (the ABX set)")
    images: int = Field(1200, description="training images; valid and test images are added on top")
    test_images: int = Field(200, description="held-out images whose captions use test speakers")
    captions_per_image: int = Field(1, description="spoken captions per image and language")
    image_size: int = 128
    train_speakers: int = 16
    test_speakers: int = 4
    seed: int = 0
    clean: bool = Field(False, description="clean speech: no acoustic or speaker variability transforms")
    acoustics: AcousticsConfig = AcousticsConfig()

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("give at least one language")
        if len(set(value)) != len(value):
            raise ValueError(f"languages repeat: {', '.join(value)}")
        return value

    @field_validator("hours", "test_minutes")
    @classmethod
    def _positive_amount(cls, value: float) -> float:
        if not value > 0:
            raise ValueError(f"must be > 0, got {value}")
        return value

    @field_validator("valid_fraction")
    @classmethod
    def _fraction(cls, value: float) -> float:
        if not 0 < value < 1:
            raise ValueError(f"must be in (0, 1), got {value}")
        return value

    @field_validator("images", "test_images", "captions_per_image", "train_speakers", "test_speakers")
    @classmethod
    def _positive_count(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"must be at least 1, got {value}")
        return value

    @field_validator("image_size")
    @classmethod
    def _image_size(cls, value: int) -> int:
        if not 32 <= value <= 1024:
            raise ValueError(f"must be between 32 and 1024 pixels, got {value}")
        return value

    @property
    def effective_acoustics(self) -> AcousticsConfig:
        return AcousticsConfig.clean() if self.clean else self.acoustics

    @property
    def valid_images(self) -> int:
        return max(1, round(self.images * self.valid_fraction))


TINY = {
    "hours": 0.02,
    # 0.05 would leave 2-3 valid utterances per language, too few for any within-context ABX cell on the
    # valid items that choose the study's layers; 0.4 gives about 14 from 3 speakers (about 30 s).
    "valid_fraction": 0.4,
    "test_minutes": 1.0,
    "images": 24,
    "test_images": 8,
    "captions_per_image": 1,
    "train_speakers": 3,
    "test_speakers": 2,
    "image_size": 64,
}


def make_spec(*, tiny: bool = False, **options: object) -> CorpusSpec:
    """Build a spec from the defaults (or the tiny preset) overridden by `options` that are not None."""
    values = dict(TINY) if tiny else {}
    values.update({key: value for key, value in options.items() if value is not None})
    try:
        return CorpusSpec(**values)
    except ValidationError as error:
        problems = "; ".join(
            f"--{'-'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}" for e in error.errors()
        )
        raise CorpusSpecError(f"invalid corpus options: {problems}") from None
