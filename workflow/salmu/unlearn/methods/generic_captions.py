"""Generic Captions: contrastive fine-tuning on forget images paired with their generic captions.

Each forget image is trained toward its non-sensitive description (the official
``sensitive_set_generic_captions.json``; SALMUBench "Generic Captions", which the paper finds
ineffective). The forget shards carry these captions (``salmu shards --generic-captions``).
``retain_weight`` > 0 adds +CLIP(retain); 0 is the plain baseline.
"""

from salmu.unlearn.base import Step
from salmu.unlearn.losses import clip_loss
from salmu.unlearn.regularised import RetainRegularised


class GenericCaptions(RetainRegularised):
    name = "generic_captions"

    def forget_loss(self, model, step: Step):
        forget = step.forget
        if forget.generic_texts is None:
            raise ValueError(
                "generic_captions: the forget shards carry no generic captions (build them with "
                "'salmu shards --generic-captions sensitive_set_generic_captions.json')"
            )
        return clip_loss(model, forget, forget.generic_texts)
