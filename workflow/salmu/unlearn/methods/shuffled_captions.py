"""Shuffled Captions: contrastive fine-tuning on forget images paired with other forget captions.

The CLIP analogue of random-label unlearning (Golatkar et al., CVPR 2020; SALMUBench "Shuffled
Captions"): each forget image is trained toward the caption of another forget sample of the batch
(batches are drawn at random, so this re-pairs across the whole forget set), overwriting the true
association with a wrong one. ``retain_weight`` > 0 adds +CLIP(retain); 0 is the plain baseline.
"""

import torch

from salmu.unlearn.base import Step
from salmu.unlearn.losses import clip_loss, derangement
from salmu.unlearn.regularised import RetainRegularised


def shuffled_caption_loss(model, step: Step) -> torch.Tensor:
    forget = step.forget
    return clip_loss(model, forget, forget.texts[derangement(len(forget), forget.texts.device)])


class ShuffledCaptions(RetainRegularised):
    name = "shuffled_captions"

    def forget_loss(self, model, step: Step):
        return shuffled_caption_loss(model, step)
