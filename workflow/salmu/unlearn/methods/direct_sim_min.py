"""Direct Similarity Minimisation: minimise the cosine similarity of every forget image with its
own caption (SALMUBench "Direct Sim. Min."; the forget term of SLUG's ``1 - cos`` baselines, Cai
et al., ICML 2025, negated). Unbounded below, so it drives similarities negative: the paper's
catastrophic-collapse example. ``retain_weight`` > 0 adds +CLIP(retain); 0 is the plain baseline.
"""

from salmu.unlearn.base import Step, UnlearningMethod
from salmu.unlearn.losses import clip_loss, encode, pair_similarity


class DirectSimilarityMinimisation(UnlearningMethod):
    name = "direct_sim_min"

    def __init__(self, retain_weight: float = 0.0):
        self.retain_weight = float(retain_weight)

    def loss(self, model, step: Step, reference=None):
        loss = pair_similarity(*encode(model, step.forget)).mean()
        if self.retain_weight:
            loss = loss + self.retain_weight * clip_loss(model, step.retain)
        return loss
