"""Shuffled Captions: contrastive fine-tuning on forget images paired with other forget captions.

The CLIP analogue of random-label unlearning (Golatkar et al., CVPR 2020; SALMUBench "Shuffled
Captions"): each forget image is trained toward the caption of another forget sample of the batch
(batches are drawn at random, so this re-pairs across the whole forget set), overwriting the true
association with a wrong one. ``retain_weight`` > 0 adds +CLIP(retain); 0 is the plain baseline.
"""

from salmu.unlearn.base import Step, UnlearningMethod
from salmu.unlearn.losses import clip_loss, derangement


def shuffled_caption_loss(model, step: Step) -> object:
    forget = step.forget
    return clip_loss(model, forget, forget.texts[derangement(len(forget), forget.texts.device)])


class ShuffledCaptions(UnlearningMethod):
    name = "shuffled_captions"

    def __init__(self, retain_weight: float = 0.0):
        self.retain_weight = float(retain_weight)

    def loss(self, model, step: Step, reference=None):
        loss = shuffled_caption_loss(model, step)
        if self.retain_weight:
            loss = loss + self.retain_weight * clip_loss(model, step.retain)
        return loss
