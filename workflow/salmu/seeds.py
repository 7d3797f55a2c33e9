"""Results over unlearning seeds: one row per method and budget, and a diagnosis the seeds share.

A single unlearning run is one draw: its batches come from one seed. At the tiny tier two seeds of
the same method can land on different sides of a diagnosis threshold, so a conclusion is drawn
from all of them:

- **Mean and seed interval.** Per metric the mean over seeds and a Student-t interval of that
  mean at ``level`` (``mean +/- t_{n-1} * sd / sqrt(n)``). With one seed the interval is NaN:
  one draw says nothing about the spread. This interval is about *which batches the method saw*;
  the evaluator's bootstrap CI (``<metric>_ci_low/high``) is about *which identities the
  benchmark holds*. Both are reported; neither includes the other.
- **Agreed diagnosis.** Each seed is diagnosed on its own (``salmu.diagnose``); a flag (a failure
  mode) holds for the method when at least ``agreement`` of its seeds raise it (default 1.0:
  every seed). The label is the most severe agreed flag; "balanced" when at least that share of
  the seeds is balanced; otherwise ``UNSETTLED``: the seeds disagree and no failure mode holds for all of them
  (the per-seed labels are listed in ``seed_labels``).

Reference rows (Clean, Compromised) have no seeds: they are copied with ``n_seeds`` null.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import polars as pl
from scipy import stats

from salmu import diagnose
from salmu.evaluate.layout import METRIC_COLUMNS
from salmu.sections.report import ReportSettings

UNSETTLED = "unsettled (seeds disagree)"
SEVERITY = (
    diagnose.CATASTROPHIC,
    diagnose.OVER_GENERALISED,
    diagnose.INEFFECTIVE,
)
DEFAULT_LEVEL = ReportSettings.default("seed_interval_level")
DEFAULT_AGREEMENT = ReportSettings.default("seed_agreement")


@dataclass(frozen=True)
class AgreedDiagnosis:
    label: str
    flags: tuple[str, ...]  # the failure modes at least `agreement` of the seeds raised
    seed_labels: tuple[str, ...]
    forget_gap_closed: float  # mean over seeds
    assoc_gap_closed: float
    holdout_gap_closed: float  # the larger of Inter/IntraIdSim, mean over seeds
    utility_retained: dict[str, float]  # mean over seeds


def seed_interval(values: list[float], level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """Student-t interval of the mean of ``values`` (NaN values dropped; NaN with < 2 left)."""
    kept = [v for v in values if not math.isnan(v)]
    if len(kept) < 2:
        return math.nan, math.nan
    mean = sum(kept) / len(kept)
    sd = math.sqrt(sum((v - mean) ** 2 for v in kept) / (len(kept) - 1))
    half = stats.t.ppf(0.5 + level / 2, len(kept) - 1) * sd / math.sqrt(len(kept))
    return mean - half, mean + half


def _mean(values) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def agree(diagnoses: list[diagnose.Diagnosis], agreement: float = DEFAULT_AGREEMENT):
    """The diagnosis a method's seeds share (see the module docstring)."""
    if not 0 < agreement <= 1:
        raise ValueError(f"seed agreement must be in (0, 1], got {agreement}")
    if not diagnoses:
        raise ValueError("no seed to agree on")
    n = len(diagnoses)
    counts = Counter(flag for d in diagnoses for flag in set(d.flags))
    agreed = tuple(f for f in SEVERITY if counts[f] >= agreement * n - 1e-9)
    labels = tuple(d.label for d in diagnoses)
    common, count = Counter(labels).most_common(1)[0]
    if agreed:
        label = agreed[0]
    elif count >= agreement * n - 1e-9:
        label = common  # balanced (or undetermined) on enough seeds
    else:
        label = UNSETTLED

    def worst_holdout(d: diagnose.Diagnosis) -> float:
        values = [g for g in d.holdout_gap_closed.values() if not math.isnan(g)]
        return max(values, default=math.nan)

    return AgreedDiagnosis(
        label=label,
        flags=agreed,
        seed_labels=labels,
        forget_gap_closed=_mean(d.forget_gap_closed for d in diagnoses),
        assoc_gap_closed=_mean(d.assoc_gap_closed for d in diagnoses),
        holdout_gap_closed=_mean(worst_holdout(d) for d in diagnoses),
        utility_retained={
            c: _mean(d.utility_retained.get(c, math.nan) for d in diagnoses)
            for c in diagnose.UTILITY_COLUMNS
        },
    )


def summarise(
    table: pl.DataFrame,
    thresholds: diagnose.Thresholds | None = None,
    level: float = DEFAULT_LEVEL,
    agreement: float = DEFAULT_AGREEMENT,
) -> tuple[pl.DataFrame, dict[str, AgreedDiagnosis]]:
    """The per-seed results table -> (one row per reference / method x budget, the agreed
    diagnosis per summary state). Summary state of an unlearned group: ``unlearned/<m>/x<b>``."""
    per_seed = dict(zip(table["state"], diagnose.diagnose_table(table, thresholds), strict=True))
    rows, agreed = [], {}
    unlearned = table.filter(pl.col("seed").is_not_null())
    for row in table.filter(pl.col("seed").is_null()).iter_rows(named=True):
        rows.append(
            {"state": row["state"], "method": row["method"], "budget": row["budget"]}
            | {"n_seeds": None, "seeds": None}
            | {c: row[c] for c in METRIC_COLUMNS}
            | {f"{c}_seed_low": math.nan for c in METRIC_COLUMNS}
            | {f"{c}_seed_high": math.nan for c in METRIC_COLUMNS}
            | {"diagnosis": row.get("diagnosis"), "seed_labels": None}
        )
    groups = unlearned.group_by(["method", "budget"], maintain_order=True)
    for (method, budget), group in groups:
        state = group["state"][0].rsplit("/seed", 1)[0]
        found = [per_seed[s] for s in group["state"]]
        shared = None if any(d is None for d in found) else agree(found, agreement)
        if shared is not None:
            agreed[state] = shared
        row = {"state": state, "method": method, "budget": budget}
        row |= {"n_seeds": group.height, "seeds": ",".join(map(str, group["seed"]))}
        for column in METRIC_COLUMNS:
            values = [math.nan if v is None else float(v) for v in group[column]]
            row[column] = _mean(values)
            row[f"{column}_seed_low"], row[f"{column}_seed_high"] = seed_interval(values, level)
        row["diagnosis"] = None if shared is None else shared.label
        row["seed_labels"] = None if shared is None else ", ".join(shared.seed_labels)
        rows.append(row)
    schema = (
        {"state": pl.String, "method": pl.String, "budget": pl.Float64}
        | {"n_seeds": pl.Int64, "seeds": pl.String}
        | {c: pl.Float64 for c in METRIC_COLUMNS}
        | {f"{c}_seed_low": pl.Float64 for c in METRIC_COLUMNS}
        | {f"{c}_seed_high": pl.Float64 for c in METRIC_COLUMNS}
        | {"diagnosis": pl.String, "seed_labels": pl.String}
    )
    columns = list(schema)
    ordered = [{c: r[c] for c in columns} for r in rows]
    return pl.DataFrame(ordered, schema=schema), agreed
