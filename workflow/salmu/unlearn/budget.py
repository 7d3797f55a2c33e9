"""The budget unit, without torch (``salmu plan`` uses it): 1x = one pass over the forget set."""

from __future__ import annotations

import math


def budget_steps(budget: float, forget_size: int, batch_size: int) -> int:
    """Steps of a budget: ``round(budget * ceil(forget_size / batch_size))``, at least one."""
    if budget <= 0:
        raise ValueError(f"budget must be > 0, got {budget}")
    return max(1, round(budget * math.ceil(forget_size / batch_size)))
