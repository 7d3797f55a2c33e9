"""Gradient statistics for methods that inspect gradients instead of (only) following them."""

from __future__ import annotations

import torch


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
