"""The JSON report: counts, drops per reason, similarity distribution, every dropped image."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import polars as pl

from salmu.face_filter.decisions import REASONS, Decisions
from salmu.face_filter.inputs import DEMOGRAPHIC_CLASSES, KINDS


def _counts(meta: pl.DataFrame, keep: np.ndarray) -> dict[str, Any]:
    kept = meta.filter(pl.Series(keep))
    per_kind = Counter(kept["kind"].to_list())
    return {
        "images": kept.height,
        "images_per_kind": {k: per_kind.get(k, 0) for k in KINDS},
        "identities": kept["identity_id"].drop_nulls().n_unique(),
        "anonymous_people": kept.filter(pl.col("identity_id").is_null())["person"].n_unique(),
    }


def _summary(values: np.ndarray) -> dict[str, Any]:
    if len(values) == 0:
        return {"n": 0}
    qs = np.quantile(values, [0.0, 0.001, 0.01, 0.05, 0.5, 1.0])
    names = ("min", "p0.1", "p1", "p5", "median", "max")
    return {"n": int(len(values)), **{n: round(float(q), 6) for n, q in zip(names, qs)}}


def build_report(
    meta: pl.DataFrame,
    decisions: Decisions,
    settings: dict[str, Any],
    expected: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """The JSON report; ``expected`` holds the demographic classes each row should read as."""
    keep = decisions.keep
    kinds = meta["kind"].to_list()
    by_reason = Counter(r for why in decisions.reasons for r in why)
    non_reference = ~decisions.is_reference
    kind_array = np.array(kinds, dtype=object)
    similarity = {
        "all": _summary(decisions.similarity[non_reference]),
        **{k: _summary(decisions.similarity[non_reference & (kind_array == k)]) for k in KINDS},
    }
    confusion = {}
    for attribute, readings in decisions.readings.items():
        pairs = Counter(zip((expected or {})[attribute], readings))
        confusion[attribute] = {
            e: {r: pairs.get((e, r), 0) for r in DEMOGRAPHIC_CLASSES[attribute]}
            for e in DEMOGRAPHIC_CLASSES[attribute]
        }
    per_identity: dict[str, dict[str, int]] = {}
    for ident, kind, kept in zip(meta["identity_id"].to_list(), kinds, keep):
        if ident is None:
            continue
        entry = per_identity.setdefault(ident, {"sensitive": 0, "generic": 0})
        entry[kind] += int(kept)
    dropped_images = []
    for row in np.flatnonzero(~keep):
        item = {
            "file_name": meta["file_name"][int(row)],
            "reasons": decisions.reasons[row],
            "similarity": round(float(decisions.similarity[row]), 6),
        }
        for attribute, readings in decisions.readings.items():
            item[attribute] = readings[row]
        dropped_images.append(item)
    return {
        "settings": settings,
        "before": _counts(meta, np.ones(meta.height, dtype=bool)),
        "after": _counts(meta, keep),
        "dropped": {
            "images": int((~keep).sum()),
            "images_per_kind": {
                k: int(sum(1 for kind, kp in zip(kinds, keep) if kind == k and not kp))
                for k in KINDS
            },
            # An image failing several checks counts under each of them; ``min_images`` counts the
            # rows of dropped identities that no check had dropped.
            "by_reason": {r: by_reason.get(r, 0) for r in REASONS},
        },
        "dropped_identities": decisions.dropped_identities,
        "kept_per_identity": per_identity,
        "similarity_to_reference": similarity,
        "demographic_confusion": confusion,
        "dropped_images": dropped_images,
    }
