"""The optimizer: AdamW parameter groups by role and by weight decay, each group with its own LR schedule.

Roles. The audio encoder (the whole model of an audio-only run, `VgsModel.audio` of a VGS+ run) trains at
`optim.lr` with `optim.warmup_steps`. A VGS+ model's newly initialised grounding parts — everything outside
its audio encoder: `audio_head`, `image_encoder`, `log_logit_scale`, the same split as its checkpoint's
"grounding" entry — train at `optim.head_lr` with `optim.head_warmup_steps` (each None: the encoder's). The
learned log-variances of `objective.weighting: uncertainty` follow the encoder's rate, without decay.

Weight decay applies to the weights of linear and convolution layers only (and to the in-projection of
`nn.MultiheadAttention`, a linear layer in all but name). Everything else is left alone: biases, every
norm's gain and shift, the codebook, the mask embedding, the CLS token, the logit scale. A parametrised
weight (the positional convolution's weight norm) is decayed through the one original tensor that has the
weight's full shape (the direction `v`), never through its gain `g`.

Both schedules are linear warm-up from 0 then linear or cosine decay to `final_lr_ratio` at `max_steps`
(`vgssl.train.schedule.lr_scale`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.utils import parametrize

from vgssl.errors import VgsslError
from vgssl.model.vgs import VgsModel
from vgssl.train.checkpoint import ResumeError
from vgssl.train.config import OptimConfig
from vgssl.train.schedule import lr_scale

Role = Literal["encoder", "head", "loss_weighting"]
ENCODER_MODULE = "audio_encoder"  # the name of the audio encoder in per-module statistics
_DECAYED_MODULES = (nn.Linear, nn.modules.conv._ConvNd)
_ATTENTION_WEIGHTS = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")


class ParameterGroupError(VgsslError):
    """The optimizer's parameter groups do not cover every trainable parameter exactly once."""


@dataclass(frozen=True)
class GroupSpec:
    name: str  # "encoder/decay", "encoder/no_decay", "head/decay", "head/no_decay", "loss_weighting"
    role: Role
    decay: bool
    parameter_names: tuple[str, ...]
    parameters: tuple[nn.Parameter, ...]


def is_decayed(module: nn.Module, name: str) -> bool:
    """Whether the parameter `name`, owned directly by `module`, is a linear or convolution weight."""
    if isinstance(module, _DECAYED_MODULES):
        return name == "weight"
    return isinstance(module, nn.MultiheadAttention) and name in _ATTENTION_WEIGHTS


def _decay_flags(model: nn.Module) -> dict[str, bool]:
    """Every parameter's qualified name -> whether it is decayed."""
    flags: dict[str, bool] = {}
    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        for name, _ in module.named_parameters(recurse=False):
            flags[prefix + name] = is_decayed(module, name)
    # A parametrised weight's originals belong to a ParametrizationList, which the loop above does not decay.
    for module_name, module in model.named_modules():
        if not (parametrize.is_parametrized(module) and isinstance(module, _DECAYED_MODULES)):
            continue
        prefix = f"{module_name}." if module_name else ""
        for tensor_name, parametrizations in module.parametrizations.items():
            if tensor_name != "weight":
                continue
            shape = getattr(module, tensor_name).shape
            for original_name, original in parametrizations.named_parameters(recurse=False):
                flags[f"{prefix}parametrizations.{tensor_name}.{original_name}"] = original.shape == shape
    return flags


def _role_of(model: nn.Module, name: str) -> Role:
    if isinstance(model, VgsModel) and not name.startswith("audio."):
        return "head"
    return "encoder"


def parameter_groups(model: nn.Module, *, loss_weighting: nn.Module | None = None) -> list[GroupSpec]:
    """The trainable parameters of `model` (and of the loss weighting) split by role and decay.

    Empty groups are left out. Raises `ParameterGroupError` if a parameter would be in none or in two.
    """
    flags = _decay_flags(model)
    buckets: dict[tuple[Role, bool], list[tuple[str, nn.Parameter]]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if name not in flags:
            raise ParameterGroupError(
                f"parameter {name} was not classified for weight decay; this is a bug in "
                "vgssl.train.optimizer (a module type it does not know)"
            )
        buckets.setdefault((_role_of(model, name), flags[name]), []).append((name, parameter))
    groups = [
        GroupSpec(
            name=f"{role}/{'decay' if decay else 'no_decay'}",
            role=role,
            decay=decay,
            parameter_names=tuple(name for name, _ in buckets[(role, decay)]),
            parameters=tuple(parameter for _, parameter in buckets[(role, decay)]),
        )
        for role in ("encoder", "head")
        for decay in (True, False)
        if buckets.get((role, decay))
    ]
    if loss_weighting is not None:
        named = [(name, p) for name, p in loss_weighting.named_parameters() if p.requires_grad]
        if named:
            groups.append(
                GroupSpec(
                    name="loss_weighting",
                    role="loss_weighting",
                    decay=False,
                    parameter_names=tuple(f"loss_weighting.{name}" for name, _ in named),
                    parameters=tuple(parameter for _, parameter in named),
                )
            )
    seen: set[int] = set()
    for group in groups:
        for name, parameter in zip(group.parameter_names, group.parameters, strict=True):
            if id(parameter) in seen:
                raise ParameterGroupError(f"parameter {name} is in two optimizer groups")
            seen.add(id(parameter))
    return groups


def role_learning_rate(optim: OptimConfig, role: Role) -> float:
    return optim.head_lr if role == "head" and optim.head_lr is not None else optim.lr


def role_warmup_steps(optim: OptimConfig, role: Role) -> int:
    if role == "head" and optim.head_warmup_steps is not None:
        return optim.head_warmup_steps
    return optim.warmup_steps


def build_optimizer(
    model: nn.Module,
    optim: OptimConfig,
    *,
    max_steps: int,
    loss_weighting: nn.Module | None = None,
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR, list[GroupSpec]]:
    """AdamW over `parameter_groups`, and a LambdaLR with each group's role schedule."""
    specs = parameter_groups(model, loss_weighting=loss_weighting)
    optimizer = torch.optim.AdamW(
        [
            {
                "params": list(spec.parameters),
                "weight_decay": optim.weight_decay if spec.decay else 0.0,
                "lr": role_learning_rate(optim, spec.role),
                "name": spec.name,
                "role": spec.role,
            }
            for spec in specs
        ],
        lr=optim.lr,
        betas=optim.betas,
        eps=optim.eps,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, [_schedule(optim, spec.role, max_steps=max_steps) for spec in specs]
    )
    return optimizer, scheduler, specs


def _schedule(optim: OptimConfig, role: Role, *, max_steps: int) -> Callable[[int], float]:
    warmup = role_warmup_steps(optim, role)

    def scale(step: int) -> float:
        return lr_scale(
            step,
            warmup_steps=warmup,
            total_steps=max_steps,
            decay=optim.decay,
            final_ratio=optim.final_lr_ratio,
        )

    return scale


def current_learning_rates(optimizer: torch.optim.Optimizer) -> dict[Role, float]:
    """The learning rate each role trains at now (the first group of the role)."""
    rates: dict[Role, float] = {}
    for group in optimizer.param_groups:
        rates.setdefault(group["role"], group["lr"])
    return rates


def module_parameters(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """The trainable parameters per part, for per-module gradient norms.

    An audio-only model is one part, "audio_encoder". A VGS+ model: "audio_encoder", then each other child
    module by its name ("audio_head", "image_encoder"), then each parameter it holds directly
    ("log_logit_scale").
    """
    if not isinstance(model, VgsModel):
        return {ENCODER_MODULE: [p for p in model.parameters() if p.requires_grad]}
    parts: dict[str, list[nn.Parameter]] = {}
    for name, child in model.named_children():
        trainable = [p for p in child.parameters() if p.requires_grad]
        if trainable:
            parts[ENCODER_MODULE if name == "audio" else name] = trainable
    for name, parameter in model.named_parameters(recurse=False):
        if parameter.requires_grad:
            parts[name] = [parameter]
    return parts


def gradient_norms(parts: dict[str, list[nn.Parameter]]) -> dict[str, float]:
    """The L2 norm of the current `.grad` of each part; parts without any gradient are left out."""
    norms: dict[str, float] = {}
    for name, parameters in parts.items():
        grads = [p.grad.detach().float() for p in parameters if p.grad is not None]
        if grads:
            norms[name] = float(
                torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
            )
    return norms


def describe_groups(optimizer: torch.optim.Optimizer, groups: Sequence[GroupSpec]) -> list[str]:
    """One line per parameter group for the log: name, size, peak learning rate, weight decay."""
    return [
        f"{spec.name}: {len(spec.parameters)} tensors, {sum(p.numel() for p in spec.parameters)} parameters, "
        f"peak lr {group['initial_lr']:g}, weight decay {group['weight_decay']:g}"
        for group, spec in zip(optimizer.param_groups, groups, strict=True)
    ]


def restore_optimizer(
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    state: Mapping[str, Any],
    *,
    where: Path,
) -> None:
    """Load a checkpoint's optimizer and schedule state, refusing one made with other parameter groups.

    The learning rates of the next update are then taken from this run's schedule: the stored values on a
    plain resume, the new length's after an extension of `max_steps` (the stored ones end the old schedule).
    """
    saved_groups = [group.get("name") for group in state["optimizer"]["param_groups"]]
    groups = [group["name"] for group in optimizer.param_groups]
    if saved_groups != groups:
        raise ResumeError(
            f"{where} holds optimizer state for the parameter groups {saved_groups}, but this version of "
            f"vgssl makes {groups} (weight decay and learning rates by role); finish that run with the "
            "vgssl version that started it, or start a new run with another --run-dir"
        )
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    for group, scale, base in zip(
        optimizer.param_groups, scheduler.lr_lambdas, scheduler.base_lrs, strict=True
    ):
        group["lr"] = base * scale(scheduler.last_epoch)
