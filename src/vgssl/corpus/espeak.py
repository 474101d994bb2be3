"""Speech synthesis with eSpeak NG, with exact phone and word timings.

libespeak-ng (1.52, from the `espeakng-loader` wheel) is driven through its C API with ctypes, in
synchronous mode with IPA phoneme events. `render` returns espeak's own 22 050 Hz audio and events;
`synthesize` resamples to the corpus rate and turns the events into a clean `Alignment`
(see `vgssl.corpus.alignment` for the clean-up rules).

Determinism: the library keeps state between utterances (the same text twice in one process gives slightly
different audio) and seeds its noise generators from the clock. Every call therefore loads the library
afresh, seeds both random generators it uses (its own and, for the klatt-3 `speechPlayer` back-end, libc's
`rand`) and unloads it again, which costs well under a millisecond. The same text and voice then give
bit-identical audio whatever was synthesised before, in this process or another.

Concurrency: the library is not re-entrant. Calls are serialised by a lock within a process; parallelise
with processes. Nothing stays loaded between calls, so the module is safe to use after fork or spawn.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from vgssl.corpus.alignment import PhoneEvent, WordEvent, align_events, strip_stress
from vgssl.data.alignments import Alignment
from vgssl.errors import VgsslError

ESPEAK_SAMPLE_RATE = 22_050
# Silence, for finding stop closures and pauses (int16 scale): dry voices write exact zeros there; voices
# with an echo fill it with the echo of earlier speech (about -55 dBFS), which stays under 512.
_DRY_SILENCE_LEVEL = 64
_ECHO_SILENCE_LEVEL = 512
# One fixed seed: the noise of breathy and whispered variants is part of the voice, not of the utterance.
_RANDOM_SEED = 1

# espeak_AUDIO_OUTPUT, espeakINITIALIZE_* and espeak_EVENT_TYPE values from speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_PHONEME_IPA = 0x0002
_INITIALIZE_DONT_EXIT = 0x8000
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_END = 5
_EVENT_PHONEME = 7
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PARAMETER_RATE = 1
_PARAMETER_PITCH = 3
_PARAMETER_RANGE = 4
_PHONEME_MODE_IPA = 0x02
# espeak_TextToPhonemes puts this byte between the phonemes of a word (bits 8-23 of phonememode).
_PHONEME_SEPARATOR = "_"


class UnknownLanguageError(VgsslError):
    """The requested espeak language has no voice."""


class UnknownVariantError(VgsslError):
    """The requested voice variant does not exist."""


class BadVoiceError(VgsslError):
    """A voice setting (rate, pitch, pitch range) is outside what espeak accepts."""


class SynthesisError(VgsslError):
    """espeak could not synthesise a text, or produced no phonemes for it."""


@dataclass(frozen=True)
class Voice:
    language: str  # an espeak language code, e.g. "en-us", "fr"
    variant: str  # a variant file name, e.g. "m3", "f2", "klatt2"
    rate: int  # words per minute
    pitch: int  # 0-100, scales the variant's base pitch
    pitch_range: int  # 0-100, 0 is monotone

    @property
    def name(self) -> str:
        """The voice as espeak names it: "en-us+m3"."""
        return f"{self.language}+{self.variant}"


@dataclass(frozen=True)
class Rendering:
    """espeak's own output for one text: 16-bit audio at its native rate, and its events."""

    samples: np.ndarray  # int16, mono, ESPEAK_SAMPLE_RATE
    phonemes: tuple[PhoneEvent, ...]
    words: tuple[WordEvent, ...]
    end_sample: int  # where espeak says the speech ends; echo variants ring on after it


@dataclass(frozen=True)
class Synthesis:
    audio: np.ndarray  # float32, mono, in [-1, 1]
    sample_rate: int
    alignment: Alignment


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),  # a union; PHONEME events hold the IPA name here, NUL-padded
    ]


class _VoiceInfo(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # (priority byte, NUL-terminated code)*, then a 0 byte
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)
_library_lock = threading.Lock()


def _declare(lib: ctypes.CDLL) -> None:
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_ng_SetRandSeed.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_VoiceInfo)]
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_VoiceInfo))
    lib.espeak_Terminate.argtypes = []
    lib.espeak_Terminate.restype = ctypes.c_int


@contextmanager
def _fresh_library() -> Iterator[ctypes.CDLL]:
    """Load, initialise and seed libespeak-ng; unload it afterwards so that no state survives the call."""
    import _ctypes

    import espeakng_loader

    path = espeakng_loader.get_library_path()
    with _library_lock:
        lib = ctypes.CDLL(path)
        try:
            _declare(lib)
            options = _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_PHONEME_IPA | _INITIALIZE_DONT_EXIT
            rate = lib.espeak_Initialize(
                _AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), options
            )
            if rate != ESPEAK_SAMPLE_RATE:
                raise SynthesisError(
                    f"libespeak-ng at {path} failed to initialise (returned {rate}, expected sample rate "
                    f"{ESPEAK_SAMPLE_RATE}); reinstall the espeakng-loader package"
                )
            lib.espeak_ng_SetRandSeed(_RANDOM_SEED)
            ctypes.CDLL(None).srand(_RANDOM_SEED)
            yield lib
        finally:
            lib.espeak_Terminate()
            _ctypes.dlclose(lib._handle)
        _check_unloaded(path)


def _check_unloaded(path: str) -> None:
    # If anything else in the process holds the library open, dlclose keeps its state and determinism is lost.
    try:
        still_loaded = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    except OSError:
        return
    import _ctypes

    _ctypes.dlclose(still_loaded._handle)
    raise SynthesisError(
        f"{path} stays loaded after vgssl unloads it: another module in this process holds it open "
        "(e.g. espeakng_loader.load_library or phonemizer), so synthesis would not be reproducible; "
        "synthesise in a process that does not load espeak otherwise"
    )


def _check_voice(voice: Voice) -> None:
    _check_language(voice.language)
    if voice.variant not in available_variants():
        raise UnknownVariantError(
            f"unknown espeak voice variant {voice.variant!r}; available: {', '.join(available_variants())}"
        )
    for setting, value, low, high in (
        ("rate", voice.rate, 80, 450),
        ("pitch", voice.pitch, 0, 100),
        ("pitch_range", voice.pitch_range, 0, 100),
    ):
        if not low <= value <= high:
            raise BadVoiceError(f"voice {voice.name}: {setting} must be in [{low}, {high}], got {value}")


def _select_voice(lib: ctypes.CDLL, voice: Voice) -> None:
    if lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
        raise SynthesisError(f"espeak refused voice {voice.name!r}")
    for parameter, value in (
        (_PARAMETER_RATE, voice.rate),
        (_PARAMETER_PITCH, voice.pitch),
        (_PARAMETER_RANGE, voice.pitch_range),
    ):
        lib.espeak_SetParameter(parameter, value, 0)


def _check_language(language: str) -> None:
    if language not in available_languages():
        raise UnknownLanguageError(
            f"unknown espeak language {language!r}; available: {', '.join(available_languages())}"
        )


def render(text: str, voice: Voice) -> Rendering:
    """Synthesise `text` with espeak at its native 22 050 Hz and return the audio with its raw events."""
    encoded = text.encode("utf-8") + b"\0"
    chunks: list[np.ndarray] = []
    phonemes: list[PhoneEvent] = []
    words: list[WordEvent] = []
    end_samples: list[int] = []

    def collect(wav: ctypes.Array[ctypes.c_short], count: int, events: ctypes.Array[_Event]) -> int:
        if count > 0:
            chunks.append(np.ctypeslib.as_array(wav, (count,)).copy())
        index = 0
        while events[index].type != _EVENT_LIST_TERMINATED:
            event = events[index]
            if event.type == _EVENT_PHONEME:
                phonemes.append(PhoneEvent(event.sample, event.id.decode("utf-8"), len(words) - 1))
            elif event.type == _EVENT_WORD:
                # espeak counts characters from 1.
                start = event.text_position - 1
                words.append(WordEvent(event.sample, start, start + event.length))
            elif event.type == _EVENT_END:
                end_samples.append(event.sample)
            index += 1
        return 0

    _check_voice(voice)
    callback = _SynthCallback(collect)
    with _fresh_library() as lib:
        _select_voice(lib, voice)
        lib.espeak_SetSynthCallback(callback)
        status = lib.espeak_Synth(encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
    if status != 0:
        raise SynthesisError(f"espeak_Synth failed with status {status} for voice {voice.name} on {text!r}")
    if not any(event.label for event in phonemes):
        raise SynthesisError(f"espeak produced no phonemes for {text!r} (voice {voice.name}); give it words")
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    return Rendering(samples, tuple(phonemes), tuple(words), end_samples[-1] if end_samples else len(samples))


def synthesize(text: str, voice: Voice, *, sample_rate: int = 16_000) -> Synthesis:
    """Speak `text` with `voice`: float32 audio at `sample_rate` and its phone and word alignment."""
    import soxr

    rendering = render(text, voice)
    audio = rendering.samples.astype(np.float32) / 32768.0
    if sample_rate != ESPEAK_SAMPLE_RATE:
        audio = soxr.resample(audio, ESPEAK_SAMPLE_RATE, sample_rate)
    audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    alignment = align_events(
        rendering.phonemes,
        rendering.words,
        text=text,
        samples=rendering.samples,
        sample_rate=ESPEAK_SAMPLE_RATE,
        end_sample=rendering.end_sample,
        silence_level=_ECHO_SILENCE_LEVEL if has_echo(voice.variant) else _DRY_SILENCE_LEVEL,
        output_rate=sample_rate,
        output_length=len(audio),
    )
    return Synthesis(audio, sample_rate, alignment)


def text_to_phonemes(text: str, *, language: str) -> list[str]:
    """espeak's phonemes for `text` (IPA, stress marks stripped), without pauses.

    For English and French (and e.g. German, Spanish) these are exactly the phones of the PHONEME events.
    Some languages differ: tone languages (cmn, vi) add tone numbers here, Russian palatalisation (ʲ) is an
    event of its own, and Hindi and Arabic long consonants (tː) lose their length mark in the events.
    """
    _check_language(language)
    buffer = ctypes.create_string_buffer(text.encode("utf-8"))
    cursor = ctypes.c_char_p(ctypes.addressof(buffer))
    mode = _PHONEME_MODE_IPA | (ord(_PHONEME_SEPARATOR) << 8)
    phones: list[str] = []
    with _fresh_library() as lib:
        if lib.espeak_SetVoiceByName(language.encode()) != 0:
            raise SynthesisError(f"espeak refused language {language!r}")
        # Each call translates one clause and advances the cursor; it becomes NULL at the end of the text.
        while cursor.value is not None:
            clause = lib.espeak_TextToPhonemes(ctypes.byref(cursor), _CHARS_UTF8, mode)
            for word in clause.decode("utf-8").split():
                phones.extend(strip_stress(name) for name in word.split(_PHONEME_SEPARATOR))
    return [phone for phone in phones if phone]


@functools.cache
def _voice_table() -> tuple[tuple[str, ...], tuple[tuple[str, int], ...]]:
    """(language codes, (variant, gender) pairs) of the installed espeak data."""
    languages: set[str] = set()
    variants: list[tuple[str, int]] = []
    with _fresh_library() as lib:
        for spec in (None, b"variant"):
            query = None
            if spec is not None:
                query = _VoiceInfo()
                query.languages = ctypes.cast(ctypes.c_char_p(spec), ctypes.c_void_p)
            listed = lib.espeak_ListVoices(query)
            index = 0
            while listed[index]:
                info = listed[index].contents
                family, _, name = info.identifier.decode("utf-8").rpartition("/")
                if spec is None:
                    languages.add(name.lower())
                elif family == "!v":
                    variants.append((name, info.gender))
                index += 1
    return tuple(sorted(languages)), tuple(sorted(variants))


def available_languages() -> list[str]:
    """espeak language codes of the shipped voices ("en-us", "fr", ...), usable in `Voice.language`."""
    return list(_voice_table()[0])


def available_variants() -> list[str]:
    """Voice variant names ("m1".."m8", "f1".."f5", "klatt".."klatt6", named ones) for `Voice.variant`."""
    return [name for name, _ in _voice_table()[1]]


def variant_genders() -> dict[str, str]:
    """Each variant's gender as its voice file declares it: "male", "female" or "none"."""
    names = {1: "male", 2: "female"}
    return {name: names.get(gender, "none") for name, gender in _voice_table()[1]}


@functools.cache
def has_echo(variant: str) -> bool:
    """Whether a variant's voice file adds an echo (`echo <delay ms> <amplitude>` with amplitude > 0)."""
    import espeakng_loader

    path = os.path.join(espeakng_loader.get_data_path(), "voices", "!v", variant)
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            words = line.split()
            if len(words) >= 3 and words[0] == "echo" and words[2].isdigit():
                return int(words[2]) > 0
    return False
