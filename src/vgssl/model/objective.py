"""The SSL objective: negatives from masked frames, the contrastive loss and the codebook diversity loss.

Masked frames are handled as one flat list in utterance-major order (the order of `x[mask]`), with
`masked_counts[b]` frames for utterance b. Every score is a cosine similarity; all of it runs in fp32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _row_positions(masked_counts: Tensor) -> tuple[Tensor, Tensor]:
    """For each masked frame: its utterance and its position among that utterance's masked frames."""
    utterance = torch.repeat_interleave(
        torch.arange(len(masked_counts), device=masked_counts.device), masked_counts
    )
    offsets = masked_counts.cumsum(0) - masked_counts
    position = torch.arange(len(utterance), device=masked_counts.device) - offsets[utterance]
    return utterance, position


def sample_negatives(
    masked_counts: Tensor, num_negatives: int, *, generator: torch.Generator | None = None
) -> Tensor:
    """(M, K) positions of negatives, uniform with replacement over the OTHER masked frames of each utterance.

    Positions are local to the utterance (0 … masked_counts[b] − 1). Drawing from n − 1 slots and shifting the
    draws at or above the frame's own position guarantees a negative is never the positive itself.
    """
    if int(masked_counts.min()) < 2:
        raise ValueError(
            f"every utterance needs at least 2 masked frames to draw negatives, got {masked_counts.tolist()}"
        )
    utterance, position = _row_positions(masked_counts)
    others = (masked_counts[utterance] - 1).unsqueeze(1)
    uniform = torch.rand(len(position), num_negatives, generator=generator, device=masked_counts.device)
    draws = torch.minimum((uniform * others).long(), others - 1)
    return draws + (draws >= position.unsqueeze(1)).long()


def contrastive_loss(
    context: Tensor,
    targets: Tensor,
    codes: Tensor,
    masked_counts: Tensor,
    negatives: Tensor,
    *,
    temperature: float,
) -> tuple[Tensor, Tensor]:
    """Sum over masked frames of −log softmax(positive) among positive + K negatives, and the count of wins.

    context, targets: (M, F); codes: (M, G) quantizer choices; negatives: (M, K) from `sample_negatives`.
    One (B, M_max, M_max) similarity matrix per batch, then a gather, scores every candidate at once. A
    negative whose codes equal the positive's is the same vector: its logit is −inf (wav2vec 2.0), as it
    cannot be told apart. A frame wins when its positive scores strictly above every negative.
    """
    utterance, position = _row_positions(masked_counts)
    batch, longest = len(masked_counts), int(masked_counts.max())
    with torch.autocast(context.device.type, enabled=False):
        context = F.normalize(context.float(), dim=-1)
        targets = F.normalize(targets.float(), dim=-1)
        padded_context = context.new_zeros(batch, longest, context.shape[1]).index_put(
            (utterance, position), context
        )
        padded_targets = targets.new_zeros(batch, longest, targets.shape[1]).index_put(
            (utterance, position), targets
        )
        similarity = torch.bmm(padded_context, padded_targets.transpose(1, 2))
        candidates = torch.cat([position.unsqueeze(1), negatives], dim=1)
        logits = similarity[utterance.unsqueeze(1), position.unsqueeze(1), candidates] / temperature
        offsets = (masked_counts.cumsum(0) - masked_counts)[utterance]
        negative_codes = codes[offsets.unsqueeze(1) + negatives]
        same_as_positive = (negative_codes == codes.unsqueeze(1)).all(-1)
        logits = torch.cat([logits[:, :1], logits[:, 1:].masked_fill(same_as_positive, float("-inf"))], dim=1)
        loss = F.cross_entropy(logits, logits.new_zeros(len(logits), dtype=torch.long), reduction="sum")
        wins = (logits[:, 0] > logits[:, 1:].amax(1)).sum()
    return loss, wins


def diversity_loss(prob_perplexity: Tensor, num_codevectors: int) -> Tensor:
    """(G·V − prob_perplexity) / (G·V): 0 when every codevector is used equally often in expectation."""
    return (num_codevectors - prob_perplexity.float()) / num_codevectors
