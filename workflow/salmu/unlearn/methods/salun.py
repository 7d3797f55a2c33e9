"""SalUn (Fan et al., "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency",
ICLR 2024), adapted to CLIP.

1. Saliency: the gradient of the CLIP loss on forget pairs, summed over the first ``mask_steps``
   budgeted steps; the ``sparsity`` share of weights with the largest |gradient| (one global
   threshold, as in the original) is trainable, every other weight stays at its starting value.
2. Random-label unlearning restricted to those weights: the CLIP analogue of random labels is
   contrastive fine-tuning on forget images with shuffled forget captions, plus
   ``retain_weight`` x CLIP(retain), for the remaining budgeted steps.
"""

from itertools import islice

import torch

from salmu.unlearn.base import Session, Step
from salmu.unlearn.gradients import accumulate, loss_gradients
from salmu.unlearn.losses import clip_loss
from salmu.unlearn.methods.shuffled_captions import shuffled_caption_loss
from salmu.unlearn.regularised import RetainRegularised


def saliency_masks(scores: list[torch.Tensor], sparsity: float) -> list[torch.Tensor]:
    """Boolean masks keeping the ``sparsity`` share of entries with the largest scores overall.
    Zero scores are never salient (e.g. embedding rows of tokens the forget captions never use)."""
    flat = torch.cat([s.flatten() for s in scores])
    keep = max(1, round(sparsity * flat.numel()))
    threshold = torch.topk(flat, keep, sorted=False).values.min()
    return [(s >= threshold) & (s > 0) for s in scores]


class SalUn(RetainRegularised):
    name = "salun"

    def __init__(self, sparsity: float = 0.5, mask_steps: int = 1, retain_weight: float = 1.0):
        if not 0 < sparsity <= 1:
            raise ValueError(f"salun: sparsity must be in (0, 1], got {sparsity}")
        super().__init__(retain_weight)
        self.sparsity = float(sparsity)
        self.mask_steps = int(mask_steps)
        self.masks: list[torch.Tensor] = []

    def forget_loss(self, model, step: Step):
        return shuffled_caption_loss(model, step)

    def shape_gradients(self, model) -> None:
        for p, mask in zip(self._params, self.masks):
            if p.grad is not None:
                p.grad.mul_(mask)

    def unlearn(self, session: Session) -> None:
        if not 0 < self.mask_steps < session.budget:
            raise ValueError(
                f"salun: mask_steps must be between 1 and the budget's {session.budget} steps - 1, "
                f"got {self.mask_steps}"
            )
        self._params = [p for _, p in session.trainable()]
        steps = session.steps()
        gradient_sum = None
        for step in islice(steps, self.mask_steps):
            with session.autocast():
                loss = clip_loss(session.model, step.forget)
            gradient_sum = accumulate(gradient_sum, loss_gradients(loss, self._params))
            session.record(loss)
        self.masks = saliency_masks([g.abs() for g in gradient_sum], self.sparsity)
        start = [p.detach().clone() for p in self._params]
        for step in steps:
            with session.autocast():
                loss = self.loss(session.model, step)
            session.optimize(loss, self.shape_gradients)
            # Weight decay moves every weight; salient-only updates mean the rest stays put.
            with torch.no_grad():
                for p, mask, p0 in zip(self._params, self.masks, start):
                    p.copy_(torch.where(mask, p, p0))
        kept = sum(int(m.sum()) for m in self.masks)
        session.report["salient_weights"] = kept
        session.report["salient_share"] = kept / sum(m.numel() for m in self.masks)
