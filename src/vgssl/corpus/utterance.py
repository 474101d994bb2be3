"""One planned utterance from text to wav: voice jitter, espeak-ng, disfluent pauses, acoustics, alignment.

Runs inside worker processes. All randomness comes from the utterance's own seed and the corpus seed, so the
result does not depend on which worker runs it or on what ran before.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

import numpy as np

from vgssl.audio.io import SAMPLE_RATE, write_wav
from vgssl.corpus.acoustics import (
    AcousticsConfig,
    apply_acoustics,
    draw_speaker_timbre,
    draw_voice_jitter,
    insert_pauses,
)
from vgssl.corpus.acoustics.timbre import SpeakerTimbre
from vgssl.corpus.espeak import synthesize
from vgssl.corpus.grammar.registry import get_grammar
from vgssl.corpus.items import AlignedUtterance
from vgssl.corpus.plan import UtteranceJob, stream
from vgssl.corpus.speakers import Speaker
from vgssl.data.alignments import Alignment, Segment

BABBLE_SENTENCES_PER_LANGUAGE = 8


@dataclass(frozen=True)
class RenderSettings:
    """What every worker needs besides the job itself; small and picklable."""

    corpus_seed: int
    languages: tuple[str, ...]
    acoustics: AcousticsConfig
    babble_speakers: tuple[Speaker, ...]


@dataclass(frozen=True)
class UtteranceRecord:
    job: UtteranceJob
    num_samples: int
    alignment: Alignment
    applied: dict[str, object] = field(default_factory=dict)

    def aligned(self) -> AlignedUtterance:
        return AlignedUtterance(
            key=self.job.relpath.removesuffix(".wav"),
            language=self.job.language,
            speaker=self.job.speaker.id,
            num_samples=self.num_samples,
            sample_rate=SAMPLE_RATE,
            phones=[(s.onset, s.offset, s.label) for s in self.alignment.phones],
            words=[(s.onset, s.offset, s.label) for s in self.alignment.words],
        )


@cache
def _babble_pool(settings: RenderSettings) -> tuple[np.ndarray, ...]:
    """Clean utterances of held-out text (a separate random stream) that noise of type babble mixes."""
    pool = []
    for language in settings.languages:
        grammar = get_grammar(language)
        rng = stream(settings.corpus_seed, "babble", language)
        for index in range(BABBLE_SENTENCES_PER_LANGUAGE):
            speaker = settings.babble_speakers[index % len(settings.babble_speakers)]
            voice = speaker.voice(grammar.espeak_language)
            pool.append(synthesize(grammar.sentence(rng), voice, sample_rate=SAMPLE_RATE).audio)
    return tuple(pool)


@cache
def _timbre(settings: RenderSettings, speaker_id: str) -> SpeakerTimbre:
    return draw_speaker_timbre(
        (settings.corpus_seed, zlib.crc32(speaker_id.encode())), config=settings.acoustics
    )


def _tuples(segments: tuple[Segment, ...]) -> list[tuple[float, float, str]]:
    return [(s.onset, s.offset, s.label) for s in segments]


def _segments(spans: list[tuple[float, float, str]]) -> tuple[Segment, ...]:
    return tuple(Segment(onset, offset, label) for onset, offset, label in spans)


def render_utterance(job: UtteranceJob, settings: RenderSettings, audio_root: Path) -> UtteranceRecord:
    """Synthesise one planned utterance, apply the acoustic transforms and write its wav."""
    config = settings.acoustics
    rng = np.random.default_rng(job.seed)
    jitter = draw_voice_jitter(config=config, rng=rng)
    voice = job.speaker.voice(job.espeak_language)
    voice = replace(voice, rate=jitter.jittered_rate(voice.rate), pitch=jitter.jittered_pitch(voice.pitch))
    synthesis = synthesize(job.text, voice, sample_rate=SAMPLE_RATE)
    paused = insert_pauses(
        synthesis.audio,
        SAMPLE_RATE,
        words=_tuples(synthesis.alignment.words),
        phones=_tuples(synthesis.alignment.phones),
        config=config,
        rng=rng,
    )
    result = apply_acoustics(
        paused.audio,
        SAMPLE_RATE,
        config=config,
        rng=rng,
        speaker_timbre=_timbre(settings, job.speaker.id) if config.timbre_enabled else None,
        babble_pool=_babble_pool(settings) if config.noise_probability > 0 else (),
    )
    alignment = Alignment(_segments(paused.phones), _segments(paused.words)).scaled(result.time_scale)
    # Not durable per file: the builder publishes the whole corpus with one atomic rename.
    write_wav(audio_root / job.relpath, result.audio, sample_rate=SAMPLE_RATE, durable=False)
    applied = {
        "rate": voice.rate,
        "pitch": voice.pitch,
        "pauses": [pause.to_json() for pause in paused.pauses],
        **result.applied,
    }
    return UtteranceRecord(job=job, num_samples=len(result.audio), alignment=alignment, applied=applied)
