"""Failure-mode diagnosis of unlearned models: the paper's taxonomy (docs/protocol.md §5) from the results table.

Every number is relative to the two reference rows of the same table: **Clean** (C, never saw the
sensitive set: the forgetting target) and **Compromised** (P, the starting point of every method:
the utility target). For an unlearned model U and a metric m:

- ``gap_closed[m] = (P_m - U_m) / (P_m - C_m)``: where U sits on the Compromised (0) -> Clean (1)
  axis. For RetFail MRR this is the share of the excess retrieval that was removed (1: at Clean's
  level). For the holdout similarities InterIdSim / IntraIdSim (pairs of the Compromised training
  set that must be *kept*) 0 is ideal and > 1 means U went *below* Clean: it forgot identities it
  should have kept. Likewise for AssocStr on the forget set ("driving AssocStr below Clean's 0.142
  triggers over-generalisation", docs/protocol.md §5). NaN when ``P_m - C_m < min_reference_gap`` (the axis
  is undefined, e.g. a Compromised model that did not memorise the split; all four metrics are
  ones the Compromised model learned above Clean).
- ``holdout_vs_clean[m] = U_m - C_m`` for InterIdSim / IntraIdSim (raw, in similarity units).
- ``utility_retained[m] = U_m / P_m`` for GenKnow, VisIdInt and FragSim (1: kept at Compromised;
  GenKnow -1 = skipped and NaN values are left out). There is no Clean-relative axis here: Clean
  and Compromised differ by under 1% (GenKnow) to 10% (FragSim) on the released models.

Labels; every condition that holds is listed in ``flags``, the label is the first of them in this
order (most severe first), else "balanced":

1. ``catastrophic damage``: GenKnow retained < ``min_genknow_retained`` or VisIdInt / FragSim
   retained < ``min_similarity_retained``: general utility fell far below Compromised. A GenKnow
   drop counts only when it is also outside evaluation noise: U below the lower bound of
   Compromised's GenKnow confidence interval (``GenKnow_ci_low``, when the table has one). On
   ImageNet (50,000 images) that bound is ~0.4 points, far inside the 5 % cut; on a small
   synthetic set (the tiny tier: 256 images, +/- ~5 points) it keeps sampling noise from
   labelling every model catastrophic.
2. ``over-generalised forgetting``: ``gap_closed`` of InterIdSim, IntraIdSim or AssocStr
   > 1 + ``max_below_clean``: pushed clearly below Clean.
3. ``ineffective forgetting``: RetFail MRR ``gap_closed`` < ``min_gap_closed``.
4. ``balanced``: effective forgetting with utility kept (the paper's "utility-efficient deletion").
   ``undetermined`` instead when the RetFail axis itself is undefined (see above).

Reference rows (states ``clean`` / ``compromised``) get ``reference``; without both reference rows
in the table every unlearned row gets null (nothing to measure against).

Default thresholds, our choice (the paper gives none; each is a ``salmu table`` flag):

- ``min_gap_closed = 0.90``. The paper's bar for success is "over 99% leakage reduction"; every
  published method at the 5x budget closes >= 96% of the RetFail gap (Neg. Gradient 0.009 vs
  0.236 / 0.001: 96.6%; Finetuning 0.003: 99.1%), and an ineffective method leaves the association
  largely in place. 0.90 keeps a margin for evaluation noise on small benchmarks (Clean's own MRR
  is 0.015 on the tiny tier) while anything that leaves more than a tenth of the Compromised excess
  retrieval is not a deletion.
- ``min_genknow_retained = 0.95`` (a > 5% relative drop). Clean vs Compromised differ by 0.8%
  (0.633 vs 0.638) and "utility-efficient" means < 1% drop; Neg. Gradient (-1.3%), DELETE (-0.9%)
  and Direct Sim. Min. (-3.6%) stay above it, Shuffled Captions (0.548: -14.1%), which the paper
  lists under catastrophic collapse, falls below. 5% is ~6x the Clean <-> Compromised difference.
- ``min_similarity_retained = 0.75`` for VisIdInt / FragSim (non-sensitive retain pairs). Clean
  and Compromised differ by 8% / 10% here (0.331 / 0.305, 0.309 / 0.280); losing a quarter of the
  Compromised pair similarity (~3x that difference) means image-text alignment broke in general,
  not just on the targeted associations.
- ``max_below_clean = 0.25`` (in units of the Compromised - Clean gap). On the paper's table the
  InterIdSim cut is 0.143 - 0.25 * 0.178 = 0.099: Finetuning / VLUnlearn / Shuffled Captions
  (0.21, gap_closed 0.62) keep their holdouts; DELETE and CLIPErase (0.023 / 0.024: 1.67), Neg.
  Gradient (0.063: 1.45) and Direct Sim. Min. (-0.42: 4.2) are below it. The margin keeps a model
  that lands at Clean's level up to noise (gap_closed ~ 1: collateral forgetting, which the paper
  does not call over-generalisation) out of this class.
- ``min_reference_gap = 0.01``: below it a gap-normalised number is mostly noise.

Consequences on the published 5x table (docs/protocol.md §5; GenKnow, InterIdSim, IntraIdSim, RetFail only):
Finetuning, VLUnlearn -> balanced; DELETE, CLIPErase, Neg. Gradient, Direct Sim. Min. ->
over-generalised forgetting; Shuffled Captions -> catastrophic damage. The paper lists Direct Sim.
Min. under catastrophic collapse too; on the published columns it is flagged only by its holdout
similarities (GenKnow -3.6%), which is over-generalisation here. The paper names Neg. Gradient in
no failure mode, but its holdout similarity (0.063) is less than half of Clean's (0.143), which
is over-generalisation by the paper's own criterion.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import polars as pl

from salmu.sections.report import Thresholds

REFERENCE = "reference"
CATASTROPHIC = "catastrophic damage"
OVER_GENERALISED = "over-generalised forgetting"
INEFFECTIVE = "ineffective forgetting"
BALANCED = "balanced"
UNDETERMINED = "undetermined"
LABELS = (REFERENCE, CATASTROPHIC, OVER_GENERALISED, INEFFECTIVE, BALANCED, UNDETERMINED)
REFERENCE_STATES = ("clean", "compromised")

HOLDOUT_COLUMNS = ("InterIdSim", "IntraIdSim")
UTILITY_COLUMNS = ("GenKnow", "VisIdInt", "FragSim")


@dataclass(frozen=True)
class Diagnosis:
    label: str
    flags: tuple[str, ...] = ()
    forget_gap_closed: float = math.nan  # RetFail MRR
    assoc_gap_closed: float = math.nan  # AssocStr
    holdout_gap_closed: dict[str, float] = field(default_factory=dict)
    holdout_vs_clean: dict[str, float] = field(default_factory=dict)
    utility_retained: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _value(row: Mapping, column: str) -> float:
    value = row.get(column)
    if value is None or isinstance(value, bool):
        return math.nan
    value = float(value)
    if column == "GenKnow" and value < 0:  # -1: skipped (the official convention)
        return math.nan
    return value


def gap_closed(unlearned: float, clean: float, compromised: float, min_gap: float) -> float:
    """``(P - U) / (P - C)``; NaN when a value is missing or ``P - C < min_gap``: every metric put
    on this axis is one the Compromised model learned *above* Clean (it saw those pairs)."""
    gap = compromised - clean
    if any(math.isnan(v) for v in (unlearned, clean, compromised)) or gap < min_gap:
        return math.nan
    return (compromised - unlearned) / gap


def retained(unlearned: float, compromised: float) -> float:
    """``U / P``; NaN when a value is missing or P is not positive (no meaningful ratio)."""
    if math.isnan(unlearned) or math.isnan(compromised) or compromised <= 0:
        return math.nan
    return unlearned / compromised


def diagnose_row(
    row: Mapping,
    clean: Mapping,
    compromised: Mapping,
    thresholds: Thresholds | None = None,
) -> Diagnosis:
    """Diagnose one unlearned model (rows: column -> value, as ``iter_rows(named=True)``)."""
    t = thresholds or Thresholds()

    def gap(column: str) -> float:
        values = (_value(row, column), _value(clean, column), _value(compromised, column))
        return gap_closed(*values, t.min_reference_gap)

    forget = gap("RetFail_MRR")
    assoc = gap("AssocStr")
    holdout = {c: gap(c) for c in HOLDOUT_COLUMNS}
    vs_clean = {c: _value(row, c) - _value(clean, c) for c in HOLDOUT_COLUMNS}
    utility = {c: retained(_value(row, c), _value(compromised, c)) for c in UTILITY_COLUMNS}

    flags = []
    floors = {"GenKnow": t.min_genknow_retained}
    below_floor = {
        column
        for column, value in utility.items()
        if not math.isnan(value) and value < floors.get(column, t.min_similarity_retained)
    }
    noise_floor = _value(compromised, "GenKnow_ci_low")
    if "GenKnow" in below_floor and _value(row, "GenKnow") >= noise_floor:
        below_floor.discard("GenKnow")  # within the Compromised model's own evaluation noise
    if below_floor:
        flags.append(CATASTROPHIC)
    if any(g > 1 + t.max_below_clean for g in (*holdout.values(), assoc) if not math.isnan(g)):
        flags.append(OVER_GENERALISED)
    if not math.isnan(forget) and forget < t.min_gap_closed:
        flags.append(INEFFECTIVE)
    if flags:
        label = flags[0]
    else:
        label = UNDETERMINED if math.isnan(forget) else BALANCED
    return Diagnosis(label, tuple(flags), forget, assoc, holdout, vs_clean, utility)


def diagnose_table(
    table: pl.DataFrame, thresholds: Thresholds | None = None
) -> list[Diagnosis | None]:
    """One entry per row: ``Diagnosis(REFERENCE)`` for Clean / Compromised rows, a diagnosis for
    every other row, or None for all of them when a reference row is missing."""
    rows = list(table.iter_rows(named=True))
    references = {}
    for row in rows:
        if row["state"] in REFERENCE_STATES:
            references.setdefault(row["state"], row)  # the first one, if a table repeats it
    out: list[Diagnosis | None] = []
    for row in rows:
        if row["state"] in REFERENCE_STATES:
            out.append(Diagnosis(REFERENCE))
        elif len(references) < len(REFERENCE_STATES):
            out.append(None)
        else:
            out.append(
                diagnose_row(row, references["clean"], references["compromised"], thresholds)
            )
    return out


def diagnosis_labels(table: pl.DataFrame, thresholds: Thresholds | None = None) -> pl.Series:
    """The table's ``diagnosis`` column."""
    labels = [d.label if d else None for d in diagnose_table(table, thresholds)]
    return pl.Series("diagnosis", labels, dtype=pl.String)
