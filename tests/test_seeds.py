"""Seeds carry the conclusion: mean, Student-t seed interval, and the diagnosis all seeds share."""

import math

import pytest

from salmu import diagnose, seeds
from salmu.io import write_json
from salmu.table import build_table, to_markdown

from helpers import evaluation

REFERENCES = {"clean": (0.02, 0.60, 0.20), "compromised": (0.90, 0.60, 0.80)}


def table_of(tmp_path, states: dict):
    paths = []
    for state, values in (REFERENCES | states).items():
        path = tmp_path / state.replace("/", "_") / "evaluation.json"
        write_json(evaluation(state, *values), path)
        paths.append(str(path))
    return build_table(paths)


def test_mean_and_student_t_interval_over_seeds(tmp_path):
    table = table_of(
        tmp_path,
        {f"unlearned/ft/x5/seed{s}": (mrr, 0.60, 0.70) for s, mrr in enumerate((0.02, 0.03, 0.04))},
    )
    summary, agreed = seeds.summarise(table)
    row = summary.filter(summary["state"] == "unlearned/ft/x5").row(0, named=True)
    assert row["n_seeds"] == 3 and row["seeds"] == "0,1,2"
    assert row["RetFail_MRR"] == pytest.approx(0.03)
    # sd 0.01, t(0.975, 2) = 4.303: half-width 0.01 * 4.303 / sqrt(3) = 0.02484
    assert row["RetFail_MRR_seed_high"] - 0.03 == pytest.approx(0.024843, abs=1e-5)
    assert row["RetFail_MRR_seed_low"] == pytest.approx(0.03 - 0.024843, abs=1e-5)
    assert row["GenKnow_seed_low"] == pytest.approx(0.60)  # identical seeds: zero width
    assert agreed["unlearned/ft/x5"].label == diagnose.BALANCED
    # Reference rows are copied, without seeds.
    assert summary["state"].to_list()[:2] == ["clean", "compromised"]
    assert summary["n_seeds"].to_list()[:2] == [None, None]


def test_one_seed_has_no_interval():
    assert all(math.isnan(v) for v in seeds.seed_interval([0.5]))
    assert all(math.isnan(v) for v in seeds.seed_interval([0.5, math.nan]))


def test_a_failure_mode_holds_only_when_every_seed_raises_it(tmp_path):
    table = table_of(
        tmp_path,
        {
            # GenKnow 0.20 of 0.60 on two seeds (catastrophic), kept on the third; holdouts far
            # below Clean on all three (over-generalised).
            "unlearned/ng/x5/seed0": (0.02, 0.20, -0.5),
            "unlearned/ng/x5/seed1": (0.02, 0.20, -0.5),
            "unlearned/ng/x5/seed2": (0.02, 0.60, -0.5),
            # Balanced on two seeds, ineffective on one: no failure mode holds for all.
            "unlearned/ft/x5/seed0": (0.03, 0.60, 0.7),
            "unlearned/ft/x5/seed1": (0.03, 0.60, 0.7),
            "unlearned/ft/x5/seed2": (0.50, 0.60, 0.7),
        },
    )
    summary, agreed = seeds.summarise(table)
    ng, ft = agreed["unlearned/ng/x5"], agreed["unlearned/ft/x5"]
    assert ng.label == diagnose.OVER_GENERALISED and ng.flags == (diagnose.OVER_GENERALISED,)
    assert ng.seed_labels == (
        diagnose.CATASTROPHIC,
        diagnose.CATASTROPHIC,
        diagnose.OVER_GENERALISED,
    )
    assert ft.label == seeds.UNSETTLED
    assert ft.forget_gap_closed == pytest.approx((0.87 / 0.88 * 2 + 0.40 / 0.88) / 3)
    # A two-thirds majority is enough when asked for.
    _, majority = seeds.summarise(table, agreement=2 / 3)
    assert majority["unlearned/ng/x5"].label == diagnose.CATASTROPHIC
    assert majority["unlearned/ft/x5"].label == diagnose.BALANCED
    markdown = to_markdown(table, summary=summary)
    assert markdown.startswith("Mean over unlearning seeds")
    assert f"| {seeds.UNSETTLED} | balanced, balanced, ineffective forgetting |" in markdown
    with pytest.raises(ValueError, match="seed agreement"):
        seeds.summarise(table, agreement=0)
