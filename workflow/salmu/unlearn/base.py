"""The interface every unlearning method implements.

A method turns (model, forget batch, retain batch, frozen reference model) into a loss; the shared
driver in ``salmu.unlearn.run`` owns the optimizer, the budget and the checkpoint, so a new method is
one small class. Methods never see holdout splits: the driver only hands them forget and retain data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Batch:
    """Preprocessed images (N,3,H,W) and tokenized captions (N,L)."""

    images: torch.Tensor
    texts: torch.Tensor


@dataclass
class Step:
    forget: Batch
    retain: Batch


class UnlearningMethod:
    """Subclass, set ``name``, and implement ``loss``; constructor kwargs are hyperparameters."""

    name: str = ""
    # Set True to receive a frozen copy of the starting (Compromised) model in ``loss``.
    needs_reference: bool = False

    def __init__(self, **hyperparameters):
        if hyperparameters:
            raise ValueError(
                f"method '{self.name}' takes no hyperparameters, got {sorted(hyperparameters)}"
            )

    def loss(self, model, step: Step, reference=None) -> torch.Tensor:
        raise NotImplementedError


def encode(model, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised image and text embeddings."""
    image = F.normalize(model.encode_image(batch.images), dim=-1)
    text = F.normalize(model.encode_text(batch.texts), dim=-1)
    return image, text


def clip_loss(model, batch: Batch) -> torch.Tensor:
    """The symmetric InfoNCE loss CLIP is trained with (same as open_clip's ClipLoss, one process)."""
    image, text = encode(model, batch)
    logits = model.logit_scale.exp() * image @ text.t()
    labels = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
