"""The evaluation JSON in the official layout (docs/protocol.md §2.1) and its flat metric columns.

``{"efficacy": {"1.1_RetFail": {R@1, MRR, outcomes}, "1.2_AssocStr": {mean, scores},
"1.3_ACS": {acs_accuracy}, "1.4_IdZSC": {identity_classification_accuracy},
"1.5_CoreAssoc": {mean, scores}}, "utility": {"2.1_GenKnow": {ImageNet1k_Accuracy, accuracy,
source, hits}, "2.2_InterIdSim": {mean}, "2.3_IntraIdSim": {mean}, "2.4_VisIdInt": {mean},
"2.5_FragSim": {mean}}, "meta": {...}}``

GenKnow: we never run ImageNet, so ``ImageNet1k_Accuracy`` is always -1 (the official "skipped"
value) and our synthetic zero-shot accuracy goes to ``accuracy`` with ``source: "synthetic"``;
without a GenKnow parquet ``accuracy`` is -1 and ``source`` is ``"skipped"``. ``flatten`` reads
``accuracy`` and falls back to ``ImageNet1k_Accuracy``, so official reference JSONs flatten too.
A NaN value means the split was empty.

Confidence intervals (optional, ``salmu evaluate --bootstrap``): every pair-level value gets a
sibling ``<key>_ci = [low, high]`` in the same sub-dict, e.g. ``"1.1_RetFail": {"MRR": x,
"MRR_ci": [lo, hi], "R@1": y, "R@1_ci": [...], ...}`` and ``"2.2_InterIdSim": {"mean": x,
"mean_ci": [lo, hi]}``; the official keys are untouched, so a reader of the official layout
ignores them. ``CI_COLUMNS`` lists the metrics that can carry one (ACS and IdZSC never do;
GenKnow's is a bootstrap over its images, ``"accuracy_ci"``). ``meta.bootstrap`` records how they were computed. ``flatten_ci`` gives the table columns
``<column>_ci_low`` / ``<column>_ci_high`` (NaN when a JSON has no CI, e.g. an official
reference JSON or ``--bootstrap 0``).
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
# Metrics with a bootstrap CI: the pair-level ones (a mean over rows that have an identity) and
# GenKnow (a mean of per-image hits).
CI_COLUMNS = tuple(c for c in METRIC_COLUMNS if c not in ("ACS", "IdZSC"))
CI_SUFFIX = "_ci"
# Where an official JSON keeps a value under another key.
_FALLBACK_KEYS = {("utility", "2.1_GenKnow", "accuracy"): "ImageNet1k_Accuracy"}


def genknow_entry(accuracy: float | None, hits=None) -> dict:
    """``hits``: 1/0 per GenKnow image (ours, not official), for paired comparisons between
    models (``salmu compare``), as ``outcomes`` and ``scores`` are for the pair-level metrics."""
    if accuracy is None:
        return {
            "ImageNet1k_Accuracy": GENKNOW_SKIPPED,
            "accuracy": GENKNOW_SKIPPED,
            "source": "skipped",
        }
    entry = {"ImageNet1k_Accuracy": GENKNOW_SKIPPED, "accuracy": accuracy, "source": "synthetic"}
    if hits is not None:
        entry["hits"] = [int(h) for h in hits]
    return entry


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
    cis: dict[str, list[float]] | None = None,
    bootstrap: dict | None = None,
    genknow_hits=None,
) -> dict:
    """The official layout; ``cis`` = ``{column in CI_COLUMNS: [low, high]}`` placed next to each
    value, ``bootstrap`` (the CI settings) goes to ``meta.bootstrap``."""
    result = {
        "efficacy": {  # copies: the CIs are added to these dicts, not to the caller's
            "1.1_RetFail": dict(ret_fail),
            "1.2_AssocStr": dict(assoc_str),
            "1.3_ACS": dict(acs),
            "1.4_IdZSC": dict(id_zsc),
            "1.5_CoreAssoc": dict(core_assoc),
        },
        "utility": {
            "2.1_GenKnow": genknow_entry(genknow, genknow_hits),
            "2.2_InterIdSim": {"mean": inter_id_sim},
            "2.3_IntraIdSim": {"mean": intra_id_sim},
            "2.4_VisIdInt": {"mean": vis_id_int},
            "2.5_FragSim": {"mean": frag_sim},
        },
        "meta": meta if bootstrap is None else {**meta, "bootstrap": bootstrap},
    }
    for column, interval in (cis or {}).items():
        if column not in CI_COLUMNS:
            raise ValueError(f"no confidence interval slot for {column!r}; expected {CI_COLUMNS}")
        *parents, key = METRIC_COLUMNS[column]
        node = result
        for parent in parents:
            node = node[parent]
        low, high = interval
        node[key + CI_SUFFIX] = [float(low), float(high)]
    return result


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


def ci_column_names() -> list[str]:
    """``<column>_ci_low``, ``<column>_ci_high`` for every ``CI_COLUMNS`` entry, in order."""
    return [f"{c}_ci_{end}" for c in CI_COLUMNS for end in ("low", "high")]


def flatten_ci(result: dict) -> dict[str, float]:
    """``<column>_ci_low`` / ``_ci_high`` per ``CI_COLUMNS`` entry; NaN where the JSON has none."""
    out = {}
    for column in CI_COLUMNS:
        *parents, key = METRIC_COLUMNS[column]
        node = _lookup(result, tuple(parents))
        interval = node.get(key + CI_SUFFIX) if isinstance(node, dict) else None
        if interval is None:
            interval = [math.nan, math.nan]
        if (
            not isinstance(interval, list)
            or len(interval) != 2
            or not all(
                v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                for v in interval
            )
        ):
            raise ValueError(
                f"evaluation JSON {'/'.join(parents)}/{key}{CI_SUFFIX}: expected [low, high], "
                f"got {interval!r}"
            )
        low, high = (math.nan if v is None else float(v) for v in interval)
        out[f"{column}_ci_low"], out[f"{column}_ci_high"] = low, high
    return out
