"""How much of the forgotten association an attack brings back.

A model's *position* on a metric is where it lies between Clean (0) and Compromised (1):
``(M - M_clean) / (M_compromised - M_clean)``, the scale the diagnosis uses too. An attack moves
every model, the references included: relearning teaches Clean something from the attacker's
data, and a Compromised model learns a little more of what it knew. So the position after the
attack is taken between Clean and Compromised *attacked the same way*, and

    recovered = position after the attack - position before it.

Clean and Compromised recover exactly 0 by construction (there is nothing to recover, and what
the attacker teaches any model is not counted). An unlearned model whose forgetting was shallow
climbs back toward Compromised: a recovered share of 0.5 means half the Compromised-Clean gap
came back. When the references' gap is smaller than ``min_gap`` the position is undefined (None).
"""

from __future__ import annotations


def position(value: float, clean: float, compromised: float, min_gap: float) -> float | None:
    gap = compromised - clean
    if abs(gap) < min_gap:
        return None
    return (value - clean) / gap


def recovered(before: tuple, after: tuple, min_gap: float) -> float | None:
    """``before`` and ``after``: (model, Clean, Compromised) values of one metric on the same
    rows, without and with the attack."""
    start, end = position(*before, min_gap), position(*after, min_gap)
    return None if start is None or end is None else end - start
