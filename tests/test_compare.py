"""``salmu compare``: paired bootstrap over identities (RetFail) and images (GenKnow)."""

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from salmu import compare
from salmu.cli import main
from salmu.io import write_json, write_parquet

from helpers import evaluation

# 8 forget rows of 4 identities (2 rows each), 6 GenKnow images.
IDENTITIES = ["a", "a", "b", "b", "c", "c", "d", "d"]


def write_benchmark(root):
    table = pl.DataFrame({"identity_id": IDENTITIES, "text": ["t"] * len(IDENTITIES)})
    write_parquet(table, root / "data" / "forget-00000-of-00001.parquet")
    return str(root)


def write_eval(tmp_path, state, ranks, hits):
    mrr = float(np.mean(1 / np.asarray(ranks)))
    path = tmp_path / state.replace("/", "_") / "evaluation.json"
    write_json(evaluation(state, mrr, float(np.mean(hits)), 0.5, outcomes=ranks, hits=hits), path)
    return str(path)


def test_a_clear_difference_and_none(tmp_path):
    bench = write_benchmark(tmp_path / "bench")
    evals = [
        # "leaky" ranks every true caption first; "forgot" never.
        write_eval(tmp_path, "unlearned/leaky/x5/seed0", [1] * 8, [1, 1, 0, 1, 0, 1]),
        write_eval(tmp_path, "unlearned/forgot/x5/seed0", [50] * 8, [1, 1, 0, 1, 0, 1]),
        # Two seeds: per row their mean is scored, as one method.
        write_eval(tmp_path, "unlearned/forgot2/x5/seed0", [40] * 8, [1, 1, 0, 1, 0, 1]),
        write_eval(tmp_path, "unlearned/forgot2/x5/seed1", [60] * 8, [1, 1, 0, 1, 0, 1]),
        # Another budget is left out.
        write_eval(tmp_path, "unlearned/leaky/x1/seed0", [1] * 8, [0] * 6),
    ]
    prefix = tmp_path / "out" / "comparisons"
    args = ["compare", "--evals", *evals, "--benchmark", bench, "--budget", "5"]
    assert main([*args, "--out-prefix", str(prefix), "--comparison-resamples", "200"]) == 0
    found = json.loads(prefix.with_suffix(".json").read_text())
    assert found["methods"] == ["forgot", "forgot2", "leaky"]
    by_pair = {(c["a"], c["b"], c["metric"]): c for c in found["comparisons"]}
    leak = by_pair[("forgot", "leaky", "RetFail_MRR")]
    assert leak["difference"] == pytest.approx(1 / 50 - 1)
    assert leak["verdict"] == "A better" and leak["ci_high"] < 0
    assert by_pair[("forgot", "leaky", "GenKnow")]["verdict"] == "no difference"
    assert by_pair[("forgot", "forgot2", "RetFail_MRR")]["b_value"] == pytest.approx(
        (1 / 40 + 1 / 60) / 2
    )
    assert "| forgot | leaky | RetFail_MRR |" in prefix.with_suffix(".md").read_text()


def test_the_bootstrap_resamples_identities_not_rows():
    # A better than B on identity "a" only (both its rows): 1 identity of 4 carries the gap.
    a = np.array([0.0, 0.0, 1, 1, 1, 1, 1, 1])
    b = np.ones(8)
    clusters = {"RetFail_MRR": IDENTITIES}
    (found,) = compare.compare(
        {"A": {"RetFail_MRR": a}, "B": {"RetFail_MRR": b}}, clusters, 2000, 0.95, 0
    )
    # Resampling 4 identities, "a" is absent in (3/4)^4 = 32% of draws: the interval reaches 0.
    assert found.difference == pytest.approx(-0.25)
    assert found.ci_high == pytest.approx(0.0) and found.verdict == "no difference"


def test_bad_input_names_the_file(tmp_path, capsys):
    bench = write_benchmark(tmp_path / "bench")
    path = write_eval(tmp_path, "unlearned/x/x5/seed0", [1] * 8, [1] * 6)
    assert main(["compare", "--evals", path, "--benchmark", bench, "--budget", "5",
                 "--out-prefix", str(tmp_path / "c")]) == 2  # fmt: skip
    assert "1 method(s) at budget 5" in capsys.readouterr().err
    broken = json.loads(Path(path).read_text())
    del broken["efficacy"]["1.1_RetFail"]["outcomes"]
    write_json(broken, path)
    with pytest.raises(ValueError, match="seed0_evaluation.json|no outcomes"):
        compare.method_scores([path], 5)
