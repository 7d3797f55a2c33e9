"""SLUG, Single Layer Unlearning Gradient (Cai et al., "Targeted Unlearning with Single Layer
Unlearning Gradient", ICML 2025), on CLIP's contrastive loss.

1. The budgeted steps accumulate the gradient of the CLIP loss on forget batches (g_f) and on retain
   batches (g_r) at the Compromised weights; nothing is updated meanwhile.
2. Each weight matrix W gets an importance ||g_f|| / ||W|| and an alignment |cos(g_f, g_r)|; the
   candidates are the Pareto front (most important to forgetting, least aligned with retaining).
3. For each candidate, a bisection finds the smallest relative step lambda in (0, ``max_step``] for
   which W + lambda ||W|| g_f / ||g_f|| (one gradient-ascent step on that layer alone) brings the
   in-batch top-1 retrieval of the last forget batch down to ``target_top1``; the candidate that
   keeps the most retain top-1 at its lambda is applied. The search costs forward passes only.
"""

from __future__ import annotations

import contextlib

import torch

from salmu.unlearn.base import Batch, Session, UnlearningMethod
from salmu.unlearn.gradients import forget_and_retain_statistics
from salmu.unlearn.losses import in_batch_top1


def pareto_front(importance: list[float], alignment: list[float]) -> list[int]:
    """Indices not dominated by another (higher or equal importance and lower or equal alignment,
    one strictly)."""
    front = []
    for i, (imp_i, al_i) in enumerate(zip(importance, alignment)):
        dominated = any(
            imp_j >= imp_i and al_j <= al_i and (imp_j > imp_i or al_j < al_i)
            for imp_j, al_j in zip(importance, alignment)
        )
        if not dominated:
            front.append(i)
    return front


class SingleLayerUnlearningGradient(UnlearningMethod):
    name = "slug"
    takes_optimizer_steps = False

    def __init__(self, target_top1: float = 0.1, max_step: float = 1.0, search_iters: int = 10):
        self.target_top1 = float(target_top1)
        self.max_step = float(max_step)
        self.search_iters = int(search_iters)

    def unlearn(self, session: Session) -> None:
        model = session.model
        named = [(n, p) for n, p in session.trainable() if p.ndim >= 2]
        params = [p for _, p in named]
        forget_sum, retain_sum, last = forget_and_retain_statistics(session, params)
        importance = [
            float(g.norm() / p.detach().float().norm().clamp_min(1e-12))
            for g, p in zip(forget_sum, params)
        ]
        alignment = [
            abs(float(torch.nn.functional.cosine_similarity(f.flatten(), r.flatten(), dim=0)))
            for f, r in zip(forget_sum, retain_sum)
        ]
        model.eval()
        best = None
        for index in pareto_front(importance, alignment):
            p, g = params[index], forget_sum[index]
            direction = (g / g.norm().clamp_min(1e-30) * p.detach().float().norm()).to(p.dtype)
            scale, forget_top1 = self._search(model, p, direction, last.forget)
            with _shifted(p, scale * direction):
                retain_top1 = in_batch_top1(model, last.retain)
            reached = forget_top1 <= self.target_top1
            # Prefer reaching the target, then keeping retain retrieval, then forgetting more.
            rank = (reached, retain_top1 if reached else -forget_top1)
            if best is None or rank > best[0]:
                best = (rank, index, scale, direction, forget_top1, retain_top1)
        _, index, scale, direction, forget_top1, retain_top1 = best
        with torch.no_grad():
            params[index].add_(scale * direction)
        model.train()
        session.report.update(
            layer=named[index][0],
            step=scale,
            forget_top1=forget_top1,
            retain_top1=retain_top1,
            pareto_layers=[named[i][0] for i in pareto_front(importance, alignment)],
        )

    def _search(self, model, p, direction, forget: Batch) -> tuple[float, float]:
        """Smallest step in (0, max_step] reaching the target (bisection); (max_step, top-1 there)
        when even max_step does not."""
        with _shifted(p, self.max_step * direction):
            top1 = in_batch_top1(model, forget)
        if top1 > self.target_top1:
            return self.max_step, top1
        low, high, high_top1 = 0.0, self.max_step, top1
        for _ in range(self.search_iters):
            middle = (low + high) / 2
            with _shifted(p, middle * direction):
                top1 = in_batch_top1(model, forget)
            if top1 <= self.target_top1:
                high, high_top1 = middle, top1
            else:
                low = middle
        return high, high_top1


@contextlib.contextmanager
def _shifted(p: torch.Tensor, delta: torch.Tensor):
    """Temporarily add ``delta`` to parameter ``p`` (restored exactly afterwards)."""
    saved = p.detach().clone()
    with torch.no_grad():
        p.add_(delta)
    try:
        yield
    finally:
        with torch.no_grad():
            p.copy_(saved)
