"""Finetuning (FT): keep training the Compromised model with the CLIP loss on retain data only.

The forget set is never used; forgetting comes only from catastrophic interference (SALMUBench main
table, "Finetuning"; MultiDelete prototype ``train = dr``).
"""

from salmu.unlearn.base import Step, UnlearningMethod, clip_loss


class Finetune(UnlearningMethod):
    name = "finetune"

    def loss(self, model, step: Step, reference=None):
        return clip_loss(model, step.retain)
