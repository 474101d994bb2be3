"""The wav2vec 2.0-family model, assembled: read `Wav2Vec2.forward` top to bottom.

waveform -> [normalise] -> front-end (50 Hz local features) -> [LayerNorm] -> [quantizer: targets]
                                             -> Linear -> span masking -> transformer -> [projection: context]
loss = contrastive(context, targets, negatives from masked frames) + diversity(codebook usage)

Losses are SUMS over this batch's masked frames; the trainer divides their total by the global number of
masked frames (all ranks, all accumulation steps). For the contrastive term that is exactly the loss of one
big batch under DDP and gradient accumulation. The diversity term is not a sum over frames: it is this
batch's codebook perplexity (of its own masked frames, as in fairseq) times its masked count, so N ranks × M
micro-batches give the masked-frame-weighted mean of N·M per-batch diversity terms, not the diversity of
the concatenated batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from vgssl.model.config import FRAME_RATE, ModelConfig
from vgssl.model.encoder import TransformerEncoder
from vgssl.model.frontend import build_frontend, normalize_waveform, scale_gradient
from vgssl.model.masking import compute_span_mask
from vgssl.model.objective import contrastive_loss, diversity_loss, sample_negatives
from vgssl.model.quantizer import GumbelQuantizer

FEATURE_NORM_EPS = 1e-5


@dataclass
class Wav2Vec2Output:
    # Sums over masked frames, fp32: "ssl/contrastive" and "ssl/diversity" (already × weight × masked count).
    losses: dict[str, Tensor]
    num_masked: Tensor  # int count of masked frames in this batch
    # Detached scalars: "ssl/code_perplexity", "ssl/prob_perplexity", "ssl/accuracy", "ssl/temperature",
    # "ssl/fraction_masked".
    stats: dict[str, Tensor]
    hidden_states: tuple[Tensor, ...] | None  # (B, T, D) each; index 0 = input to block 1
    frame_padding_mask: Tensor | None  # (B, T) True = padding


class Wav2Vec2(nn.Module):
    frame_rate: int = FRAME_RATE

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.frontend = build_frontend(config)
        self.feature_norm: nn.Module = (
            nn.LayerNorm(config.frontend_dim, eps=FEATURE_NORM_EPS)
            if config.feature_layer_norm
            else nn.Identity()
        )
        self.feature_projection = nn.Linear(config.frontend_dim, config.dim)
        self.feature_dropout = nn.Dropout(config.feature_dropout)
        self.mask_embedding = nn.Parameter(torch.empty(config.dim).uniform_())
        self.encoder = TransformerEncoder(config)
        self.quantizer = GumbelQuantizer(
            config.frontend_dim,
            groups=config.codebook_groups,
            entries=config.codebook_entries,
            codevector_dim=config.codevector_dim,
        )
        self.project_context = nn.Linear(config.dim, config.final_dim)
        self.project_targets = nn.Linear(config.codevector_dim, config.final_dim)
        self.set_num_updates(0)

    def checkpoint_entries(self) -> dict[str, Any]:
        """A checkpoint's model entries ("model_config", "model"), as `VgsModel` writes its audio encoder."""
        return {"model_config": self.config.model_dump(mode="json"), "model": self.state_dict()}

    def load_checkpoint_entries(self, checkpoint: dict[str, Any]) -> None:
        """Load `checkpoint_entries()` back (strictly)."""
        self.load_state_dict(checkpoint["model"])

    def set_num_updates(self, num_updates: int) -> None:
        """Anneal the Gumbel temperature: start · decay^updates, floored at end (a function of the step)."""
        start, end, decay = self.config.gumbel_temperature
        self.quantizer.temperature = max(start * decay**num_updates, end)

    def frame_lengths(self, num_samples: Tensor) -> Tensor:
        """Frames per utterance: floor((N − 400) / 320) + 1 for both front-ends, 0 below 400 samples."""
        return self.frontend.frame_lengths(num_samples)

    def forward(
        self,
        wav: Tensor,
        padding_mask: Tensor | None = None,
        *,
        mask: bool = True,
        time_mask: Tensor | None = None,
        output_hidden_states: bool = False,
    ) -> Wav2Vec2Output:
        """wav (B, N) at 16 kHz; padding_mask (B, N) True = padding (right-padded). mask=False: no losses.

        `time_mask` (B, T) bool, True = masked: the spans to mask, as `span_mask` draws them (the trainer
        draws them itself to know the masked count before the forward); None: drawn here from the global RNG.
        """
        num_samples = None
        if padding_mask is not None:
            wav = wav.masked_fill(padding_mask, 0.0)
            num_samples = (~padding_mask).sum(-1)
        if self.config.normalize_waveform:
            wav = normalize_waveform(wav, num_samples)
        features = self.frontend(wav, num_samples)
        if self.training:
            features = scale_gradient(features, self.config.feature_grad_mult)
        batch, num_frames, _ = features.shape
        if num_samples is None:
            frame_lengths = torch.full((batch,), num_frames, device=wav.device)
            frame_padding = None
        else:
            frame_lengths = self.frame_lengths(num_samples)
            frame_padding = torch.arange(num_frames, device=wav.device) >= frame_lengths.unsqueeze(1)

        features = self.feature_norm(features)  # the quantizer's input: unmasked, unprojected
        x = self.feature_dropout(self.feature_projection(features))
        if mask:
            if time_mask is None:
                time_mask = self._span_mask(frame_lengths, num_frames)
            elif time_mask.shape != (batch, num_frames):
                expected = (batch, num_frames)
                raise ValueError(f"time_mask has shape {tuple(time_mask.shape)}, expected {expected}")
            time_mask = time_mask.to(wav.device)
            x = torch.where(time_mask.unsqueeze(-1), self.mask_embedding.to(x.dtype), x)

        has_padding = frame_padding is not None and bool(frame_padding.any())
        hidden_states = self.encoder(x, frame_padding if has_padding else None)
        output = Wav2Vec2Output(
            losses={},
            num_masked=torch.zeros((), dtype=torch.long, device=wav.device),
            stats={},
            hidden_states=tuple(hidden_states) if output_hidden_states else None,
            frame_padding_mask=frame_padding,
        )
        if not mask:
            return output
        assert time_mask is not None  # drawn or given above

        masked_counts = time_mask.sum(1)
        num_masked = masked_counts.sum()
        quantized = self.quantizer(features[time_mask])
        targets = self.project_targets(quantized.vectors)
        context = self.project_context(hidden_states[-1][time_mask])
        negatives = sample_negatives(masked_counts, self.config.num_negatives)
        contrastive, wins = contrastive_loss(
            context,
            targets,
            quantized.codes,
            masked_counts,
            negatives,
            temperature=self.config.logit_temperature,
        )
        diversity = diversity_loss(quantized.prob_perplexity, self.quantizer.num_codevectors)
        output.losses = {
            "ssl/contrastive": contrastive,
            "ssl/diversity": diversity * self.config.diversity_weight * num_masked,
        }
        output.num_masked = num_masked
        output.stats = {
            "ssl/code_perplexity": quantized.code_perplexity,
            "ssl/prob_perplexity": quantized.prob_perplexity.detach(),
            "ssl/accuracy": wins.float() / num_masked,
            "ssl/temperature": torch.tensor(self.quantizer.temperature, device=wav.device),
            "ssl/fraction_masked": num_masked.float() / frame_lengths.sum(),
        }
        return output

    def span_mask(
        self, wav: Tensor, padding_mask: Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """The (B, T) span mask `forward` would draw for this batch, drawn from `generator` (CPU)."""
        batch, width = wav.shape
        num_frames = int(self.frame_lengths(torch.tensor(width)))
        full = torch.full((batch,), width)
        num_samples = full if padding_mask is None else (~padding_mask).sum(-1).cpu()
        return self._span_mask(self.frame_lengths(num_samples), num_frames, generator=generator)

    def _span_mask(
        self, frame_lengths: Tensor, num_frames: int, *, generator: torch.Generator | None = None
    ) -> Tensor:
        return compute_span_mask(
            frame_lengths,
            num_frames,
            mask_prob=self.config.mask_prob,
            mask_length=self.config.mask_length,
            min_masks=self.config.min_masks,
            generator=generator,
        )

    @torch.no_grad()
    def encode(self, wav: Tensor, padding_mask: Tensor | None = None) -> tuple[list[Tensor], Tensor]:
        """Extraction: eval mode (no dropout, no layer drop), no masking -> (hidden states, frame lengths)."""
        was_training = self.training
        self.eval()
        try:
            output = self.forward(wav, padding_mask, mask=False, output_hidden_states=True)
        finally:
            self.train(was_training)
        hidden_states = list(output.hidden_states or ())
        batch, num_frames = hidden_states[0].shape[:2]
        if output.frame_padding_mask is None:
            return hidden_states, torch.full((batch,), num_frames, device=wav.device)
        return hidden_states, (~output.frame_padding_mask).sum(1)
