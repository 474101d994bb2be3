"""A differentiable all-gather of per-rank rows, for in-batch negatives drawn from every rank (CLIP-style).

Each rank holds B_r rows (B_r may differ between ranks). `gather_layout` all-gathers the row counts once;
`all_gather_rows` then returns the (N, ...) concatenation of every rank's rows in rank order, N = Σ B_r
(each rank's rows padded to the longest for the collective, the padding cut off again).

The backward pass: a rank's loss depends on every rank's rows, so the gradient of the global loss with
respect to rank r's rows is the sum over ranks of the gradient each rank's loss sends to rows
`offset_r … offset_r + B_r` of the gathered tensor. It is computed as an all-reduce (sum) of the gathered
gradient, of which each rank keeps its own slice. Every rank must therefore run the backward of every gather
it ran forward — the case when each rank's loss uses the gathered tensor, as the grounding loss does.

With torch.distributed not initialised, or one rank, nothing is communicated and the rows are returned as
they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from vgssl.errors import VgsslError


class GatherShapeError(VgsslError):
    """The ranks' tensors cannot be gathered row by row (different row shapes, or the wrong row count)."""


def process_rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the default process group; (0, 1) when torch.distributed is not in use."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@dataclass(frozen=True)
class RowLayout:
    """Where each rank's rows sit in a gathered tensor."""

    rank: int
    sizes: tuple[int, ...]  # rows of every rank, indexed by rank

    @property
    def world_size(self) -> int:
        return len(self.sizes)

    @property
    def rows(self) -> int:
        """This rank's rows."""
        return self.sizes[self.rank]

    @property
    def offset(self) -> int:
        """The gathered index of this rank's first row."""
        return sum(self.sizes[: self.rank])

    @property
    def total(self) -> int:
        return sum(self.sizes)

    def owners(self, *, device: torch.device | None = None) -> Tensor:
        """(N,) the rank holding each gathered row."""
        ranks = torch.arange(self.world_size, device=device)
        return ranks.repeat_interleave(torch.tensor(self.sizes, device=device))

    def own_indices(self, *, device: torch.device | None = None) -> Tensor:
        """(B_r,) the gathered indices of this rank's rows."""
        return torch.arange(self.offset, self.offset + self.rows, device=device)


def gather_layout(rows: Tensor) -> RowLayout:
    """Every rank's row count of `rows` (B_r, ...), after checking that all ranks' rows have one size.

    One small all-gather; the check raises `GatherShapeError` on every rank alike, so none is left waiting.
    Without a process group: this rank alone.
    """
    rank, world_size = process_rank_and_world()
    row_size = math.prod(rows.shape[1:])
    if world_size == 1:
        return RowLayout(rank=0, sizes=(rows.shape[0],))
    local = torch.tensor([rows.shape[0], row_size, rows.ndim], dtype=torch.long, device=rows.device)
    shapes = [torch.empty_like(local) for _ in range(world_size)]
    dist.all_gather(shapes, local)
    counts = [tuple(int(value) for value in shape.tolist()) for shape in shapes]
    if len({(size, ndim) for _, size, ndim in counts}) > 1:
        described = ", ".join(
            f"rank {r}: {size} values in {ndim - 1} dims" for r, (_, size, ndim) in enumerate(counts)
        )
        raise GatherShapeError(f"the ranks' rows differ in shape and cannot be gathered ({described})")
    return RowLayout(rank=rank, sizes=tuple(count for count, _, _ in counts))


def all_gather_rows(rows: Tensor, layout: RowLayout) -> Tensor:
    """(N, ...) every rank's `rows` (B_r, ...) in rank order; differentiable (see the module docstring).

    Integer tensors (ids) are gathered the same way, without autograd.
    """
    if rows.shape[0] != layout.rows:
        raise GatherShapeError(
            f"rank {layout.rank} holds {rows.shape[0]} rows but its layout says {layout.rows}; "
            "gather tensors of the rows the layout was made from"
        )
    if layout.world_size == 1:
        return rows
    if rows.requires_grad:
        gathered: Tensor = _AllGatherRows.apply(rows, layout)
        return gathered
    return _gather_padded(rows, layout)


def _gather_padded(rows: Tensor, layout: RowLayout) -> Tensor:
    longest = max(layout.sizes)
    if longest == 0:  # every rank knows it: all skip the collective
        return rows.new_zeros((0, *rows.shape[1:]))
    padded = rows.new_zeros((longest, *rows.shape[1:]))
    padded[: rows.shape[0]] = rows.detach()
    buffers = [torch.empty_like(padded) for _ in layout.sizes]
    dist.all_gather(buffers, padded)
    return torch.cat([buffer[:size] for buffer, size in zip(buffers, layout.sizes, strict=True)])


class _AllGatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, rows: Tensor, layout: RowLayout) -> Tensor:
        ctx.layout = layout
        return _gather_padded(rows, layout)

    @staticmethod
    def backward(ctx: Any, gradient: Tensor) -> tuple[Tensor, None]:
        layout: RowLayout = ctx.layout
        if layout.total == 0:
            return gradient.new_zeros((0, *gradient.shape[1:])), None
        summed = gradient.clone(memory_format=torch.contiguous_format)  # never reduce autograd's buffer
        dist.all_reduce(summed, op=dist.ReduceOp.SUM)
        return summed[layout.offset : layout.offset + layout.rows], None
