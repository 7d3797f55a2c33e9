"""Selective Synaptic Dampening (Foster et al., "Fast Machine Unlearning Without Retraining Through
Selective Synaptic Dampening", AAAI 2024), on CLIP's contrastive loss.

Retraining-free: the budgeted steps estimate each weight's importance as its mean squared gradient
(the diagonal Fisher information) on forget batches and on retain batches (our stand-in for the
full training set). Weights far more important to the forget set, imp_f > ``alpha`` x imp_r, are
scaled by beta = min(``dampening`` x imp_r / imp_f, 1); every other weight is left alone.
"""

import torch

from salmu.unlearn.base import Session, UnlearningMethod
from salmu.unlearn.gradients import forget_and_retain_statistics


def dampen(params, forget_importance, retain_importance, alpha: float, dampening: float) -> int:
    """Scale the selected weights in place; return how many were dampened."""
    dampened = 0
    with torch.no_grad():
        for p, imp_f, imp_r in zip(params, forget_importance, retain_importance):
            selected = imp_f > alpha * imp_r
            beta = (dampening * imp_r / imp_f.clamp_min(1e-30)).clamp(max=1.0)
            p.mul_(torch.where(selected, beta, torch.ones_like(beta)).to(p.dtype))
            dampened += int(selected.sum())
    return dampened


class SelectiveSynapticDampening(UnlearningMethod):
    name = "ssd"
    takes_optimizer_steps = False

    def __init__(self, alpha: float = 10.0, dampening: float = 1.0):
        self.alpha = float(alpha)
        self.dampening = float(dampening)

    def unlearn(self, session: Session) -> None:
        params = [p for _, p in session.trainable()]
        forget_sum, retain_sum, _ = forget_and_retain_statistics(session, params, power=2)
        n = session.taken
        dampened = dampen(
            params,
            [s / n for s in forget_sum],
            [s / n for s in retain_sum],
            self.alpha,
            self.dampening,
        )
        session.report["dampened_weights"] = dampened
        session.report["dampened_share"] = dampened / sum(p.numel() for p in params)
