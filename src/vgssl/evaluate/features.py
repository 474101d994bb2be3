"""Layer-wise features at 50 Hz from vgssl checkpoints, transformers wav2vec2/HuBERT dirs, or baselines.

Frame convention, shared by every kind of model so that ABX item slicing is identical: an utterance of N
samples at 16 kHz has floor((N − 400) / 320) + 1 frames (the wav2vec2 waveform CNN without padding); frame i
sees samples [320·i, 320·i + 400) and, for ABX, stands at time 0.01 + 0.02·i s (fastabx's Δt/2 + i·Δt).

Baselines use exactly those windows (25 ms, hop 20 ms):
* `fbank`: 80 log-mel energies (Hann window, 512-point FFT, 20–8000 Hz, Kaldi-style triangles on the mel
  axis, natural log floored at 1e-10).
* `mfcc`: pre-emphasis 0.97, Hamming window, 40 log-mel energies, orthonormal DCT-II, 13 coefficients
  (c0 included), plus Δ and ΔΔ (HTK regression over ±2 frames) = 39 dimensions, then per-utterance
  mean/variance normalisation. `mfcc-raw` is the same without the normalisation.

Extraction is in eval mode under `torch.inference_mode()`, batched by length, and writes one float32 `(T, D)`
tensor per utterance and layer to `OUT/<layer>/<key>.pt`. Layer 0 is the input to the first transformer
block (s3prl/transformers convention); baselines have a single layer named 0.
"""

from __future__ import annotations

import json
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from vgssl.corpus.audio import SAMPLE_RATE, read_audio
from vgssl.errors import BadOptionError, VgsslError

if TYPE_CHECKING:
    import torch

BaselineName = Literal["mfcc", "mfcc-raw", "fbank"]
BASELINES: tuple[str, ...] = get_args(BaselineName)
FEATURES_FORMAT = "vgssl-features-v1"
WINDOW_SAMPLES = 400
HOP_SAMPLES = 320
FRAME_COUNT = "floor((N - 400) / 320) + 1 frames for N samples at 16 kHz"
FFT_SIZE = 512
MEL_LOW_HZ = 20.0
MEL_HIGH_HZ = 8000.0
LOG_FLOOR = 1e-10
MFCC_MELS = 40
MFCC_COEFFICIENTS = 13
FBANK_MELS = 80
PRE_EMPHASIS = 0.97
DELTA_WIDTH = 2


class UnsupportedModelError(VgsslError):
    """MODEL is neither a baseline name, a vgssl checkpoint, nor a transformers wav2vec2/HuBERT directory."""


class FrameRateError(VgsslError):
    """A model's frames are not at 50 Hz, the rate every vgssl ABX evaluation assumes."""


def frame_count(num_samples: int) -> int:
    """Frames of an utterance of `num_samples` samples (0 when shorter than one 25 ms window)."""
    return max(0, (num_samples - WINDOW_SAMPLES) // HOP_SAMPLES + 1)


# --- baselines ------------------------------------------------------------------------------------------


def _hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    import torch

    return 1127.0 * torch.log1p(hz / 700.0)


@cache
def mel_filterbank(num_mels: int) -> torch.Tensor:
    """(FFT_SIZE // 2 + 1, num_mels) triangular weights, triangles drawn on the mel axis (as Kaldi does)."""
    import torch

    bin_mels = _hz_to_mel(torch.linspace(0, SAMPLE_RATE / 2, FFT_SIZE // 2 + 1, dtype=torch.float64))
    edges = torch.linspace(
        float(_hz_to_mel(torch.tensor(MEL_LOW_HZ))),
        float(_hz_to_mel(torch.tensor(MEL_HIGH_HZ))),
        num_mels + 2,
    ).double()
    left, centre, right = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mels[:, None] - left) / (centre - left)
    falling = (right - bin_mels[:, None]) / (right - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


def _frames(wav: torch.Tensor) -> torch.Tensor:
    """(T, 400) frames of a 1-D waveform; T follows `frame_count`."""
    if wav.numel() < WINDOW_SAMPLES:
        return wav.new_zeros((0, WINDOW_SAMPLES))
    return wav.unfold(0, WINDOW_SAMPLES, HOP_SAMPLES)


def log_mel(
    wav: torch.Tensor, *, num_mels: int, window: Literal["hann", "hamming"], pre_emphasis: float
) -> torch.Tensor:
    """(T, num_mels) natural-log mel energies of a 1-D float waveform at 16 kHz."""
    import torch

    if pre_emphasis:
        wav = torch.cat([wav[:1], wav[1:] - pre_emphasis * wav[:-1]])
    frames = _frames(wav)
    if frames.shape[0] == 0:  # MKL's FFT refuses an empty batch
        return wav.new_zeros((0, num_mels))
    taper = (torch.hann_window if window == "hann" else torch.hamming_window)(
        WINDOW_SAMPLES, periodic=False, dtype=wav.dtype, device=wav.device
    )
    power = torch.fft.rfft(frames * taper, n=FFT_SIZE).abs().square()
    energies = power @ mel_filterbank(num_mels).to(wav.device, wav.dtype)
    return torch.log(torch.clamp(energies, min=LOG_FLOOR))


@cache
def _dct_matrix(num_inputs: int, num_outputs: int) -> torch.Tensor:
    """(num_inputs, num_outputs) orthonormal DCT-II basis."""
    import torch

    n = torch.arange(num_inputs, dtype=torch.float64)
    k = torch.arange(num_outputs, dtype=torch.float64)
    basis = torch.cos(math.pi / num_inputs * (n[:, None] + 0.5) * k[None, :]) * math.sqrt(2.0 / num_inputs)
    basis[:, 0] /= math.sqrt(2.0)
    return basis.float()


def deltas(features: torch.Tensor, *, width: int = DELTA_WIDTH) -> torch.Tensor:
    """HTK regression deltas over ±`width` frames along time, edges replicated: (T, D) -> (T, D)."""
    import torch

    if features.shape[0] == 0:
        return features.clone()
    padded = torch.cat([features[:1].expand(width, -1), features, features[-1:].expand(width, -1)])
    length = features.shape[0]
    total = sum(
        n * (padded[width + n : width + n + length] - padded[width - n : width - n + length])
        for n in range(1, width + 1)
    )
    return total / (2 * sum(n * n for n in range(1, width + 1)))


def mfcc(wav: torch.Tensor, *, normalize: bool) -> torch.Tensor:
    """(T, 39) MFCC + Δ + ΔΔ of a 1-D waveform, optionally mean/variance normalised over the utterance."""
    import torch

    log_energies = log_mel(wav, num_mels=MFCC_MELS, window="hamming", pre_emphasis=PRE_EMPHASIS)
    cepstra = log_energies @ _dct_matrix(MFCC_MELS, MFCC_COEFFICIENTS).to(wav.device, wav.dtype)
    first = deltas(cepstra)
    features = torch.cat([cepstra, first, deltas(first)], dim=1)
    if normalize and features.shape[0] > 0:
        std = features.std(dim=0, unbiased=False, keepdim=True).clamp(min=1e-5)
        features = (features - features.mean(dim=0, keepdim=True)) / std
    return features


def fbank(wav: torch.Tensor) -> torch.Tensor:
    """(T, 80) log-mel filterbank energies of a 1-D waveform."""
    return log_mel(wav, num_mels=FBANK_MELS, window="hann", pre_emphasis=0.0)


# --- models ---------------------------------------------------------------------------------------------


class FeatureModel(ABC):
    """Something that turns a padded batch of waveforms into per-layer frame features at 50 Hz."""

    # False when padding would change the features (e.g. group norm over time): one utterance per batch.
    batchable: bool = True

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """JSON-able identity of the model (kind, source, ...), recorded in features.json and ABX results."""

    @abstractmethod
    def encode(
        self, wav: torch.Tensor, padding_mask: torch.Tensor
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """wav (B, N) float, padding_mask (B, N) True = padding -> ([(B, T, D)] per layer, frames (B,))."""

    @abstractmethod
    def to(self, device: torch.device) -> FeatureModel: ...

    def num_layers(self) -> int:
        """How many hidden states `encode` returns, found by encoding one second of silence."""
        import torch

        with torch.inference_mode():
            hidden, _ = self.encode(
                torch.zeros(1, SAMPLE_RATE), torch.zeros(1, SAMPLE_RATE, dtype=torch.bool)
            )
        return len(hidden)


class BaselineModel(FeatureModel):
    def __init__(self, name: BaselineName) -> None:
        self.name = name

    def describe(self) -> dict[str, Any]:
        details = {
            "mfcc": "13 MFCC + Δ + ΔΔ (39), per-utterance mean/variance normalised",
            "mfcc-raw": "13 MFCC + Δ + ΔΔ (39), not normalised",
            "fbank": "80 log-mel energies",
        }
        return {"kind": "baseline", "name": self.name, "source": self.name, "details": details[self.name]}

    def encode(
        self, wav: torch.Tensor, padding_mask: torch.Tensor
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        import torch

        lengths = (~padding_mask).sum(dim=1)
        # Each utterance alone: deltas and normalisation must not see the padding. These are many tiny ops,
        # where intra-op threads cost far more than they give: MFCC of 250 s of audio took 0.13 s on one
        # thread and 3.0 s on two on a busy 2-core machine.
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            rows = [self._one(wav[row, : int(length)]) for row, length in enumerate(lengths)]
        finally:
            torch.set_num_threads(previous_threads)
        frames = torch.tensor([row.shape[0] for row in rows], dtype=torch.long)
        batch = torch.zeros(
            len(rows), int(frames.max()), rows[0].shape[1], dtype=wav.dtype, device=wav.device
        )
        for index, row in enumerate(rows):
            batch[index, : row.shape[0]] = row
        return [batch], frames

    def _one(self, wav: torch.Tensor) -> torch.Tensor:
        if self.name == "fbank":
            return fbank(wav)
        return mfcc(wav, normalize=self.name == "mfcc")

    def to(self, device: torch.device) -> BaselineModel:
        return self


class VgsslModel(FeatureModel):
    def __init__(self, path: Path) -> None:
        from vgssl.model.pretrained import load_model

        self.source = path
        self.model = load_model(path).eval()
        if self.model.frame_rate != 50:
            raise FrameRateError(
                f"vgssl model {path} runs at {self.model.frame_rate} Hz; ABX here assumes 50 Hz"
            )

    def describe(self) -> dict[str, Any]:
        config = self.model.config
        return {
            "kind": "vgssl",
            "source": str(self.source.resolve()),
            "frontend": config.frontend,
            "input_normalization": {
                "fbank_normalization": config.fbank_normalization,
                "normalize_waveform": config.normalize_waveform,
                "feature_layer_norm": config.feature_layer_norm,
            },
        }

    def encode(
        self, wav: torch.Tensor, padding_mask: torch.Tensor
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        hidden, frames = self.model.encode(wav, padding_mask)
        return list(hidden), frames

    def to(self, device: torch.device) -> VgsslModel:
        self.model.to(device)
        return self


class HuggingFaceModel(FeatureModel):
    """A local transformers `Wav2Vec2Model` or `HubertModel` directory (any head is dropped)."""

    SUPPORTED = ("wav2vec2", "hubert")

    def __init__(self, directory: Path, model_type: str) -> None:
        from transformers import HubertModel, Wav2Vec2Model

        self.source = directory
        self.model_type = model_type
        model_class = {"wav2vec2": Wav2Vec2Model, "hubert": HubertModel}[model_type]
        self.model = model_class.from_pretrained(directory).eval()
        stride = math.prod(self.model.config.conv_stride)
        if stride != HOP_SAMPLES:
            raise FrameRateError(
                f"{directory}: the convolutional strides {list(self.model.config.conv_stride)} give "
                f"{SAMPLE_RATE / stride:g} Hz frames; ABX here assumes 50 Hz (a total stride of 320)"
            )
        # wav2vec2-base-style models (group norm over time) must see no padding, as transformers documents.
        self.batchable = self.model.config.feat_extract_norm == "layer"
        preprocessor = directory / "preprocessor_config.json"
        self.normalize_waveform = bool(
            preprocessor.is_file()
            and json.loads(preprocessor.read_text(encoding="utf-8")).get("do_normalize")
        )

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "huggingface",
            "model_type": self.model_type,
            "source": str(self.source.resolve()),
            "normalize_waveform": self.normalize_waveform,
        }

    def encode(
        self, wav: torch.Tensor, padding_mask: torch.Tensor
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        import torch

        valid = ~padding_mask
        if self.normalize_waveform:
            count = valid.sum(dim=1, keepdim=True).clamp(min=1)
            mean = (wav * valid).sum(dim=1, keepdim=True) / count
            var = ((wav - mean).square() * valid).sum(dim=1, keepdim=True) / count
            wav = (wav - mean) / torch.sqrt(var + 1e-7) * valid
        output = self.model(
            wav, attention_mask=valid.long() if self.batchable else None, output_hidden_states=True
        )
        frames = valid.sum(dim=1)
        for kernel, stride in zip(self.model.config.conv_kernel, self.model.config.conv_stride, strict=True):
            frames = torch.div(frames - kernel, stride, rounding_mode="floor").clamp(min=-1) + 1
        # transformers 5 no longer applies a pre-LN encoder's final LayerNorm to the last hidden state (4 did,
        # and so does vgssl's model); last_hidden_state has it in both layouts.
        return [*output.hidden_states[:-1], output.last_hidden_state], frames

    def to(self, device: torch.device) -> HuggingFaceModel:
        self.model.to(device)
        return self


def load_feature_model(spec: str) -> FeatureModel:
    """A baseline name (`mfcc`, `mfcc-raw`, `fbank`), a vgssl checkpoint or run dir, or a HF directory."""
    if spec in BASELINES:
        return BaselineModel(spec)
    path = Path(spec)
    if not path.exists():
        raise UnsupportedModelError(
            f"model {spec!r} is not a baseline ({', '.join(BASELINES)}) and no such file or directory exists"
        )
    hf_config = path / "config.json"
    if path.is_dir() and hf_config.is_file():
        try:
            model_type = json.loads(hf_config.read_text(encoding="utf-8")).get("model_type")
        except (json.JSONDecodeError, AttributeError):
            model_type = None
        if model_type in HuggingFaceModel.SUPPORTED:
            return HuggingFaceModel(path, model_type)
        if model_type is not None:
            raise UnsupportedModelError(
                f"{path} is a transformers directory of model_type {model_type!r}; "
                f"supported types are {', '.join(HuggingFaceModel.SUPPORTED)}"
            )
    from vgssl.model.pretrained import NotACheckpointError

    try:
        return VgsslModel(path)
    except NotACheckpointError as error:
        found = (
            sorted(p.name for p in path.iterdir())[:8]
            if path.is_dir()
            else [f"a file of {os.path.getsize(path)} bytes"]
        )
        raise UnsupportedModelError(
            f"{path} is neither a vgssl checkpoint nor a transformers wav2vec2/HuBERT directory "
            f"(a config.json with a model_type). Found: {', '.join(found) or 'an empty directory'}. ({error})"
        ) from None


def resolve_device(name: str) -> torch.device:
    """`auto` means CUDA when available, else CPU; anything else is given to torch as is."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise BadOptionError(
            f"--device {name!r} is not a torch device; use auto, cpu, cuda or cuda:N"
        ) from None


def parse_layers(text: str, available: Sequence[int]) -> list[int]:
    """`all` or a comma-separated list of layer indices, each of which must be in `available`."""
    if text.strip() == "all":
        return sorted(available)
    try:
        layers = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise BadOptionError(f"--layers must be 'all' or integers such as 0,3,5; got {text!r}") from None
    missing = [layer for layer in layers if layer not in available]
    if not layers or missing:
        raise BadOptionError(
            f"--layers {text!r}: layer(s) {missing or '(none given)'} not available; "
            f"available layers are {sorted(available)}"
        )
    return layers


# --- extraction -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Utterance:
    key: str  # relative path without extension: the feature file's name and the item file's #file
    path: Path
    num_samples: int  # at 16 kHz; used to batch by length


@dataclass(frozen=True)
class ExtractionReport:
    written: int
    skipped: int
    audio_seconds: float  # audio actually encoded in this call


def feature_path(out_dir: Path, layer: int, key: str) -> Path:
    return out_dir / str(layer) / f"{key}.pt"


def length_batches(
    utterances: Sequence[Utterance], *, batch_seconds: float, batchable: bool
) -> list[list[Utterance]]:
    """Longest first; a batch's padded size (rows × longest) stays within `batch_seconds` of audio."""
    ordered = sorted(utterances, key=lambda u: (-u.num_samples, u.key))
    budget = batch_seconds * SAMPLE_RATE
    batches: list[list[Utterance]] = []
    for utterance in ordered:
        current = batches[-1] if batches else None
        if batchable and current and (len(current) + 1) * current[0].num_samples <= budget:
            current.append(utterance)
        else:
            batches.append([utterance])
    return batches


def extract_features(
    model: FeatureModel,
    utterances: Sequence[Utterance],
    out_dir: Path,
    *,
    layers: Sequence[int],
    overwrite: bool,
    batch_seconds: float,
    device: torch.device,
    progress: bool = True,
) -> ExtractionReport:
    """Write `out_dir/<layer>/<key>.pt` for every utterance; existing files are kept unless `overwrite`."""
    import torch
    from tqdm import tqdm

    from vgssl.atomic import atomic_torch_save

    pending = [
        u
        for u in utterances
        if overwrite or not all(feature_path(out_dir, layer, u.key).is_file() for layer in layers)
    ]
    model.to(device)
    bar = tqdm(total=len(pending), desc="extracting", unit="utt", disable=not progress)
    seconds = 0.0
    with torch.inference_mode():
        for batch in length_batches(pending, batch_seconds=batch_seconds, batchable=model.batchable):
            waves = [torch.from_numpy(read_audio(u.path)) for u in batch]
            longest = max(w.numel() for w in waves)
            wav = torch.zeros(len(waves), longest)
            padding_mask = torch.ones(len(waves), longest, dtype=torch.bool)
            for row, wave in enumerate(waves):
                wav[row, : wave.numel()] = wave
                padding_mask[row, : wave.numel()] = False
            hidden, frames = model.encode(wav.to(device), padding_mask.to(device))
            for layer in layers:
                for row, utterance in enumerate(batch):
                    # clone: the saved file must hold only this utterance's frames, not the whole batch
                    tensor = hidden[layer][row, : int(frames[row])].detach().to("cpu", torch.float32).clone()
                    atomic_torch_save(tensor, feature_path(out_dir, layer, utterance.key))
            seconds += sum(w.numel() for w in waves) / SAMPLE_RATE
            bar.update(len(batch))
    bar.close()
    return ExtractionReport(
        written=len(pending), skipped=len(utterances) - len(pending), audio_seconds=seconds
    )


def features_card(model: FeatureModel, *, layers: Sequence[int], source: Path) -> dict[str, Any]:
    """The content of OUT/features.json."""
    return {
        "format": FEATURES_FORMAT,
        "model": model.describe(),
        "layers": sorted(layers),
        "frame_rate": 50,
        "frame_count": FRAME_COUNT,
        "frame_times": "frame i sees samples [320 i, 320 i + 400) and stands at 0.01 + 0.02 i s for ABX",
        "source": str(source.resolve()),
    }


def read_features_card(features_dir: Path) -> dict[str, Any] | None:
    card = features_dir / "features.json"
    if not card.is_file():
        return None
    return json.loads(card.read_text(encoding="utf-8"))
