"""``salmu fidelity``: the paper's failure modes against ours, and the tier's targets, computed."""

import json
from pathlib import Path

import pytest

from salmu import diagnose, fidelity
from salmu.cli import main
from salmu.io import write_json, write_parquet
from salmu.table import build_table

from helpers import evaluation

# (RetFail MRR, GenKnow, holdout similarity) per method, on every seed unless a list is given.
# Clean 0.02 / Compromised 0.30: the holdout cut for over-generalisation is 0.20 - 0.25 * 0.60.
PATTERNS = {
    "finetune": (0.03, 0.60, 0.60),  # balanced, 96 % of the gap closed
    "vlunlearn": (0.03, 0.60, 0.55),  # balanced
    "neg_grad": (0.03, 0.59, -0.2),  # over-generalised
    "shuffled_captions": (0.03, 0.30, 0.60),  # catastrophic
    "direct_sim_min": (0.02, 0.58, -0.9),  # over-generalised: accepted for this one
    "generic_captions": (0.25, 0.60, 0.78),  # ineffective
    "delete": (0.02, 0.60, 0.0),  # over-generalised
    # Over-generalised on two seeds, catastrophic (holdouts kept) on the third: unsettled.
    "cliperase": [(0.02, 0.60, 0.0), (0.02, 0.60, 0.0), (0.02, 0.20, 0.60)],
}


def table_of(tmp_path, patterns, compromised=(0.30, 0.60, 0.80), seeds=3):
    paths = []
    states = {"clean": (0.02, 0.60, 0.20), "compromised": compromised}
    for method, values in patterns.items():
        for seed in range(seeds):
            states[f"unlearned/{method}/x5/seed{seed}"] = (
                values[seed] if isinstance(values, list) else values
            )
    for state, values in states.items():
        path = tmp_path / state.replace("/", "_") / "evaluation.json"
        write_json(evaluation(state, *values), path)
        paths.append(str(path))
    return build_table(paths), paths


def test_agreement_per_baseline_and_the_targets(tmp_path):
    table, _ = table_of(tmp_path, PATTERNS)
    found = fidelity.report(table, 5, genknow_classes=64)
    by_method = {b["method"]: b for b in found["baselines"]}
    assert by_method["direct_sim_min"]["ours"] == diagnose.OVER_GENERALISED
    assert by_method["direct_sim_min"]["agrees"]
    assert by_method["cliperase"]["agrees"] is False
    assert by_method["cliperase"]["seed_labels"][2] == diagnose.CATASTROPHIC
    assert found["agreeing"] == 7 and found["of"] == 8
    assert found["references"]["leak_ratio"]["ours"] == pytest.approx(15.0)
    assert found["references"]["leak_ratio"]["paper"] == pytest.approx(289.7, abs=0.1)
    holds = {c["name"]: c["holds"] for c in found["criteria"]}
    assert holds["Compromised RetFail MRR"] and holds["Compromised RetFail R@1"]
    assert holds["paper baselines with the paper's failure mode"]
    assert holds["seeds per diagnosis (fewest)"]
    # The test JSONs' GenKnow CI is +/- 0.01; 0.60 >= 10 / 64.
    assert holds["Compromised GenKnow"] and holds["Compromised GenKnow 95% half-width"]
    assert holds["Clean GenKnow 95% half-width"]
    balanced = next(c for c in found["criteria"] if c["name"].startswith("balanced"))
    assert balanced["value"] == "finetune, vlunlearn" and balanced["holds"]
    assert found["all_hold"]
    markdown = fidelity.to_markdown(found)
    assert "**7 of 8**" in markdown
    assert "| CLIPErase | over-generalisation | unsettled (seeds disagree) | no | 3 |" in markdown


def test_a_memorising_compromised_and_one_seed_fail_their_targets(tmp_path):
    table, _ = table_of(tmp_path, PATTERNS, compromised=(0.90, 0.60, 0.80), seeds=1)
    holds = {c["name"]: c for c in fidelity.report(table, 5, 64)["criteria"]}
    assert not holds["Compromised RetFail MRR"]["holds"]
    assert not holds["Compromised RetFail R@1"]["holds"]  # 0.45 > 0.4
    assert holds["seeds per diagnosis (fewest)"]["value"] == 1
    assert not holds["seeds per diagnosis (fewest)"]["holds"]
    # No GenKnow CI (an evaluation without --bootstrap): the half-width is unknown, not small.
    no_ci = table.with_columns(GenKnow_ci_low=float("nan"))
    holds = {c["name"]: c for c in fidelity.report(no_ci, 5, 64)["criteria"]}
    assert not holds["Clean GenKnow 95% half-width"]["holds"]
    # A baseline that did not run counts as not agreeing.
    found = fidelity.report(table.filter(~table["state"].str.contains("delete")), 5, 64)
    delete = next(b for b in found["baselines"] if b["method"] == "delete")
    assert delete["ran"] is False and found["baselines_ran"] == 7


def test_cli_writes_json_and_markdown(tmp_path):
    table, paths = table_of(tmp_path, PATTERNS)
    write_parquet(table, tmp_path / "benchmark.parquet")
    clean = json.loads(Path(paths[0]).read_text())
    clean["meta"]["genknow_classes"] = 64
    write_json(clean, tmp_path / "clean.json")
    prefix = tmp_path / "fidelity"
    args = ["fidelity", "--table", str(tmp_path / "benchmark.parquet")]
    args += ["--reference-eval", str(tmp_path / "clean.json"), "--budget", "5"]
    assert main([*args, "--out-prefix", str(prefix)]) == 0
    found = json.loads(prefix.with_suffix(".json").read_text())
    assert found["agreeing"] == 7
    assert "Fidelity to the paper at 5x" in prefix.with_suffix(".md").read_text()
    # Stricter diagnosis thresholds are the table's own flags.
    assert main([*args, "--out-prefix", str(prefix), "--min-gap-closed", "0.99"]) == 0
    assert json.loads(prefix.with_suffix(".json").read_text())["agreeing"] < 7
