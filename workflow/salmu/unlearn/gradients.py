"""Gradient statistics for methods that inspect gradients instead of (only) following them."""

from __future__ import annotations

import torch

from salmu.unlearn.losses import clip_loss


def loss_gradients(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
    """d loss / d param for each parameter (zeros where unused); ``.grad`` is left untouched."""
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g.detach() for g, p in zip(grads, params)]


def accumulate(totals: list[torch.Tensor] | None, grads: list[torch.Tensor], power: int = 1):
    """Running sum of ``grad ** power`` per parameter."""
    terms = [g.float() ** power for g in grads]
    if totals is None:
        return terms
    for total, term in zip(totals, terms):
        total += term
    return totals


def forget_and_retain_statistics(session, params: list[torch.nn.Parameter], power: int = 1):
    """Spend every budgeted step on gradients of the CLIP loss on its forget batch and on its
    retain batch at the current weights: ``(sum of grad**power over forget, same over retain,
    the last step)``; nothing is updated."""
    forget_sum = retain_sum = last = None
    for last in session.steps():
        with session.autocast():
            forget_loss = clip_loss(session.model, last.forget)
            retain_loss = clip_loss(session.model, last.retain)
        forget_sum = accumulate(forget_sum, loss_gradients(forget_loss, params), power)
        retain_sum = accumulate(retain_sum, loss_gradients(retain_loss, params), power)
        session.record(forget_loss)
    return forget_sum, retain_sum, last
