"""The context network: convolutional relative positional embedding, then pre-LN or post-LN blocks.

Hidden states follow the s3prl / transformers convention: index 0 is the input to the first block, index i
the output of block i; with pre-LN blocks the last one is taken after the final LayerNorm. Layer drop skips a
block only in training (its hidden state then repeats the previous one, so indices never shift).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vgssl.model.config import ModelConfig

LAYER_NORM_EPS = 1e-5


def init_linear(layer: nn.Linear) -> None:
    """BERT-style initialisation, as wav2vec 2.0 uses for its transformer."""
    nn.init.normal_(layer.weight, mean=0.0, std=0.02)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


class PositionalConvEmbedding(nn.Module):
    """Weight-normalised grouped convolution over time whose output is added to its input (wav2vec 2.0)."""

    def __init__(self, dim: int, kernel: int, groups: int) -> None:
        super().__init__()
        conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=groups)
        nn.init.normal_(conv.weight, mean=0.0, std=math.sqrt(4.0 / (kernel * dim)))
        nn.init.zeros_(conv.bias)
        self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        # An even kernel with padding kernel // 2 yields one frame too many; drop the last.
        self.trim = 1 if kernel % 2 == 0 else 0

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x.transpose(1, 2))
        if self.trim:
            y = y[:, :, : -self.trim]
        return F.gelu(y).transpose(1, 2)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)  # one matmul instead of three; split apart for transformers export
        self.out = nn.Linear(dim, dim)
        init_linear(self.qkv)
        init_linear(self.out)

    def forward(self, x: Tensor, attend: Tensor | None) -> Tensor:
        batch, time, dim = x.shape
        q, k, v = self.qkv(x).view(batch, time, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attend, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(batch, time, dim))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, *, activation_dropout: float, dropout: float) -> None:
        super().__init__()
        self.expand = nn.Linear(dim, hidden)
        self.activation_dropout = nn.Dropout(activation_dropout)
        self.contract = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)
        init_linear(self.expand)
        init_linear(self.contract)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.contract(self.activation_dropout(F.gelu(self.expand(x)))))


class TransformerBlock(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.norm_first = config.norm_first
        self.attention = SelfAttention(config.dim, config.heads, config.attention_dropout)
        self.attention_dropout = nn.Dropout(config.dropout)
        self.attention_norm = nn.LayerNorm(config.dim, eps=LAYER_NORM_EPS)
        self.feed_forward = FeedForward(
            config.dim, config.ffn_dim, activation_dropout=config.activation_dropout, dropout=config.dropout
        )
        self.feed_forward_norm = nn.LayerNorm(config.dim, eps=LAYER_NORM_EPS)

    def forward(self, x: Tensor, attend: Tensor | None) -> Tensor:
        if self.norm_first:
            x = x + self.attention_dropout(self.attention(self.attention_norm(x), attend))
            return x + self.feed_forward(self.feed_forward_norm(x))
        x = self.attention_norm(x + self.attention_dropout(self.attention(x, attend)))
        return self.feed_forward_norm(x + self.feed_forward(x))


class TransformerEncoder(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.norm_first = config.norm_first
        self.layer_drop = config.layer_drop
        self.positional = PositionalConvEmbedding(config.dim, config.pos_conv_kernel, config.pos_conv_groups)
        # Post-LN normalises the input of the first block; pre-LN normalises the output of the last.
        self.norm = nn.LayerNorm(config.dim, eps=LAYER_NORM_EPS)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(config) for _ in range(config.layers))

    def forward(self, x: Tensor, padding_mask: Tensor | None = None) -> list[Tensor]:
        """(B, T, D) -> hidden states [input to block 1, output of block 1, …, output of the last block]."""
        attend = None
        if padding_mask is not None:
            # Zeroed padding makes the positional convolution see what an unpadded utterance sees at its end.
            x = x.masked_fill(padding_mask.unsqueeze(-1), 0.0)
            attend = ~padding_mask[:, None, None, :]
        x = x + self.positional(x)
        if not self.norm_first:
            x = self.norm(x)
        x = self.dropout(x)
        hidden_states = [x]
        for block in self.blocks:
            if not (self.training and self.layer_drop > 0 and float(torch.rand(())) < self.layer_drop):
                x = block(x, attend)
            hidden_states.append(x)
        if self.norm_first:
            hidden_states[-1] = self.norm(x)
        return hidden_states
