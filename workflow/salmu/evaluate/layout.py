"""The evaluation JSON in the official layout (spec §2.1) and its flat metric columns.

``{"efficacy": {"1.1_RetFail": {R@1, MRR, outcomes}, "1.2_AssocStr": {mean, scores},
"1.3_ACS": {acs_accuracy}, "1.4_IdZSC": {identity_classification_accuracy},
"1.5_CoreAssoc": {mean, scores}}, "utility": {"2.1_GenKnow": {ImageNet1k_Accuracy, accuracy,
source}, "2.2_InterIdSim": {mean}, "2.3_IntraIdSim": {mean}, "2.4_VisIdInt": {mean},
"2.5_FragSim": {mean}}, "meta": {...}}``

GenKnow: we never run ImageNet, so ``ImageNet1k_Accuracy`` is always -1 (the official "skipped"
value) and our synthetic zero-shot accuracy goes to ``accuracy`` with ``source: "synthetic"``;
without a GenKnow parquet ``accuracy`` is -1 and ``source`` is ``"skipped"``. ``flatten`` reads
``accuracy`` and falls back to ``ImageNet1k_Accuracy``, so official reference JSONs flatten too.
A NaN value means the split was empty.
"""

from __future__ import annotations

import math
from types import MappingProxyType

GENKNOW_SKIPPED = -1.0

# Flat column name -> path of keys into the evaluation JSON (table order).
METRIC_COLUMNS = MappingProxyType(
    {
        "RetFail_MRR": ("efficacy", "1.1_RetFail", "MRR"),
        "RetFail_R@1": ("efficacy", "1.1_RetFail", "R@1"),
        "AssocStr": ("efficacy", "1.2_AssocStr", "mean"),
        "ACS": ("efficacy", "1.3_ACS", "acs_accuracy"),
        "IdZSC": ("efficacy", "1.4_IdZSC", "identity_classification_accuracy"),
        "CoreAssoc": ("efficacy", "1.5_CoreAssoc", "mean"),
        "GenKnow": ("utility", "2.1_GenKnow", "accuracy"),
        "InterIdSim": ("utility", "2.2_InterIdSim", "mean"),
        "IntraIdSim": ("utility", "2.3_IntraIdSim", "mean"),
        "VisIdInt": ("utility", "2.4_VisIdInt", "mean"),
        "FragSim": ("utility", "2.5_FragSim", "mean"),
    }
)
# Where an official JSON keeps a value under another key.
_FALLBACK_KEYS = {("utility", "2.1_GenKnow", "accuracy"): "ImageNet1k_Accuracy"}


def genknow_entry(accuracy: float | None) -> dict:
    if accuracy is None:
        return {
            "ImageNet1k_Accuracy": GENKNOW_SKIPPED,
            "accuracy": GENKNOW_SKIPPED,
            "source": "skipped",
        }
    return {"ImageNet1k_Accuracy": GENKNOW_SKIPPED, "accuracy": accuracy, "source": "synthetic"}


def build_result(
    *,
    ret_fail: dict,
    assoc_str: dict,
    acs: dict,
    id_zsc: dict,
    core_assoc: dict,
    genknow: float | None,
    inter_id_sim: float,
    intra_id_sim: float,
    vis_id_int: float,
    frag_sim: float,
    meta: dict,
) -> dict:
    return {
        "efficacy": {
            "1.1_RetFail": ret_fail,
            "1.2_AssocStr": assoc_str,
            "1.3_ACS": acs,
            "1.4_IdZSC": id_zsc,
            "1.5_CoreAssoc": core_assoc,
        },
        "utility": {
            "2.1_GenKnow": genknow_entry(genknow),
            "2.2_InterIdSim": {"mean": inter_id_sim},
            "2.3_IntraIdSim": {"mean": intra_id_sim},
            "2.4_VisIdInt": {"mean": vis_id_int},
            "2.5_FragSim": {"mean": frag_sim},
        },
        "meta": meta,
    }


def _lookup(result: dict, path: tuple[str, ...]):
    node = result
    for depth, key in enumerate(path):
        if not isinstance(node, dict):
            break
        if key not in node and depth == len(path) - 1 and path in _FALLBACK_KEYS:
            key = _FALLBACK_KEYS[path]
        if key not in node:
            break
        node = node[key]
    else:
        return node
    raise ValueError(f"evaluation JSON has no {'/'.join(path)} (expected the official layout)")


def flatten(result: dict) -> dict[str, float]:
    """One float per ``METRIC_COLUMNS`` entry, in that order (NaN for null / empty-split values)."""
    out = {}
    for column, path in METRIC_COLUMNS.items():
        value = _lookup(result, path)
        if value is None:
            value = math.nan
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(  # noqa: TRY004
                f"evaluation JSON {'/'.join(path)}: expected a number, got {value!r}"
            )
        out[column] = float(value)
    return out
