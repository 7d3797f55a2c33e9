"""Base of the methods whose loss is a forget-set term, optionally regularised on retain."""

from __future__ import annotations

import torch

from salmu.unlearn.base import Step, UnlearningMethod
from salmu.unlearn.losses import clip_loss


class RetainRegularised(UnlearningMethod):
    """``forget_loss`` + ``retain_weight`` x CLIP(retain); ``retain_weight`` 0 is the plain
    baseline as the paper runs it, > 0 slows the collapse of utility."""

    def __init__(self, retain_weight: float = 0.0):
        self.retain_weight = float(retain_weight)

    def forget_loss(self, model, step: Step) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement forget_loss()")

    def loss(self, model, step: Step, reference=None) -> torch.Tensor:
        loss = self.forget_loss(model, step)
        if self.retain_weight:
            loss = loss + self.retain_weight * clip_loss(model, step.retain)
        return loss
