"""The published numbers a run is held against (docs/protocol.md §5), keyed by table column.

Two sources, kept apart because they were measured differently:

- ``MAIN_TABLE``: the paper's main table at the 5x budget (RetFail MRR, GenKnow, InterIdSim,
  IntraIdSim) for Clean, Compromised and eight baselines; Generic Captions' row is not published.
- ``OFFICIAL_EVALUATOR``: the official evaluator re-run on the released Clean and Compromised
  models (all ten non-GenKnow metrics; GenKnow was skipped there).

``published(method, budget)`` picks, per metric, the official evaluator's value for Clean and Compromised
(the same models, the same evaluator: what a released-mode run must reproduce) and the main table
otherwise.
"""

from __future__ import annotations

MAIN_BUDGET = 5.0

# Our method / state name -> column -> value.
MAIN_TABLE = {
    "clean": {"RetFail_MRR": 0.001, "GenKnow": 0.633, "InterIdSim": 0.143, "IntraIdSim": 0.143},
    "compromised": {
        "RetFail_MRR": 0.236,
        "GenKnow": 0.638,
        "InterIdSim": 0.321,
        "IntraIdSim": 0.321,
    },
    "cliperase": {"RetFail_MRR": 0.001, "GenKnow": 0.634, "InterIdSim": 0.024, "IntraIdSim": 0.024},
    "delete": {"RetFail_MRR": 0.001, "GenKnow": 0.632, "InterIdSim": 0.023, "IntraIdSim": 0.023},
    "vlunlearn": {"RetFail_MRR": 0.001, "GenKnow": 0.638, "InterIdSim": 0.210, "IntraIdSim": 0.210},
    "finetune": {"RetFail_MRR": 0.003, "GenKnow": 0.638, "InterIdSim": 0.209, "IntraIdSim": 0.209},
    "neg_grad": {"RetFail_MRR": 0.009, "GenKnow": 0.630, "InterIdSim": 0.063, "IntraIdSim": 0.061},
    "shuffled_captions": {
        "RetFail_MRR": 0.004,
        "GenKnow": 0.548,
        "InterIdSim": 0.212,
        "IntraIdSim": 0.212,
    },
    "direct_sim_min": {
        "RetFail_MRR": 0.001,
        "GenKnow": 0.615,
        "InterIdSim": -0.420,
        "IntraIdSim": -0.425,
    },
}

# Evaluator commit 8b7f439, benchmark revision b76aa388, GenKnow skipped (docs/protocol.md §5).
OFFICIAL_EVALUATOR = {
    "clean": {
        "RetFail_MRR": 0.0008147,
        "RetFail_R@1": 0.0,
        "AssocStr": 0.1417007,
        "ACS": 0.6019430,
        "IdZSC": 0.0106896,
        "CoreAssoc": 0.1514248,
        "InterIdSim": 0.1427957,
        "IntraIdSim": 0.1428098,
        "VisIdInt": 0.3308454,
        "FragSim": 0.3091025,
    },
    "compromised": {
        "RetFail_MRR": 0.2361021,
        "RetFail_R@1": 0.1015820,
        "AssocStr": 0.3215425,
        "ACS": 0.9509649,
        "IdZSC": 0.0835615,
        "CoreAssoc": 0.1827058,
        "InterIdSim": 0.3214880,
        "IntraIdSim": 0.3212806,
        "VisIdInt": 0.3051500,
        "FragSim": 0.2800867,
    },
}
SOURCES = {
    "official evaluator": "the official evaluator on the released models (docs/protocol.md §5)",
    "paper 5x": "the paper's main table at the 5x budget (docs/protocol.md §5)",
}


def published(method: str, budget: float | None) -> dict[str, tuple[float, str]]:
    """Column -> (published value, source) for one row; empty when nothing is published.

    Unlearned rows match only at the paper's budget (5x): other budgets have no published row.
    """
    found: dict[str, tuple[float, str]] = {}
    if method in ("clean", "compromised"):
        found.update({k: (v, "paper 5x") for k, v in MAIN_TABLE[method].items()})
        found.update({k: (v, "official evaluator") for k, v in OFFICIAL_EVALUATOR[method].items()})
    elif budget == MAIN_BUDGET and method in MAIN_TABLE:
        found.update({k: (v, "paper 5x") for k, v in MAIN_TABLE[method].items()})
    return found
