"""``salmu table``: evaluation JSONs -> one row per model state, CI columns, diagnosis column."""

import math

import polars as pl
import pytest

from salmu.cli import main
from salmu.evaluate import layout
from salmu.io import write_json
from salmu.table import build_table, describe_state, to_markdown

from helpers import evaluation

# RetFail MRR, GenKnow, InterIdSim (= IntraIdSim) per state; the rest kept at Compromised's values.
STATES = {
    "unlearned/neg_grad/x5/seed0": (0.02, 0.20, -0.50),
    "compromised": (0.90, 0.60, 0.80),
    "unlearned/finetune/x1/seed0": (0.85, 0.60, 0.79),
    "clean": (0.02, 0.60, 0.20),
    "unlearned/finetune/x5/seed0": (0.03, 0.60, 0.70),
}


@pytest.fixture
def evals(tmp_path):
    paths = []
    for state, values in STATES.items():
        path = tmp_path / state.replace("/", "_") / "evaluation.json"
        # The clean JSON has no CIs (like an official reference JSON or --bootstrap 0).
        write_json(evaluation(state, *values, with_ci=state != "clean"), path)
        paths.append(str(path))
    return paths


def test_rows_columns_cis_and_diagnosis(evals):
    table = build_table(evals)
    assert table["state"].to_list() == [
        "clean",
        "compromised",
        "unlearned/finetune/x1/seed0",
        "unlearned/finetune/x5/seed0",
        "unlearned/neg_grad/x5/seed0",
    ]
    metric_columns = list(layout.METRIC_COLUMNS)
    assert table.columns[5 : 5 + len(metric_columns)] == metric_columns  # unchanged positions
    ci_columns = layout.ci_column_names()
    assert ci_columns[:2] == ["RetFail_MRR_ci_low", "RetFail_MRR_ci_high"]
    assert "ACS_ci_low" not in ci_columns and "GenKnow_ci_low" in ci_columns
    assert table.columns[5 + len(metric_columns) :] == [*ci_columns, "diagnosis", "lineage"]
    # Each row links to the provenance record of its checkpoint.
    assert table["lineage"][0] == "models/clean/.provenance/checkpoint.pt.json"
    row = table.row(2, named=True)
    assert row["RetFail_MRR_ci_low"] == pytest.approx(0.84)
    assert row["RetFail_MRR_ci_high"] == pytest.approx(0.86)
    clean = table.row(0, named=True)
    assert all(math.isnan(clean[c]) for c in ci_columns)  # no CIs in that JSON
    assert table["diagnosis"].to_list() == [
        "reference",
        "reference",
        "ineffective forgetting",  # 6% of the MRR gap closed
        "balanced",  # 98.9% closed, holdouts 0.70 (above Clean's 0.20), GenKnow kept
        "catastrophic damage",  # GenKnow 0.20 / 0.60 (and holdouts far below Clean)
    ]


def test_markdown_shows_the_diagnosis_and_its_numbers(evals):
    markdown = to_markdown(build_table(evals))
    header = markdown.splitlines()[0]
    assert header.startswith("| state | RetFail_MRR |") and header.endswith("| diagnosis |")
    assert "| unlearned/finetune/x5/seed0 | balanced | 0.9886 |" in markdown
    assert "catastrophic damage, over-generalised forgetting |" in markdown


def test_cli_writes_three_files_and_takes_thresholds(evals, tmp_path):
    prefix = tmp_path / "out" / "benchmark"
    assert main(["table", "--evals", *evals, "--out-prefix", str(prefix)]) == 0
    parquet = pl.read_parquet(prefix.with_suffix(".parquet"))
    csv = pl.read_csv(prefix.with_suffix(".csv"))
    assert parquet.columns == csv.columns and parquet["diagnosis"].to_list()[3] == "balanced"
    assert "| diagnosis |" in prefix.with_suffix(".md").read_text()
    # Demand 99% of the gap closed: finetune x5 (98.9%) becomes ineffective.
    args = ["table", "--evals", *evals, "--out-prefix", str(prefix), "--min-gap-closed", "0.99"]
    assert main(args) == 0
    assert pl.read_parquet(prefix.with_suffix(".parquet"))["diagnosis"].to_list()[3] == (
        "ineffective forgetting"
    )


def test_table_without_references_and_bad_input(tmp_path, capsys):
    path = tmp_path / "only.json"
    write_json(evaluation("unlearned/m/x1/seed0", 0.1, 0.5, 0.5), path)
    table = build_table([str(path)])
    assert table["diagnosis"].to_list() == [None]
    write_json(evaluation("unlearned/m/x1/seed0", 0.1, 0.5, 0.5) | {"utility": {}}, path)
    assert main(["table", "--evals", str(path), "--out-prefix", str(tmp_path / "t")]) == 2
    assert "only.json" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown model state"):
        describe_state("finetune")
