"""DELETE, as adapted to CLIP by the SALMUBench authors' MultiDelete prototype.

DELETE (Zhou et al., "Decoupled Distillation to Erase", CVPR 2025) is class-centric: it distils the
frozen model's logits with the forget class masked out. The CLIP adaptation treats each forget pair as
its own "class": the forget batch's image→text similarity matrix is driven to zero (no caption is
preferred), while the retain batch's matrix is distilled from the frozen model (MSE, both directions).
"""

import torch

from salmu.unlearn.base import Step, UnlearningMethod
from salmu.unlearn.losses import encode, encode_frozen, matrix_mse


def erase_and_keep(model, reference, step: Step):
    """(forget term, retain term, retain embeddings, frozen retain embeddings) of DELETE."""
    image, text = encode(model, step.forget)
    similarity = image @ text.t()
    erase = matrix_mse(similarity, torch.zeros_like(similarity))
    r_image, r_text = encode(model, step.retain)
    ref_r_image, ref_r_text = encode_frozen(reference, step.retain)
    keep = matrix_mse(r_image @ r_text.t(), ref_r_image @ ref_r_text.t())
    return erase, keep, (r_image, r_text), (ref_r_image, ref_r_text)


class Delete(UnlearningMethod):
    name = "delete"
    needs_reference = True

    def __init__(self, forget_weight: float = 1.0, retain_weight: float = 1.0):
        self.forget_weight = float(forget_weight)
        self.retain_weight = float(retain_weight)

    def loss(self, model, step: Step, reference=None):
        erase, keep, _, _ = erase_and_keep(model, reference, step)
        return self.forget_weight * erase + self.retain_weight * keep
