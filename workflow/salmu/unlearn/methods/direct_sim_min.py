"""Direct Similarity Minimisation: minimise the cosine similarity of every forget image with its
own caption (SALMUBench "Direct Sim. Min."; the forget term of SLUG's ``1 - cos`` baselines, Cai
et al., ICML 2025, negated). Unbounded below, so it drives similarities negative: the paper's
catastrophic-collapse example. ``retain_weight`` > 0 adds +CLIP(retain); 0 is the plain baseline.
"""

from salmu.unlearn.base import Step
from salmu.unlearn.losses import encode, pair_similarity
from salmu.unlearn.regularised import RetainRegularised


class DirectSimilarityMinimisation(RetainRegularised):
    name = "direct_sim_min"

    def forget_loss(self, model, step: Step):
        return pair_similarity(*encode(model, step.forget)).mean()
