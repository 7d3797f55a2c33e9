"""Failure-mode diagnosis on hand-built tables whose right label is known by construction."""

import math

import polars as pl
import pytest

from salmu import diagnose
from salmu.diagnose import (
    BALANCED,
    CATASTROPHIC,
    INEFFECTIVE,
    OVER_GENERALISED,
    REFERENCE,
    UNDETERMINED,
    Thresholds,
)
from salmu.evaluate.layout import METRIC_COLUMNS

NAN = math.nan


def table(rows: dict[str, dict]) -> pl.DataFrame:
    """``{state: {column: value}}`` -> a results-table-shaped frame (missing metrics NaN)."""
    records = [
        {"state": state, **{c: float(values.get(c, NAN)) for c in METRIC_COLUMNS}}
        for state, values in rows.items()
    ]
    return pl.DataFrame(
        records, schema={"state": pl.String} | dict.fromkeys(METRIC_COLUMNS, pl.Float64)
    )


def labels(frame: pl.DataFrame, thresholds: Thresholds | None = None) -> dict[str, str | None]:
    return dict(zip(frame["state"], diagnose.diagnosis_labels(frame, thresholds), strict=True))


def paper_row(mrr, genknow, inter, intra):
    return {"RetFail_MRR": mrr, "GenKnow": genknow, "InterIdSim": inter, "IntraIdSim": intra}


# The published 5x-budget table (docs/protocol.md §5): RetFail MRR, GenKnow, InterIdSim, IntraIdSim; AssocStr
# of the two references from the official evaluator run on the released models.
PAPER = {
    "clean": paper_row(0.001, 0.633, 0.143, 0.143) | {"AssocStr": 0.1417},
    "compromised": paper_row(0.236, 0.638, 0.321, 0.321) | {"AssocStr": 0.3215},
    "unlearned/clip_erase/x5/seed0": paper_row(0.001, 0.634, 0.024, 0.024),
    "unlearned/delete/x5/seed0": paper_row(0.001, 0.632, 0.023, 0.023),
    "unlearned/vlunlearn/x5/seed0": paper_row(0.001, 0.638, 0.210, 0.210),
    "unlearned/finetune/x5/seed0": paper_row(0.003, 0.638, 0.209, 0.209),
    "unlearned/neg_grad/x5/seed0": paper_row(0.009, 0.630, 0.063, 0.061),
    "unlearned/shuffled_captions/x5/seed0": paper_row(0.004, 0.548, 0.212, 0.212),
    "unlearned/direct_sim_min/x5/seed0": paper_row(0.001, 0.615, -0.420, -0.425),
}


def test_the_papers_table():
    got = labels(table(PAPER))
    assert got == {
        "clean": REFERENCE,
        "compromised": REFERENCE,
        # DELETE / CLIPErase reach "utility-efficient deletion" by over-generalising (docs/protocol.md §5).
        "unlearned/clip_erase/x5/seed0": OVER_GENERALISED,
        "unlearned/delete/x5/seed0": OVER_GENERALISED,
        "unlearned/vlunlearn/x5/seed0": BALANCED,
        "unlearned/finetune/x5/seed0": BALANCED,  # 0.003 vs 0.236, holdouts kept at 0.209
        "unlearned/neg_grad/x5/seed0": OVER_GENERALISED,  # holdouts 0.063 < half of Clean's
        "unlearned/shuffled_captions/x5/seed0": CATASTROPHIC,  # GenKnow 0.548 vs 0.638
        "unlearned/direct_sim_min/x5/seed0": OVER_GENERALISED,  # holdouts at -0.42
    }


def test_the_numbers_behind_the_label():
    frame = table(PAPER)
    rows = {r["state"]: r for r in frame.iter_rows(named=True)}
    ft = diagnose.diagnose_row(
        rows["unlearned/finetune/x5/seed0"], rows["clean"], rows["compromised"]
    )
    assert ft.forget_gap_closed == pytest.approx((0.236 - 0.003) / (0.236 - 0.001))
    assert ft.holdout_gap_closed["InterIdSim"] == pytest.approx((0.321 - 0.209) / 0.178)
    assert ft.holdout_vs_clean["IntraIdSim"] == pytest.approx(0.209 - 0.143)
    assert ft.utility_retained["GenKnow"] == pytest.approx(1.0)
    assert math.isnan(ft.utility_retained["VisIdInt"]) and math.isnan(ft.assoc_gap_closed)
    assert ft.flags == ()
    shuffled = diagnose.diagnose_row(
        rows["unlearned/shuffled_captions/x5/seed0"], rows["clean"], rows["compromised"]
    )
    assert shuffled.utility_retained["GenKnow"] == pytest.approx(0.548 / 0.638)
    dsm = diagnose.diagnose_row(
        rows["unlearned/direct_sim_min/x5/seed0"], rows["clean"], rows["compromised"]
    )
    assert dsm.holdout_gap_closed["IntraIdSim"] == pytest.approx((0.321 + 0.425) / 0.178)
    assert dsm.as_dict()["label"] == OVER_GENERALISED


REFS = {
    "clean": {
        "RetFail_MRR": 0.01,
        "AssocStr": 0.15,
        "GenKnow": 0.60,
        "InterIdSim": 0.15,
        "IntraIdSim": 0.15,
        "VisIdInt": 0.33,
        "FragSim": 0.31,
    },
    "compromised": {
        "RetFail_MRR": 0.51,
        "AssocStr": 0.35,
        "GenKnow": 0.60,
        "InterIdSim": 0.35,
        "IntraIdSim": 0.35,
        "VisIdInt": 0.30,
        "FragSim": 0.30,
    },
}
KEPT = {"GenKnow": 0.60, "InterIdSim": 0.30, "IntraIdSim": 0.30, "VisIdInt": 0.30, "FragSim": 0.30}


@pytest.mark.parametrize(
    ("model", "label"),
    [
        # Forgot (MRR at Clean, AssocStr between), kept everything else.
        (KEPT | {"RetFail_MRR": 0.01, "AssocStr": 0.2}, BALANCED),
        # Closed 85% of the 0.50 gap: below the 90% bar.
        (KEPT | {"RetFail_MRR": 0.085, "AssocStr": 0.2}, INEFFECTIVE),
        (KEPT | {"RetFail_MRR": 0.075, "AssocStr": 0.2}, INEFFECTIVE),  # 87%
        (KEPT | {"RetFail_MRR": 0.055, "AssocStr": 0.2}, BALANCED),  # 91%
        # Did nothing at all.
        (REFS["compromised"], INEFFECTIVE),
        # Holdouts pushed 0.06 below Clean = 30% of the 0.20 gap (> 25%).
        (KEPT | {"RetFail_MRR": 0.01, "InterIdSim": 0.09}, OVER_GENERALISED),
        (KEPT | {"RetFail_MRR": 0.01, "IntraIdSim": 0.11}, BALANCED),  # 20% below: within margin
        # AssocStr driven below Clean by 40% of its gap.
        (KEPT | {"RetFail_MRR": 0.01, "AssocStr": 0.07}, OVER_GENERALISED),
        # GenKnow 0.56 / 0.60 = 93% < 95%; retain pairs 0.21 / 0.30 = 70% < 75%.
        (KEPT | {"RetFail_MRR": 0.01, "GenKnow": 0.56}, CATASTROPHIC),
        (KEPT | {"RetFail_MRR": 0.01, "FragSim": 0.21}, CATASTROPHIC),
        (KEPT | {"RetFail_MRR": 0.01, "VisIdInt": 0.24}, BALANCED),  # 80%
        # Everything destroyed: damage outranks over-generalisation and non-forgetting.
        (
            {"RetFail_MRR": 0.3, "GenKnow": 0.1, "InterIdSim": -0.5, "VisIdInt": -0.4},
            CATASTROPHIC,
        ),
    ],
)
def test_labels_by_construction(model, label):
    frame = table(REFS | {"unlearned/m/x1/seed0": model})
    assert labels(frame)["unlearned/m/x1/seed0"] == label


def test_flags_list_every_failure():
    frame = table(
        REFS | {"unlearned/m/x1/seed0": {"RetFail_MRR": 0.3, "GenKnow": 0.1, "InterIdSim": -0.5}}
    )
    (found,) = [d for d in diagnose.diagnose_table(frame) if d.label != REFERENCE]
    assert found.flags == (CATASTROPHIC, OVER_GENERALISED, INEFFECTIVE)


def test_thresholds_are_configurable():
    frame = table(PAPER)
    # The paper's "over 99% leakage reduction" as the forgetting bar, and a laxer GenKnow floor
    # that forgives Shuffled Captions' damage: its residual leak (98.7% closed) is what remains.
    strict = labels(frame, Thresholds(min_gap_closed=0.99, min_genknow_retained=0.8))
    assert strict["unlearned/finetune/x5/seed0"] == BALANCED  # 99.1%
    assert strict["unlearned/shuffled_captions/x5/seed0"] == INEFFECTIVE  # 98.7%
    # No margin below Clean: still only the methods that went below it.
    lax = labels(frame, Thresholds(max_below_clean=0.0))
    assert lax["unlearned/vlunlearn/x5/seed0"] == BALANCED
    with pytest.raises(ValueError, match="min_gap_closed"):
        Thresholds(min_gap_closed=-1)


def test_missing_references_and_values():
    # No Clean row: nothing to measure against.
    frame = table({"compromised": REFS["compromised"], "unlearned/m/x1/seed0": KEPT})
    assert labels(frame) == {"compromised": REFERENCE, "unlearned/m/x1/seed0": None}
    # GenKnow skipped (-1) everywhere: judged on the other utility metrics only.
    skipped = {k: v | {"GenKnow": -1.0} for k, v in REFS.items()}
    frame = table(skipped | {"unlearned/m/x1/seed0": KEPT | {"RetFail_MRR": 0.01, "GenKnow": -1}})
    found = diagnose.diagnose_table(frame)[-1]
    assert found.label == BALANCED and math.isnan(found.utility_retained["GenKnow"])
    # A Compromised model that never memorised (RetFail at Clean): forgetting is undefined.
    flat = {k: v | {"RetFail_MRR": 0.01} for k, v in REFS.items()}
    frame = table(flat | {"unlearned/m/x1/seed0": KEPT | {"RetFail_MRR": 0.01}})
    assert labels(frame)["unlearned/m/x1/seed0"] == UNDETERMINED
    # Holdouts that Compromised holds *below* Clean: no below-Clean axis, no over-generalisation.
    odd = REFS | {"compromised": REFS["compromised"] | {"InterIdSim": 0.10, "IntraIdSim": 0.10}}
    frame = table(odd | {"unlearned/m/x1/seed0": KEPT | {"RetFail_MRR": 0.01, "InterIdSim": 0.5}})
    found = diagnose.diagnose_table(frame)[-1]
    assert found.label == BALANCED and math.isnan(found.holdout_gap_closed["InterIdSim"])


# The tiny tier's table (results/tiny/benchmark.md, seed 0), as a regression of the defaults.
TINY = {
    "clean": (0.0151, 0.1661, 0.1797, 0.1840, 0.1896, 0.8812, 0.8759),
    "compromised": (0.9038, 0.8894, 0.1562, 0.8859, 0.8878, 0.8734, 0.8788),
    "unlearned/finetune/x1/seed0": (0.8990, 0.8863, 0.1641, 0.8828, 0.8842, 0.8714, 0.8783),
    "unlearned/finetune/x5/seed0": (0.8804, 0.8798, 0.1836, 0.8765, 0.8801, 0.8633, 0.8757),
    "unlearned/neg_grad/x1/seed0": (0.4710, 0.6493, 0.1836, 0.6416, 0.6624, 0.6521, 0.6381),
    "unlearned/neg_grad/x5/seed0": (0.0423, -0.6133, 0.0625, -0.7461, -0.5425, -0.5383, -0.7553),
}
TINY_COLUMNS = (
    "RetFail_MRR",
    "AssocStr",
    "GenKnow",
    "InterIdSim",
    "IntraIdSim",
    "VisIdInt",
    "FragSim",
)


def test_the_tiny_tier():
    frame = table({s: dict(zip(TINY_COLUMNS, v, strict=True)) for s, v in TINY.items()})
    assert labels(frame) == {
        "clean": REFERENCE,
        "compromised": REFERENCE,
        "unlearned/finetune/x1/seed0": INEFFECTIVE,  # 0.5% of the gap closed
        "unlearned/finetune/x5/seed0": INEFFECTIVE,  # 2.6%
        "unlearned/neg_grad/x1/seed0": CATASTROPHIC,  # retain pairs at 75% / 73%, and 49% closed
        "unlearned/neg_grad/x5/seed0": CATASTROPHIC,  # everything negative, GenKnow 40%
    }


def test_a_genknow_drop_inside_compromised_noise_is_not_damage():
    """Tiny-tier case: 256 GenKnow images, Compromised 0.215 with CI [0.164, 0.266]. A model at
    0.180 is 16 % lower (below the 5 % cut) but inside that interval: not damage. At 0.120 it is
    outside: damage. Without a CI in the table the 5 % cut alone decides, as before."""
    references = {
        "clean": {"RetFail_MRR": 0.02, "GenKnow": 0.17},
        "compromised": {"RetFail_MRR": 0.90, "GenKnow": 0.215},
    }

    def label(genknow, ci_low):
        frame = table(references | {"u": {"RetFail_MRR": 0.02, "GenKnow": genknow}})
        frame = frame.with_columns(
            pl.Series("GenKnow_ci_low", [NAN, ci_low, NAN], dtype=pl.Float64)
        )
        return labels(frame)["u"]

    assert label(0.180, 0.164) == BALANCED
    assert label(0.120, 0.164) == CATASTROPHIC
    assert label(0.180, NAN) == CATASTROPHIC
