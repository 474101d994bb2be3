"""Layer-wise features at 50 Hz from vgssl checkpoints, transformers wav2vec2/HuBERT dirs, or baselines.

Every kind of model follows vgssl's frame convention (vgssl.audio.frames), so that ABX item slicing is
identical: floor((N − 400) / 320) + 1 frames for N samples at 16 kHz, frame i at 0.01 + 0.02·i s.

Baselines, computed by vgssl.audio.features:
* `fbank`: exactly the input of the model's default fbank front-end (`fbank_features`), i.e. what its Linear
  reads: 80 log-mel bins (HTK filters 20–8000 Hz, 25 ms Hann windows every 10 ms, log(energy + 1e-6)), two
  10 ms windows stacked per 20 ms frame (frame i centred at 0.01 + 0.02·i s) = 160 dimensions, each bin
  mean/variance normalised over the utterance. Until the audio core was unified it was 80 Kaldi-style
  log-mel energies (floor 1e-10) of the frame's own 25 ms window, unnormalised: a different feature, so its
  `describe()` (kept in features.json) changed and old fbank feature directories are not mixed with new ones.
* `mfcc`: pre-emphasis 0.97, Hamming window on the frame's samples [320·i, 320·i + 400), 40 log-mel energies,
  orthonormal DCT-II, 13 coefficients (c0 included), plus Δ and ΔΔ (HTK regression over ±2 frames) = 39
  dimensions, then per-utterance mean/variance normalisation. `mfcc-raw` is the same without the
  normalisation.

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
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from vgssl.audio.frames import FRAME_COUNT_RULE, FRAME_RATE, HOP_SAMPLES, SAMPLE_RATE
from vgssl.audio.io import read_audio
from vgssl.audio.lengths import Utterance, length_batches
from vgssl.errors import BadOptionError, VgsslError

if TYPE_CHECKING:
    import torch

BaselineName = Literal["mfcc", "mfcc-raw", "fbank"]
BASELINES: tuple[str, ...] = get_args(BaselineName)
FEATURES_FORMAT = "vgssl-features-v1"
BASELINE_DETAILS: dict[str, str] = {
    "mfcc": "13 MFCC + Δ + ΔΔ (39), per-utterance mean/variance normalised",
    "mfcc-raw": "13 MFCC + Δ + ΔΔ (39), not normalised",
    "fbank": (
        "the model's fbank front-end input (160): 2 × 80 log-mel (HTK, 25 ms Hann, 10 ms hop, log(x + 1e-6)) "
        "per 20 ms frame, per-utterance mean/variance normalised per bin; before vgssl's one audio core it "
        "was 80 Kaldi log-mel energies (25 ms Hann, hop 20 ms, floor 1e-10), not normalised"
    ),
}


class UnsupportedModelError(VgsslError):
    """MODEL is neither a baseline name, a vgssl checkpoint, nor a transformers wav2vec2/HuBERT directory."""


class FrameRateError(VgsslError):
    """A model's frames are not at 50 Hz, the rate every vgssl ABX evaluation assumes."""


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
        details = BASELINE_DETAILS[self.name]
        return {"kind": "baseline", "name": self.name, "source": self.name, "details": details}

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
        from vgssl.audio.features import fbank_features, mfcc

        if self.name == "fbank":
            return fbank_features(wav[None])[0]
        return mfcc(wav, normalize=self.name == "mfcc")

    def to(self, device: torch.device) -> BaselineModel:
        return self


class VgsslModel(FeatureModel):
    def __init__(self, path: Path) -> None:
        from vgssl.model.pretrained import checkpoint_identity, load_model

        self.source = path
        self.model = load_model(path).eval()
        self.checkpoint = checkpoint_identity(path)
        if self.model.frame_rate != FRAME_RATE:
            raise FrameRateError(
                f"vgssl model {path} runs at {self.model.frame_rate} Hz; ABX here assumes 50 Hz"
            )

    def describe(self) -> dict[str, Any]:
        config = self.model.config
        return {
            "kind": "vgssl",
            "source": str(self.source.resolve()),
            "checkpoint": self.checkpoint,  # file, step and content hash: features of a retrained run differ
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
class ExtractionReport:
    written: int
    skipped: int
    audio_seconds: float  # audio actually encoded in this call


def feature_path(out_dir: Path, layer: int, key: str) -> Path:
    return out_dir / str(layer) / f"{key}.pt"


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
    from vgssl.audio.batch import pad_waveforms

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
            wav, padding_mask, lengths = pad_waveforms([read_audio(u.path) for u in batch])
            hidden, frames = model.encode(wav.to(device), padding_mask.to(device))
            for layer in layers:
                for row, utterance in enumerate(batch):
                    # clone: the saved file must hold only this utterance's frames, not the whole batch
                    tensor = hidden[layer][row, : int(frames[row])].detach().to("cpu", torch.float32).clone()
                    atomic_torch_save(tensor, feature_path(out_dir, layer, utterance.key))
            seconds += int(lengths.sum()) / SAMPLE_RATE
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
        "frame_rate": FRAME_RATE,
        "frame_count": FRAME_COUNT_RULE,
        "frame_times": "frame i sees samples [320 i, 320 i + 400) and stands at 0.01 + 0.02 i s for ABX",
        "source": str(source.resolve()),
    }


def read_features_card(features_dir: Path) -> dict[str, Any] | None:
    card = features_dir / "features.json"
    if not card.is_file():
        return None
    return json.loads(card.read_text(encoding="utf-8"))
