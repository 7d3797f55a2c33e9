"""Negative Gradient (NG): gradient ascent on the CLIP loss over forget pairs.

Loss = -CLIP(forget) (MultiDelete prototype ``NegativeGradientTask``; SALMUBench "Neg. Gradient").
``retain_weight`` > 0 adds +CLIP(retain) to slow the collapse (0 reproduces the plain baseline).
"""

from salmu.unlearn.base import Step, UnlearningMethod
from salmu.unlearn.losses import clip_loss


class NegativeGradient(UnlearningMethod):
    name = "neg_grad"

    def __init__(self, retain_weight: float = 0.0):
        self.retain_weight = float(retain_weight)

    def loss(self, model, step: Step, reference=None):
        loss = -clip_loss(model, step.forget)
        if self.retain_weight:
            loss = loss + self.retain_weight * clip_loss(model, step.retain)
        return loss
