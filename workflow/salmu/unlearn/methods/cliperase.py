"""CLIPErase (Yang et al., "CLIPErase: Efficient Unlearning of Visual-Textual Associations in CLIP",
ACL 2025), in the form of the SALMUBench authors' MultiDelete prototype (no official code exists):

- forgetting module: the forget batch's image→text similarity matrix is driven to zero;
- retention module: the retain batch's similarity matrix is distilled from the frozen model;
- consistency module: the retain image and text embeddings stay where the frozen model puts them.
"""

import torch.nn.functional as F

from salmu.unlearn.base import Step, UnlearningMethod
from salmu.unlearn.methods.delete import erase_and_keep


class CLIPErase(UnlearningMethod):
    name = "cliperase"
    needs_reference = True

    def __init__(
        self,
        forget_weight: float = 1.0,
        retain_weight: float = 1.0,
        consistency_weight: float = 1.0,
    ):
        self.forget_weight = float(forget_weight)
        self.retain_weight = float(retain_weight)
        self.consistency_weight = float(consistency_weight)

    def loss(self, model, step: Step, reference=None):
        erase, keep, (image, text), (ref_image, ref_text) = erase_and_keep(model, reference, step)
        consistency = F.mse_loss(image, ref_image) + F.mse_loss(text, ref_text)
        return (
            self.forget_weight * erase
            + self.retain_weight * keep
            + self.consistency_weight * consistency
        )
