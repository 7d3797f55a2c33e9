"""Which rows go, and why: identity consistency, demographic agreement, minimum size."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

REASONS = ("identity", "gender", "age_band", "min_images")


@dataclass
class Demographic:
    """Zero-shot check of one attribute: per-row expected class, class names and text embeddings."""

    expected: list[str]
    classes: tuple[str, ...]
    embeddings: np.ndarray  # (len(classes), d), L2-normalised


@dataclass
class Decisions:
    similarity: np.ndarray  # cosine of each row to its person's reference image
    is_reference: np.ndarray  # bool per row
    reasons: list[list[str]]  # why each row is dropped (empty: kept)
    readings: dict[str, list[str]] = field(default_factory=dict)
    dropped_identities: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def keep(self) -> np.ndarray:
        return np.array([not r for r in self.reasons], dtype=bool)


def add_person(frame: pl.DataFrame, source: str = "faces") -> pl.DataFrame:
    """Add ``person``: the 8-digit number starting each file name (identity_id for personas)."""
    person = frame["file_name"].str.slice(0, 8)
    bad = [
        name
        for name, p in zip(frame["file_name"].to_list(), person.to_list())
        if p is None or len(p) != 8 or not p.isdigit()
    ]
    if bad:
        raise ValueError(f"{source}: file_name {bad[0]!r} does not start with an 8-digit number")
    frame = frame.with_columns(person.alias("person"))
    mismatch = frame.filter(
        pl.col("identity_id").is_not_null() & (pl.col("identity_id") != pl.col("person"))
    )
    if mismatch.height:
        row = mismatch.row(0, named=True)
        raise ValueError(
            f"{source}: {row['file_name']} has identity_id {row['identity_id']}, "
            "not the number its file name starts with"
        )
    return frame


def reference_rows(frame: pl.DataFrame, source: str = "faces") -> np.ndarray:
    """For each row, the row index of its person's reference image (see the module docstring).

    ``frame`` needs ``person``, ``identity_id``, ``kind`` and ``image_idx``.
    """
    persons = frame["person"].to_list()
    identity_ids = frame["identity_id"].to_list()
    kinds = frame["kind"].to_list()
    indices = frame["image_idx"].to_list()
    best: dict[str, tuple[int, int]] = {}  # person -> (image_idx, row)
    for row, (person, ident, kind, idx) in enumerate(zip(persons, identity_ids, kinds, indices)):
        if kind != ("sensitive" if ident is not None else "anonymous"):
            continue
        if person in best and best[person][0] == idx:
            raise ValueError(
                f"{source}: person {person} has two {kind} images with image_idx {idx}"
            )
        if person not in best or idx < best[person][0]:
            best[person] = (idx, row)
    missing = sorted(set(persons) - set(best))
    if missing:
        raise ValueError(
            f"{source}: identity {missing[0]} has no sensitive image to use as its reference "
            f"({len(missing)} such identities)"
        )
    return np.array([best[p][1] for p in persons], dtype=np.int64)


def demographic_readings(
    embeddings: np.ndarray, check: Demographic, margin: float
) -> tuple[list[str], np.ndarray]:
    """``(reading per row, disagreement mask)``: drop when another class beats the expected one
    by more than ``margin``."""
    unknown = sorted(set(check.expected) - set(check.classes))
    if unknown:
        raise ValueError(f"expected class {unknown[0]!r} not among {list(check.classes)}")
    if len(embeddings) == 0:
        return [], np.zeros(0, dtype=bool)
    scores = embeddings @ check.embeddings.T
    readings = [check.classes[k] for k in scores.argmax(1)]
    position = {name: k for k, name in enumerate(check.classes)}
    expected = np.array([position[e] for e in check.expected], dtype=np.int64)
    rows = np.arange(len(embeddings))
    expected_score = scores[rows, expected]
    others = scores.copy()
    others[rows, expected] = -np.inf
    return readings, others.max(1) - expected_score > margin


def decide(
    meta: pl.DataFrame,
    embeddings: np.ndarray,
    *,
    threshold: float,
    min_images: int,
    demographics: dict[str, Demographic] | None = None,
    margin: float = 0.0,
) -> Decisions:
    """Apply the three steps to rows ``meta`` (person, identity_id, kind, image_idx).

    ``embeddings`` are L2-normalised, one row per ``meta`` row.
    """
    decisions = check_rows(
        meta, embeddings, threshold=threshold, demographics=demographics, margin=margin
    )
    apply_min_images(meta, decisions, min_images)
    return decisions


def check_rows(
    meta: pl.DataFrame,
    embeddings: np.ndarray,
    *,
    threshold: float,
    demographics: dict[str, Demographic] | None = None,
    margin: float = 0.0,
) -> Decisions:
    """Steps 1 and 2, which look at each person's own rows only: a part of the table (whole
    people) is checked alone, and the checks of parts concatenate to those of the whole."""
    if len(embeddings) != meta.height:
        raise ValueError(f"{len(embeddings)} embeddings for {meta.height} rows")
    references = reference_rows(meta)
    similarity = (
        np.einsum("ij,ij->i", embeddings, embeddings[references]) if meta.height else np.zeros(0)
    )
    is_reference = references == np.arange(meta.height)
    reasons: list[list[str]] = [[] for _ in range(meta.height)]
    for row in np.flatnonzero((similarity < threshold) & ~is_reference):
        reasons[row].append("identity")

    readings: dict[str, list[str]] = {}
    for attribute, check in (demographics or {}).items():
        if len(check.expected) != meta.height:
            raise ValueError(
                f"{attribute}: {len(check.expected)} expected values for {meta.height} rows"
            )
        readings[attribute], disagree = demographic_readings(embeddings, check, margin)
        for row in np.flatnonzero(disagree):
            reasons[row].append(attribute)
    return Decisions(similarity, is_reference, reasons, readings)


def apply_min_images(meta: pl.DataFrame, decisions: Decisions, min_images: int) -> None:
    """Step 3, on the checked rows: drop the personas left with too few sensitive images."""
    identity_ids = meta["identity_id"].to_list()
    kinds = meta["kind"].to_list()
    reasons = decisions.reasons
    before: Counter[str] = Counter()
    left: Counter[str] = Counter()
    for ident, kind, why in zip(identity_ids, kinds, reasons):
        if ident is not None and kind == "sensitive":
            before[ident] += 1
            left[ident] += not why
    dropped = {
        ident: {
            "reason": "min_images",
            "sensitive_before": before[ident],
            "sensitive_left": left[ident],
        }
        for ident in sorted(before)
        if left[ident] < min_images
    }
    for row, ident in enumerate(identity_ids):
        if ident in dropped and not reasons[row]:
            reasons[row].append("min_images")
    decisions.dropped_identities = dropped
