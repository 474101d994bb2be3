"""The audio grounding branch and the speech–image contrastive loss (FaST-VGS+'s coarse matching).

`AudioGroundingHead` pools one hidden layer of the SSL encoder (of the unmasked pass, or of the masked SSL
pass: `GroundingConfig.audio_pass`) into one vector: optional stride-2 residual convolutions (FaST-VGS+'s
ResDAVEnet layers between the tap and the pooler), then a small pre-LN transformer over the frames with a
learned CLS token (FaST-VGS+), or attention pooling (one learned score per frame). Padding frames never
contribute.

`margin_info_nce` is the symmetric margin-InfoNCE loss over the in-batch pairs. On the scale of its margin:
FaST-VGS+ scores a pair by the raw dot product of two unnormalised 768-d vectors and subtracts the margin
(1.0) from the positive's score before the softmax, so its margin is in *logit* units (nats) on an unbounded
scale that grows with the vectors' norms. Here the joint space is the unit sphere: a pair's logit is
`scale · cos(audio, image)` with `scale = 1 / temperature` (learnable by default, CLIP-style, capped at 100),
and the margin is subtracted from the positive's logit. Margin 1.0 thus keeps its FaST-VGS+ meaning — the
positive must beat every negative by one nat — while similarities stay bounded; at temperature 0.07 it is a
margin of 0.07 in cosine. A margin of 1.0 on the cosine itself would be half its whole range.

Negatives from every rank (`gather=True`, CLIP-style): under torch.distributed, the embeddings of all ranks
are gathered (`vgssl.model.gather`, differentiable) and each rank scores ITS OWN rows against all ranks'
columns — its captions against every rank's images, its images against every rank's captions — with the
margin on its own positives only. The sums over the ranks then equal the loss of one process holding every
rank's pairs, and so do the gradients once DDP has summed (averaged) them: the gather's backward hands every
rank the gradient that all ranks' losses send to its embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vgssl.model.gather import all_gather_rows, gather_layout, process_rank_and_world

Pooling = Literal["cls", "attention"]


class AudioGroundingHead(nn.Module):
    """(B, T, D) hidden states of one SSL layer -> (B, out_dim) utterance vectors (unnormalised)."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        pooling: Pooling,
        layers: int,
        heads: int,
        dropout: float,
        conv_layers: int = 0,
    ) -> None:
        super().__init__()
        self.pooling = pooling
        self.input = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, out_dim))
        self.downsample = nn.ModuleList(DownsamplingBlock(out_dim) for _ in range(conv_layers))
        if pooling == "cls":
            self.cls_token = nn.Parameter(torch.randn(out_dim) * 0.02)
            self.blocks = nn.ModuleList(
                nn.TransformerEncoderLayer(
                    out_dim,
                    heads,
                    dim_feedforward=4 * out_dim,
                    dropout=dropout,
                    activation="gelu",
                    batch_first=True,
                    norm_first=True,
                )
                for _ in range(layers)
            )
            self.final_norm = nn.LayerNorm(out_dim)
        else:
            self.frame_score = nn.Linear(out_dim, 1)
        self.output = nn.Linear(out_dim, out_dim)

    def forward(self, hidden: Tensor, padding_mask: Tensor | None) -> Tensor:
        """`padding_mask` (B, T): True = padding frame; None when no utterance is padded."""
        x = self.input(hidden)
        for block in self.downsample:
            x, padding_mask = block(x, padding_mask)
        if self.pooling == "cls":
            batch = x.shape[0]
            x = torch.cat([self.cls_token.to(x.dtype).expand(batch, 1, -1), x], dim=1)
            key_padding = None
            if padding_mask is not None:
                key_padding = torch.cat([padding_mask.new_zeros(batch, 1), padding_mask], dim=1)
            for block in self.blocks:
                x = block(x, src_key_padding_mask=key_padding)
            pooled = self.final_norm(x[:, 0])
        else:
            scores = self.frame_score(x).squeeze(-1).float()
            if padding_mask is not None:
                scores = scores.masked_fill(padding_mask, float("-inf"))
            weights = F.softmax(scores, dim=-1).to(x.dtype)
            pooled = torch.einsum("bt,btd->bd", weights, x)
        return self.output(pooled)


class DownsamplingBlock(nn.Module):
    """(B, T, D) -> (B, ceil(T / 2), D): x[::2] + Conv(k=3, stride 2)(GELU(LayerNorm(x))).

    Output frame t reads input frames 2t − 1 … 2t + 1 and is padding when input frame 2t is, so a padded
    utterance gives the frames it gives alone.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.conv = nn.Conv1d(dim, dim, kernel_size=3, stride=2, padding=1)

    def forward(self, x: Tensor, padding_mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        h = F.gelu(self.norm(x))
        if padding_mask is not None:  # padding reads as the zeros past the end of an unpadded utterance
            h = h.masked_fill(padding_mask.unsqueeze(-1), 0.0)
        y = x[:, ::2] + self.conv(h.transpose(1, 2)).transpose(1, 2)
        return y, None if padding_mask is None else padding_mask[:, ::2]


@dataclass
class ContrastiveResult:
    audio_to_image: Tensor  # sum over pairs of -log p(own image | caption), fp32
    image_to_audio: Tensor  # sum over pairs of -log p(own caption | image), fp32
    correct_audio_to_image: Tensor  # pairs whose own image has the top logit (no margin)
    correct_image_to_audio: Tensor


def margin_info_nce(
    audio: Tensor,
    images: Tensor,
    image_groups: Tensor,
    *,
    margin: float,
    logit_scale: Tensor | float,
    gather: bool = False,
    global_groups: bool = False,
) -> ContrastiveResult:
    """Symmetric margin-InfoNCE over B in-batch pairs (row i of `audio` and of `images` is pair i).

    `audio`, `images`: (B, E) unit vectors. `image_groups`: (B,) ints, equal for pairs showing the same
    image; a caption is never pushed away from its image through another pair of that image, so those
    entries are removed from the negatives of both directions. Returns sums (the trainer normalises them by
    the global number of pairs).

    `gather`: under torch.distributed with several ranks, the negatives are the pairs of all ranks and the
    sums are over this rank's own pairs (see the module docstring); B may differ between ranks. Every rank
    must then make this call, and run the backward of its result. `global_groups`: the ids identify images
    across ranks (equal ids on two ranks are the same image, whose pairs are then not each other's negatives
    either); False: ids are per rank (as `collate_captions` numbers them), so pairs on different ranks never
    share a group. Without a process group or with one rank, `gather` changes nothing.
    """
    if gather and process_rank_and_world()[1] > 1:
        return _gathered_margin_info_nce(
            audio, images, image_groups, margin=margin, logit_scale=logit_scale, global_groups=global_groups
        )
    batch = audio.shape[0]
    logits = logit_scale * (audio.float() @ images.float().T)  # [caption i, image of pair j]
    own = torch.eye(batch, dtype=torch.bool, device=logits.device)
    same_image = (image_groups[:, None] == image_groups[None, :]) & ~own
    logits = logits.masked_fill(same_image, float("-inf"))
    with_margin = logits - margin * own
    target = torch.arange(batch, device=logits.device)
    return ContrastiveResult(
        audio_to_image=F.cross_entropy(with_margin, target, reduction="sum"),
        image_to_audio=F.cross_entropy(with_margin.T, target, reduction="sum"),
        correct_audio_to_image=(logits.argmax(1) == target).sum().detach(),
        correct_image_to_audio=(logits.argmax(0) == target).sum().detach(),
    )


def _gathered_margin_info_nce(
    audio: Tensor,
    images: Tensor,
    image_groups: Tensor,
    *,
    margin: float,
    logit_scale: Tensor | float,
    global_groups: bool,
) -> ContrastiveResult:
    """This rank's rows of the loss over all ranks' pairs: (B_r, N) logits in each direction."""
    audio, images = audio.float(), images.float()
    # One gather for both sides (one all-reduce in the backward), one for the ids, one for the row counts.
    both = torch.cat([audio, images], dim=1)
    layout = gather_layout(both)
    everyone = all_gather_rows(both, layout)
    all_audio, all_images = everyone[:, : audio.shape[1]], everyone[:, audio.shape[1] :]
    all_groups = all_gather_rows(image_groups.to(torch.long), layout)

    device = audio.device
    target = layout.own_indices(device=device)  # the global index of each own pair
    columns = torch.arange(layout.total, device=device)
    own = target[:, None] == columns[None, :]
    same_image = image_groups.to(torch.long)[:, None] == all_groups[None, :]
    if not global_groups:  # per-rank ids: equal ids on another rank are another image
        same_image &= (layout.owners(device=device) == layout.rank)[None, :]
    same_image &= ~own

    # [own caption i, image of global pair j] and [own image i, caption of global pair j]
    audio_to_image = (logit_scale * (audio @ all_images.T)).masked_fill(same_image, float("-inf"))
    image_to_audio = (logit_scale * (images @ all_audio.T)).masked_fill(same_image, float("-inf"))
    return ContrastiveResult(
        audio_to_image=F.cross_entropy(audio_to_image - margin * own, target, reduction="sum"),
        image_to_audio=F.cross_entropy(image_to_audio - margin * own, target, reduction="sum"),
        correct_audio_to_image=(audio_to_image.argmax(1) == target).sum().detach(),
        correct_image_to_audio=(image_to_audio.argmax(1) == target).sum().detach(),
    )
