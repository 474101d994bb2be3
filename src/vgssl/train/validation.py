"""What a run measures on held-out data while it trains, and which checkpoint is best.

* SSL validation: the loss over the whole valid set with fixed masks (seeded per micro-batch from the valid
  stream, step 0), so validations are comparable across steps and runs.
* Retrieval validation (VGS+ runs with valid captions): Recall@k both ways per caption language and pooled,
  computed by rank 0 alone, logged as "<language>/<direction>_R@k".
* `checkpoint.best_by`: ssl_loss scores [valid loss] (lower is better); retrieval scores [mean R@10, mean
  R@1] of both directions over all valid captions (higher is better, in order; a tie goes to the later
  checkpoint: as good at grounding, and trained longer).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from vgssl.data.captions import CaptionSet
from vgssl.data.images import ImageSource
from vgssl.model.retrieval import embed_caption_set, retrieval_scores
from vgssl.model.vgs import VgsModel
from vgssl.train.data import AudioDataset, Batch, collate_batch
from vgssl.train.distributed import DistributedContext, all_gather_objects, all_reduce_sum, barrier
from vgssl.train.gradients import VALID_STREAM, micro_batch_seed
from vgssl.train.logs import LOGGER
from vgssl.train.sampler import BucketBatchSampler
from vgssl.train.stream import LoaderOptions, data_loader

Criterion = Literal["ssl_loss", "retrieval"]  # `TrainConfig.best_by`, "auto" resolved
POOLED = "all"  # the retrieval scores over every valid caption, whatever its language

if TYPE_CHECKING:
    from vgssl.train.config import TrainConfig
    from vgssl.train.run_data import RunData


class Validator:
    """A run's validations and its best checkpoint so far; `state()` goes into every checkpoint."""

    def __init__(
        self,
        config: TrainConfig,
        context: DistributedContext,
        data: RunData,
        *,
        autocast_dtype: torch.dtype | None,
        inspect: Callable[[Batch], None],
    ) -> None:
        self.config, self.context, self.data = config, context, data
        self.autocast_dtype, self.inspect = autocast_dtype, inspect
        self.best_valid_loss: float | None = None
        # What best.pt is: {"criterion", "value" (a list, compared in order), "step"}; None before any.
        self.best: dict[str, Any] | None = None

    def due(self, step: int) -> bool:
        """Every `valid_every` steps and at max_steps; not at a `stop_at` before it, so that best.pt does
        not depend on where a run was interrupted."""
        return step % self.config.logging.valid_every == 0 or step >= self.config.max_steps

    def validate(self, model: nn.Module, step: int) -> tuple[dict[str, float], bool]:
        """The valid metrics at `step` (SSL loss, retrieval, the best_by score) and whether it is the best."""
        config, data = self.config, self.data
        values: dict[str, float] = {}
        valid_loss = None
        if data.valid_set is not None and data.valid_sampler is not None:
            values = validate_ssl(
                model, data.valid_set, data.valid_sampler, seed=config.seed, step=step, context=self.context,
                autocast_dtype=self.autocast_dtype, loader=data.loader, inspect=self.inspect,
            )  # fmt: skip
            valid_loss = values["loss"]
            if self.best_valid_loss is None or valid_loss < self.best_valid_loss:
                self.best_valid_loss = valid_loss
        retrieval: dict[str, float] = {}
        if data.valid_captions is not None and data.image_source is not None:
            retrieval = validate_retrieval(
                model, data.valid_captions, data.image_source, step=step, context=self.context,
                batch_seconds=config.data.batch_seconds,
            )  # fmt: skip
            values |= retrieval
        score = best_score(config.best_by, valid_loss, retrieval, self.context)
        is_best = False
        if score is not None:
            values[f"best_by/{config.best_by}"] = score[0]
            is_best = self.best is None or is_better(config.best_by, score, self.best["value"])
            if is_best:
                self.best = {"criterion": config.best_by, "value": score, "step": step}
        return values, is_best

    def state(self) -> dict[str, Any]:
        return {"best_valid_loss": self.best_valid_loss, "best": self.best}

    def load_state(self, state: dict[str, Any]) -> None:
        self.best_valid_loss = state["best_valid_loss"]
        self.best = state.get("best")  # checkpoints before best_by have none


@torch.no_grad()
def validate_ssl(
    model: nn.Module,
    valid_set: AudioDataset,
    valid_sampler: BucketBatchSampler,
    *,
    seed: int,
    step: int,
    context: DistributedContext,
    autocast_dtype: torch.dtype | None,
    loader: LoaderOptions,
    inspect: Callable[[Batch], None],
) -> dict[str, float]:
    """The SSL loss, its two terms and the accuracy over the whole valid set (all ranks), per masked frame."""
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64)
    valid_sampler.set_epoch(0)
    batches = data_loader(valid_set, valid_sampler, collate=collate_batch, options=loader)
    for index, batch in enumerate(batches):
        inspect(batch)
        if len(batch) == 0:
            continue
        global_index = index * context.world_size + context.rank
        torch.manual_seed(micro_batch_seed(seed, 0, global_index, stream=VALID_STREAM))
        with torch.autocast(context.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            output = model(batch.wav.to(context.device), batch.padding_mask.to(context.device), mask=True)
        totals += torch.stack(
            [
                output.losses["ssl/contrastive"].double(),
                output.losses["ssl/diversity"].double(),
                output.num_masked.double(),
                output.stats["ssl/accuracy"].double() * output.num_masked,
            ]
        ).cpu()
    totals = all_reduce_sum(totals.to(context.device), context).cpu().tolist()
    contrastive, diversity, num_masked, correct = totals
    count = max(num_masked, 1.0)
    values = {
        "loss": (contrastive + diversity) / count,
        "contrastive": contrastive / count,
        "diversity": diversity / count,
        "accuracy": correct / count,
    }
    LOGGER.info("step %d: valid loss %.4f, accuracy %.3f", step, values["loss"], values["accuracy"])
    return values


def validate_retrieval(
    model: nn.Module,
    captions: CaptionSet,
    image_source: ImageSource,
    *,
    step: int,
    context: DistributedContext,
    batch_seconds: float,
) -> dict[str, float]:
    """Recall@k on the valid captions as "<language>/<direction>_R@k" on rank 0 ({} on the others)."""
    values: dict[str, float] = {}
    if context.is_main:
        assert isinstance(model, VgsModel)  # only VGS+ runs have valid captions
        embeddings = embed_caption_set(
            model, captions, image_source, device=context.device, batch_seconds=batch_seconds
        )
        for name, scores in retrieval_scores(embeddings).items():
            for direction in ("speech_to_image", "image_to_speech"):
                for k, recall in scores[direction].items():
                    values[f"{name}/{direction}_{k}"] = recall
            LOGGER.info(
                "step %d: retrieval %s (%d images): speech->image R@1 %.1f %%, R@10 %.1f %% (chance %.1f %%)",
                step,
                name,
                scores["images"],
                scores["speech_to_image"]["R@1"],
                scores["speech_to_image"]["R@10"],
                scores["chance"]["speech_to_image"]["R@10"],
            )
    barrier(context)
    return values


def best_score(
    criterion: Criterion, valid_loss: float | None, retrieval: dict[str, float], context: DistributedContext
) -> list[float] | None:
    """This validation's score for `criterion` (the same on every rank), or None without one.

    retrieval: [mean R@10, mean R@1] over both directions and all valid captions (pooled over languages; a
    one-language set has no pooled entry, its language's is the same), in %; rank 0 computes retrieval
    alone and sends the score to the others.
    """
    if criterion == "ssl_loss":
        return None if valid_loss is None else [valid_loss]
    score = None
    if retrieval:
        names = sorted({key.split("/")[0] for key in retrieval})
        name = POOLED if POOLED in names else names[0]
        score = [
            (retrieval[f"{name}/speech_to_image_R@{k}"] + retrieval[f"{name}/image_to_speech_R@{k}"]) / 2
            for k in (10, 1)
        ]
    return all_gather_objects(score, context)[0]


def is_better(criterion: Criterion, score: Sequence[float], best: Sequence[float]) -> bool:
    """ssl_loss: a strictly lower loss. retrieval: a higher or equal [R@10, R@1], compared in order."""
    if criterion == "ssl_loss":
        return score[0] < best[0]
    return tuple(score) >= tuple(best)
