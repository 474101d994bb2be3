"""Speech–image retrieval: Recall@k in both directions, per caption language, with its chance level.

Every caption and every image is embedded once (eval mode, unmasked audio); a caption–image score is the
cosine of their unit vectors. For one language: the queries are that language's captions and the gallery is
the images that have a caption in that language.

* speech -> image: a caption hits at k when its image ranks in the top k of the gallery.
* image -> speech: an image hits at k when ANY of its captions ranks in the top k of the language's captions.

Ties count against the query (a competitor scoring exactly as much as the right answer ranks before it), so
a constant model scores no better than chance. Chance levels, for random rankings: k / images for speech ->
image; for image -> speech, an image with c of the n captions hits with probability 1 − C(n − c, k) / C(n, k),
averaged over the gallery. Recalls and chance levels are in %.

It lives beside the model because training (retrieval on the valid captions) and `vgssl retrieval` both
use it, and training does not import the evaluation package.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vgssl.audio.batch import pad_waveforms
from vgssl.audio.frames import SAMPLE_RATE
from vgssl.audio.io import read_audio
from vgssl.audio.lengths import Utterance, length_batches
from vgssl.data.captions import CaptionSet
from vgssl.data.images import ImageSource
from vgssl.model.vgs import VgsModel

RETRIEVAL_FORMAT = "vgssl-retrieval-v1"
RECALL_AT = (1, 5, 10)
IMAGE_BATCH = 64
METHOD = (
    "cosine similarity of unit vectors; speech->image: a caption hits when its image is in the top k of the "
    "images that have a caption in the language; image->speech: an image hits when any of its captions is in "
    "the top k of the language's captions; ties count against the query; recall and chance in %"
)


@dataclass(frozen=True)
class RetrievalEmbeddings:
    audio: Tensor  # (C, E) unit vectors, one per caption, in `caption_set.captions` order
    images: Tensor  # (I, E) unit vectors, one per image, in `caption_set.images` order
    caption_image: Tensor  # (C,) index into `images` of each caption's image
    caption_languages: tuple[str, ...]


@torch.inference_mode()
def embed_caption_set(
    model: VgsModel,
    caption_set: CaptionSet,
    image_source: ImageSource,
    *,
    device: torch.device,
    batch_seconds: float = 60.0,
) -> RetrievalEmbeddings:
    """Embed every caption (length-batched within `batch_seconds` of padded audio) and every image."""
    import soundfile

    was_training = model.training
    model.eval()
    try:
        images = []
        for start in range(0, len(caption_set.images), IMAGE_BATCH):
            chunk = caption_set.images[start : start + IMAGE_BATCH]
            pixels = torch.from_numpy(np.stack([image_source.load(image) for image in chunk]))
            images.append(model.embed_images(pixels.to(device)).cpu())
        captions = caption_set.captions
        row_of_caption = {caption.uttid: row for row, caption in enumerate(captions)}
        utterances = []
        for caption in captions:
            info = soundfile.info(str(caption.wav))
            utterances.append(
                Utterance(caption.uttid, caption.wav, round(info.frames * SAMPLE_RATE / info.samplerate))
            )
        audio = torch.zeros(len(captions), model.grounding_config.joint_dim)
        for batch in length_batches(utterances, batch_seconds=batch_seconds, batchable=True):
            wav, padding_mask, _ = pad_waveforms([read_audio(u.path, sample_rate=SAMPLE_RATE) for u in batch])
            vectors = model.embed_audio(wav.to(device), padding_mask.to(device)).cpu()
            audio[[row_of_caption[u.key] for u in batch]] = vectors
    finally:
        model.train(was_training)
    row_of = {image.image_id: row for row, image in enumerate(caption_set.images)}
    return RetrievalEmbeddings(
        audio=audio,
        images=torch.cat(images) if images else torch.zeros(0, audio.shape[1]),
        caption_image=torch.tensor([row_of[caption.image_id] for caption in captions], dtype=torch.long),
        caption_languages=tuple(caption.language for caption in captions),
    )


def recall_at(
    similarity: Tensor, caption_image: Tensor, *, ks: Sequence[int] = RECALL_AT
) -> dict[str, dict[str, float]]:
    """Recall@k in % both ways from a (captions, images) score matrix; every image needs a caption."""
    num_captions = similarity.shape[0]
    rows = torch.arange(num_captions)
    correct = similarity[rows, caption_image]
    is_own = torch.zeros_like(similarity, dtype=torch.bool)
    is_own[rows, caption_image] = True
    # Speech -> image: the other images scoring at least as much as the caption's own image.
    speech_rank = ((similarity >= correct[:, None]) & ~is_own).sum(1)
    # Image -> speech: the other images' captions scoring at least as much as the image's best own caption.
    best_own = similarity.masked_fill(~is_own, float("-inf")).max(0).values
    image_rank = ((similarity >= best_own[None, :]) & ~is_own).sum(0)
    return {
        "speech_to_image": {f"R@{k}": _percent(speech_rank < k) for k in ks},
        "image_to_speech": {f"R@{k}": _percent(image_rank < k) for k in ks},
    }


def chance_recall(caption_image: Tensor, num_images: int, *, ks: Sequence[int] = RECALL_AT) -> dict[str, Any]:
    """The expected recalls in % of a random ranking (see the module docstring)."""
    num_captions = len(caption_image)
    per_image = torch.bincount(caption_image, minlength=num_images).tolist()
    return {
        "speech_to_image": {f"R@{k}": 100.0 * min(k, num_images) / num_images for k in ks},
        "image_to_speech": {
            f"R@{k}": 100.0 * float(np.mean([_hit_probability(num_captions, c, k) for c in per_image]))
            for k in ks
        },
    }


def _hit_probability(total: int, relevant: int, k: int) -> float:
    """P(at least one of `relevant` items among `total` is in a random top k) = 1 − C(n − c, k) / C(n, k)."""
    miss = 1.0
    for j in range(min(k, total)):
        miss *= max(total - relevant - j, 0) / (total - j)
    return 1.0 - miss


def _percent(hits: Tensor) -> float:
    return 100.0 * float(hits.float().mean())


def retrieval_scores(embeddings: RetrievalEmbeddings, *, ks: Sequence[int] = RECALL_AT) -> dict[str, Any]:
    """Recalls and chance levels per language, and over all captions pooled ("all")."""
    languages = sorted(set(embeddings.caption_languages))
    selections = {
        language: [lang == language for lang in embeddings.caption_languages] for language in languages
    }
    if len(languages) > 1:
        selections["all"] = [True] * len(embeddings.caption_languages)
    scores = {}
    for name, selected in selections.items():
        keep = torch.tensor(selected, dtype=torch.bool)
        gallery, caption_image = torch.unique(embeddings.caption_image[keep], return_inverse=True)
        similarity = embeddings.audio[keep] @ embeddings.images[gallery].T
        scores[name] = {
            "captions": int(keep.sum()),
            "images": len(gallery),
            **recall_at(similarity, caption_image, ks=ks),
            "chance": chance_recall(caption_image, len(gallery), ks=ks),
        }
    return scores
