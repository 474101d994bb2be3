"""Shared by the training tests: the smallest model with every part, and a one-process context."""

from __future__ import annotations

import torch

from vgssl.train.distributed import DistributedContext

CPU = DistributedContext(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))
TINY_MODEL = {
    "dim": 32,
    "layers": 2,
    "heads": 2,
    "ffn_dim": 64,
    "pos_conv_kernel": 8,
    "pos_conv_groups": 4,
    "codebook_entries": 16,
    "codevector_dim": 32,
    "final_dim": 32,
    "num_negatives": 10,
}
TINY_GROUNDING = {"joint_dim": 32, "pool_heads": 2, "image_size": 32, "image_channels": [8, 16]}
