"""Gumbel-softmax product quantizer: G groups of V codevectors, one chosen per group and concatenated.

Training draws straight-through hard Gumbel samples (the forward value is a one-hot choice, the gradient
that of the soft sample), so the codebook and the logits projection both receive gradient. Evaluation takes
the argmax. Logits, Gumbel noise and softmax run in fp32 whatever the autocast: in bf16 the noise and the
perplexities lose the precision the diversity loss depends on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class Quantized:
    vectors: Tensor  # (M, codevector_dim), differentiable w.r.t. the codebook and the logits projection
    codes: Tensor  # (M, G) long: the chosen entry per group
    code_perplexity: Tensor  # perplexity of the hard choices, summed over groups (fp32, detached)
    prob_perplexity: (
        Tensor  # perplexity of the mean soft distribution, summed over groups (fp32, differentiable)
    )


def _perplexity(mean_distribution: Tensor) -> Tensor:
    """exp(entropy) of (G, V) per-group distributions, summed over groups."""
    entropy = -torch.xlogy(mean_distribution, mean_distribution).sum(-1)
    return entropy.exp().sum()


class GumbelQuantizer(nn.Module):
    def __init__(self, input_dim: int, *, groups: int, entries: int, codevector_dim: int) -> None:
        super().__init__()
        self.groups, self.entries = groups, entries
        self.logits = nn.Linear(input_dim, groups * entries)
        self.codebook = nn.Parameter(torch.empty(groups, entries, codevector_dim // groups))
        # wav2vec 2.0's initialisation: wide logits make the early samples diverse.
        nn.init.normal_(self.logits.weight, mean=0.0, std=1.0)
        nn.init.zeros_(self.logits.bias)
        nn.init.uniform_(self.codebook)
        self.temperature = 2.0

    @property
    def num_codevectors(self) -> int:
        return self.groups * self.entries

    def forward(self, x: Tensor) -> Quantized:
        """(M, input_dim) features -> one quantized vector per row."""
        with torch.autocast(x.device.type, enabled=False):
            logits = F.linear(x.float(), self.logits.weight.float(), self.logits.bias.float())
            logits = logits.view(-1, self.groups, self.entries)
            soft = logits.softmax(-1)
            if self.training:
                gumbel = -torch.empty_like(logits).exponential_().log()
                sample = ((logits + gumbel) / self.temperature).softmax(-1)
                codes = sample.argmax(-1)
                hard = F.one_hot(codes, self.entries).to(sample.dtype)
                choice = hard - sample.detach() + sample
            else:
                codes = logits.argmax(-1)
                choice = F.one_hot(codes, self.entries).to(logits.dtype)
            vectors = torch.einsum("mgv,gvd->mgd", choice, self.codebook.float()).flatten(1)
            hard_mean = F.one_hot(codes, self.entries).float().mean(0)
            code_perplexity = _perplexity(hard_mean).detach()
            prob_perplexity = _perplexity(soft.mean(0))
        return Quantized(vectors, codes, code_perplexity, prob_perplexity)
