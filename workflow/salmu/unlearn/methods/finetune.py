"""Finetuning (FT): keep training the Compromised model with the CLIP loss on retain data only.

The forget set is never used; forgetting comes only from interference (SALMUBench main table,
"Finetuning"; the MultiDelete prototype's ``train = dr``).
"""

from salmu.unlearn.base import Step, UnlearningMethod
from salmu.unlearn.losses import clip_loss


class Finetune(UnlearningMethod):
    name = "finetune"

    def loss(self, model, step: Step, reference=None):
        return clip_loss(model, step.retain)
