"""Loss building blocks the unlearning methods share: embeddings, similarity matrices, CLIP loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from salmu.unlearn.base import Batch


def encode(model, batch: Batch, texts: torch.Tensor | None = None):
    """L2-normalised image and text embeddings (``texts`` replaces the batch's captions)."""
    image = F.normalize(model.encode_image(batch.images), dim=-1)
    text = F.normalize(model.encode_text(batch.texts if texts is None else texts), dim=-1)
    return image, text


def encode_frozen(reference, batch: Batch):
    """Embeddings of the frozen starting model: targets, never differentiated."""
    with torch.no_grad():
        return encode(reference, batch)


def contrastive(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor):
    """Symmetric InfoNCE over a batch whose i-th image and i-th text are a pair."""
    logits = logit_scale.exp() * image @ text.t()
    labels = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


def clip_loss(model, batch: Batch, texts: torch.Tensor | None = None) -> torch.Tensor:
    """The loss CLIP is trained with (open_clip's ClipLoss on one process)."""
    image, text = encode(model, batch, texts)
    return contrastive(image, text, model.logit_scale)


def pair_similarity(image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of each image with its own caption, shape (N,)."""
    return (image * text).sum(dim=-1)


def matrix_mse(similarity: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE between image→text similarity matrices, over both retrieval directions.

    The text→image matrix is the transpose, so the two directions of the MultiDelete losses are
    equal terms; they are kept as a factor 2 so that loss weights match the original code.
    """
    return 2 * F.mse_loss(similarity, target)


def fused(image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """MultiDelete's multimodal embedding: the normalised mean of the two unimodal ones."""
    return F.normalize((image + text) / 2, dim=-1)


def derangement(n: int, device=None) -> torch.Tensor:
    """A permutation with no fixed point (a random cyclic shift), from torch's seeded RNG, so
    every image is re-paired with another sample's caption. A batch of one stays as it is."""
    if n < 2:
        return torch.zeros(n, dtype=torch.long, device=device)
    shift = int(torch.randint(1, n, (1,)))
    return (torch.arange(n, device=device) + shift) % n


def in_batch_top1(model, batch: Batch) -> float:
    """Share of images whose own caption is the most similar of the batch's captions."""
    with torch.no_grad():
        image, text = encode(model, batch)
        hits = (image @ text.t()).argmax(dim=1) == torch.arange(len(batch), device=image.device)
    return float(hits.float().mean())
