"""torchrun / DDP setup: a process group only when WORLD_SIZE > 1; nccl on CUDA, gloo on CPU; the precision.

Nothing here assumes one process, one GPU or a CPU: the device is `cuda:LOCAL_RANK` when CUDA is present.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from vgssl.errors import VgsslError

if TYPE_CHECKING:
    from vgssl.train.config import Precision

LOGGER = logging.getLogger("vgssl.train")
CUBLAS_WORKSPACE = "CUBLAS_WORKSPACE_CONFIG"


class ReplicaDriftError(VgsslError):
    """The ranks' copies of the model are no longer identical."""


@dataclass(frozen=True)
class DistributedContext:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def setup_distributed() -> DistributedContext:
    """Read torchrun's environment; join the process group when there is more than one rank."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, device_id=device if device.type == "cuda" else None)
    return DistributedContext(rank=rank, local_rank=local_rank, world_size=world_size, device=device)


def teardown_distributed(context: DistributedContext) -> None:
    if context.is_distributed and dist.is_initialized():
        # DDP's reducer and gloo's pending work hold tensors; if they are only freed at interpreter
        # shutdown, gloo's threads abort the process ("terminate called without an active exception").
        gc.collect()
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """Sum `tensor` over ranks in place (a no-op with one rank) and return it."""
    if context.is_distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_objects(obj: Any, context: DistributedContext) -> list[Any]:
    """Every rank's `obj`, indexed by rank (picklable objects; for rare, small messages)."""
    if not context.is_distributed:
        return [obj]
    gathered: list[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier(context: DistributedContext) -> None:
    if context.is_distributed:
        dist.barrier()


def check_replicas_identical(module: torch.nn.Module, context: DistributedContext) -> None:
    """Raise `ReplicaDriftError` on every rank unless all ranks hold bit-identical parameters and buffers.

    DDP keeps replicas identical only if every rank applies the same update; anything rank-dependent that
    touches the weights (FACTS: layer drop with transformers' model) makes them drift silently.
    """
    if not context.is_distributed:
        return
    tensors = [t.detach() for t in [*module.parameters(), *module.buffers()] if t.is_floating_point()]
    flat = torch.cat([t.reshape(-1).float() for t in tensors])
    reference = flat.clone()
    dist.broadcast(reference, src=0)
    differs = torch.tensor([0.0 if torch.equal(flat, reference) else 1.0], device=flat.device)
    dist.all_reduce(differs, op=dist.ReduceOp.SUM)
    if differs.item() > 0:
        raise ReplicaDriftError(
            f"{int(differs.item())} of {context.world_size} ranks hold parameters that differ from rank 0's: "
            "the model replicas drifted apart. Set model.layer_drop to 0 and make sure every rank runs the "
            "same code and config."
        )
    LOGGER.info("the model replicas of all %d ranks are identical", context.world_size)


def resolve_autocast_dtype(precision: Precision, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA by default, and on a CPU with native bf16 (avx512_bf16 or amx_bf16), where it
    saves 13–25 % of the demo model's step (benchmarks/precision_step.py). A CPU without it emulates bf16
    matmuls about 10× slower than fp32 (measured 2026-12-08 on an AMD EPYC without AVX-512: 12 s of
    audio per second against ~100), so `auto` gives fp32 there and an explicit bf16 warns."""
    if precision == "fp32":
        return None
    native = device.type != "cpu" or cpu_has_native_bf16()
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" or native is True else None
    if native is False:
        LOGGER.warning(
            "precision bf16 on a CPU without native bf16 support (avx512_bf16/amx_bf16): expect it about "
            "10x slower than fp32; use precision auto or fp32"
        )
    return torch.bfloat16


def cpu_has_native_bf16() -> bool | None:
    """Whether this CPU has native bf16 instructions; None where it cannot tell (no /proc/cpuinfo)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return None
    return "avx512_bf16" in flags or "amx_bf16" in flags


def wrap_for_ddp(model: torch.nn.Module, context: DistributedContext, *, find_unused_parameters: bool) -> Any:
    """The model under DistributedDataParallel when there are several ranks; the model itself otherwise."""
    if not context.is_distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        model,
        device_ids=[context.device.index] if context.device.type == "cuda" else None,
        find_unused_parameters=find_unused_parameters,
    )


@contextlib.contextmanager
def deterministic_kernels(enabled: bool) -> Iterator[None]:
    """`deterministic: true` for the block: torch's deterministic algorithms only, cuDNN without autotuning,
    and the fixed cuBLAS workspace its deterministic matmuls need (set before the first CUDA matmul, which
    is why this wraps the whole run). Everything is restored afterwards, for callers in the same process."""
    if not enabled:
        yield
        return
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
        os.environ.get(CUBLAS_WORKSPACE),
    )
    os.environ.setdefault(CUBLAS_WORKSPACE, ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = previous[1], previous[2]
        if previous[3] is None:
            os.environ.pop(CUBLAS_WORKSPACE, None)
