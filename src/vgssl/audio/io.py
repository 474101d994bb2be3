"""Audio file I/O: mono float32 in [-1, 1] at a known sample rate, 16-bit PCM wav on disk.

The default rate is the frame convention's `SAMPLE_RATE` (vgssl.audio.frames), re-exported here.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from vgssl.atomic import atomic_path
from vgssl.audio.frames import SAMPLE_RATE
from vgssl.errors import VgsslError

__all__ = ["SAMPLE_RATE", "BadAudioError", "audio_duration", "read_audio", "write_wav"]


class BadAudioError(VgsslError):
    """An audio file cannot be read, is empty, or holds non-finite samples."""


def read_audio(path: str | os.PathLike[str], *, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read a file as mono float32 at `sample_rate`, resampling (soxr) and down-mixing when needed."""
    import soundfile

    if not Path(path).is_file():  # libsndfile would only say "System error."
        raise BadAudioError(f"audio file not found: {path}")
    try:
        audio, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:  # soundfile raises several types for corrupt or missing files
        raise BadAudioError(f"cannot read audio file {path}: {error}") from None
    if audio.shape[0] == 0:
        raise BadAudioError(f"audio file {path} is empty (0 samples)")
    audio = audio.mean(axis=1)
    if file_rate != sample_rate:
        import soxr

        audio = soxr.resample(audio, file_rate, sample_rate).astype(np.float32)
    if not np.isfinite(audio).all():
        raise BadAudioError(f"audio file {path} holds NaN or infinite samples")
    return np.ascontiguousarray(audio, dtype=np.float32)


def write_wav(
    path: str | os.PathLike[str], audio: np.ndarray, *, sample_rate: int = SAMPLE_RATE, durable: bool = True
) -> None:
    """Write mono audio as 16-bit PCM wav. Samples are clipped to [-1, 1].

    `durable` writes atomically (temp file, fsync, rename). A caller that publishes a whole directory
    atomically, like the corpus builder, passes False: one fsync per file was a quarter of its time.
    """
    import soundfile

    samples = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    if durable:
        with atomic_path(path) as tmp:
            soundfile.write(str(tmp), samples, sample_rate, subtype="PCM_16", format="WAV")
        return
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sample_rate, subtype="PCM_16", format="WAV")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(buffer.getvalue())


def audio_duration(path: str | os.PathLike[str]) -> float:
    """Seconds of audio in a file, from its header (nothing is decoded)."""
    import soundfile

    return soundfile.info(str(Path(path))).duration
