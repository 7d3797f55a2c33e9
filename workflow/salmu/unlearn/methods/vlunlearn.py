"""VLUnlearn / MultiDelete (Cheng & Amiri, "MultiDelete: Multimodal Machine Unlearning", ECCV 2024),
as in the MultiDelete CLIP prototype the SALMUBench authors started from:

- decoupling (forget): the forget batch's image→text similarity matrix is matched (MSE, both
  directions) to the frozen model's matrix on the same images with *randomly re-paired* captions;
- multimodal knowledge retention: MSE between the fused embeddings normalize((img+txt)/2) of the
  model and of the frozen model on retain pairs;
- unimodal knowledge retention: MSE between image embeddings and between text embeddings on retain.
"""

import torch.nn.functional as F

from salmu.unlearn.base import Step, UnlearningMethod
from salmu.unlearn.losses import derangement, encode, encode_frozen, fused, matrix_mse


class VLUnlearn(UnlearningMethod):
    name = "vlunlearn"
    needs_reference = True

    def __init__(
        self,
        forget_weight: float = 1.0,
        multimodal_weight: float = 1.0,
        unimodal_weight: float = 1.0,
    ):
        self.forget_weight = float(forget_weight)
        self.multimodal_weight = float(multimodal_weight)
        self.unimodal_weight = float(unimodal_weight)

    def loss(self, model, step: Step, reference=None):
        image, text = encode(model, step.forget)
        ref_image, ref_text = encode_frozen(reference, step.forget)
        repaired = ref_image @ ref_text[derangement(len(text), text.device)].t()
        decouple = matrix_mse(image @ text.t(), repaired)

        r_image, r_text = encode(model, step.retain)
        ref_r_image, ref_r_text = encode_frozen(reference, step.retain)
        multimodal = F.mse_loss(fused(r_image, r_text), fused(ref_r_image, ref_r_text))
        unimodal = F.mse_loss(r_image, ref_r_image) + F.mse_loss(r_text, ref_r_text)
        return (
            self.forget_weight * decouple
            + self.multimodal_weight * multimodal
            + self.unimodal_weight * unimodal
        )
