"""Image side of the grounding model: pixels or precomputed features -> one vector in the joint space.

* `ConvImageEncoder`, the default for the built-in corpus: a small CNN trained from scratch. Four stride-2
  3 × 3 convolutions with group norm (not batch norm: its running statistics would differ between DDP
  ranks and depend on the batch), pooled to a fixed 4 × 4 grid and flattened, so the vector keeps *where*
  things are ("a circle above a square") and any image size works.
* `FeatureImageEncoder`, for real datasets: an MLP on a precomputed embedding (D,), or, for region features
  (R, D), the same MLP per region followed by attention pooling over the regions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vgssl.errors import VgsslError

GRID = 4  # the CNN's feature map is pooled to GRID × GRID cells before flattening
MAX_GROUPS = 8


class ImageShapeError(VgsslError):
    """Images or image features do not have the shape the image encoder was built for."""


class ConvImageEncoder(nn.Module):
    def __init__(self, channels: Sequence[int], out_dim: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        in_channels = 3
        for width in channels:
            blocks += [
                nn.Conv2d(in_channels, width, kernel_size=3, stride=2, padding=1, bias=False),
                nn.GroupNorm(_groups(width), width),
                nn.GELU(),
            ]
            in_channels = width
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(GRID)
        self.norm = nn.LayerNorm(in_channels * GRID * GRID)
        self.project = nn.Linear(in_channels * GRID * GRID, out_dim)

    def forward(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) standardised pixels -> (B, out_dim)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ImageShapeError(
                "the CNN image encoder takes (batch, 3, height, width) pixels, got shape "
                f"{tuple(images.shape)}; a model configured for pixels cannot read precomputed features"
            )
        return self.project(self.norm(self.pool(self.features(images)).flatten(1)))


def _groups(channels: int) -> int:
    return next(groups for groups in range(min(MAX_GROUPS, channels), 0, -1) if channels % groups == 0)


class FeatureImageEncoder(nn.Module):
    def __init__(self, feature_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__()
        self.feature_dim = feature_dim
        self.mlp = nn.Sequential(
            nn.LayerNorm(feature_dim),
            nn.Linear(feature_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, out_dim),
        )
        self.region_score = nn.Linear(out_dim, 1)

    def forward(self, features: Tensor) -> Tensor:
        """(B, D) embeddings or (B, R, D) region features -> (B, out_dim)."""
        if features.shape[-1] != self.feature_dim:
            raise ImageShapeError(
                f"image features of shape {tuple(features.shape)}, but the encoder expects dimension "
                f"{self.feature_dim} (grounding.feature_dim); use that encoder's features or fix the config"
            )
        projected = self.mlp(features)
        if projected.ndim == 2:
            return projected
        weights = F.softmax(self.region_score(projected).squeeze(-1).float(), dim=-1).to(projected.dtype)
        return torch.einsum("br,brd->bd", weights, projected)
