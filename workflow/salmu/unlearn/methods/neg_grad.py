"""Negative Gradient (NG): gradient ascent on the CLIP loss over forget pairs.

Loss = -CLIP(forget) (MultiDelete prototype ``NegativeGradientTask``; SALMUBench "Neg. Gradient").
``retain_weight`` > 0 adds +CLIP(retain) to slow the collapse (0 reproduces the plain baseline).
"""

from salmu.unlearn.base import Step
from salmu.unlearn.losses import clip_loss
from salmu.unlearn.regularised import RetainRegularised


class NegativeGradient(RetainRegularised):
    name = "neg_grad"

    def forget_loss(self, model, step: Step):
        return -clip_loss(model, step.forget)
