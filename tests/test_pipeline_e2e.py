"""The whole tiny tier through real Snakemake, once: the benchmark must be scientifically alive.

Slow (minutes): marked e2e; the suite runs it once, in CI too.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time

import polars as pl
import pytest

from salmu import seeds
from salmu.attacks import table as attack_table
from salmu.io import read_json
from salmu.plan import estimated_sizes, load_config
from salmu.unlearn.registry import builtin_methods

from helpers import ROOT, job_counts, put_in_hub_cache, snakemake

pytestmark = pytest.mark.e2e
RUN = "pytest-e2e"
RESULTS = ROOT / "results" / RUN
SENSITIVE = ("forget", "holdout_association", "holdout_identity")
CONFIG = ("--config", f"run={RUN}")
EFFICACY_WITH_CI = ("RetFail_MRR", "AssocStr", "CoreAssoc")
# The run's unlearning fan-out, from the config it runs with.
# The run is the default config as it is (the tier `make run` runs): the targets are about it.
SETTINGS = load_config(ROOT, [])
SEEDS = SETTINGS["unlearn"]["seeds"]
BUDGETS = SETTINGS["unlearn"]["budgets"]
ATTACK_SEEDS = [s for s in SETTINGS["attacks"]["seeds"] if s in SEEDS]
MAIN = SETTINGS["report"]["main_budget"]
FAN_OUT = len(builtin_methods()) * len(BUDGETS) * len(SEEDS)


@pytest.fixture(scope="module")
def tiny_run():
    shutil.rmtree(RESULTS, ignore_errors=True)
    start = time.time()
    snakemake("--cores", "2", *CONFIG)
    print(f"tiny tier end to end: {time.time() - start:.0f} s")
    return pl.read_parquet(RESULTS / "benchmark.parquet")


def metric(table, state, column):
    return table.filter(pl.col("state") == state)[column].item()


def test_table_has_a_row_per_model_state(tiny_run):
    states = tiny_run["state"].to_list()
    assert states[:2] == ["clean", "compromised"]
    assert sorted(states[2:]) == sorted(
        f"unlearned/{m}/x{b:g}/seed{s}" for m in builtin_methods() for b in BUDGETS for s in SEEDS
    )
    for suffix in (".csv", ".md"):
        assert (RESULTS / f"benchmark{suffix}").stat().st_size > 0
    # ...and the summary over seeds: one row per method and budget.
    summary = pl.read_parquet(RESULTS / "benchmark_summary.parquet")
    assert summary.height == 2 + len(builtin_methods()) * len(BUDGETS)
    assert set(summary["n_seeds"].drop_nulls()) == {len(SEEDS)}


def test_compromised_leaks_and_clean_does_not(tiny_run):
    clean = metric(tiny_run, "clean", "RetFail_MRR")
    compromised = metric(tiny_run, "compromised", "RetFail_MRR")
    print(f"RetFail MRR clean {clean:.4f} compromised {compromised:.4f}")
    assert compromised >= 5 * clean


def test_unlearning_halves_the_leak(tiny_run):
    compromised = metric(tiny_run, "compromised", "RetFail_MRR")
    unlearned = tiny_run.filter(pl.col("state").str.starts_with("unlearned/"))
    assert unlearned["RetFail_MRR"].min() <= 0.5 * compromised


@pytest.mark.parametrize("method", builtin_methods())
def test_every_method_moves_an_efficacy_metric_toward_clean(tiny_run, method):
    """At 5x, some forgetting-efficacy metric falls below the lower bound of Compromised's 95 %
    confidence interval: a move toward Clean beyond evaluation noise."""
    state = f"unlearned/{method}/x5/seed0"
    moved = {
        column: metric(tiny_run, state, column)
        for column in EFFICACY_WITH_CI
        if metric(tiny_run, state, column) < metric(tiny_run, "compromised", f"{column}_ci_low")
    }
    print(method, moved)
    assert moved


def test_adding_a_method_or_a_budget_adds_only_its_jobs(tiny_run, tmp_path):
    """A new method (a custom import path) and a new budget plan only their own unlearn and
    evaluate jobs, plus the table and plots that collect them."""
    import yaml

    mine = {"lr": 0.001, "import_path": "salmu.unlearn.methods.neg_grad:NegativeGradient"}
    extra = tmp_path / "more.yaml"
    budgets = {"budgets": [*BUDGETS, 1], "methods": {"mine": mine}}
    extra.write_text(yaml.safe_dump({"unlearn": budgets}))
    result = snakemake("-n", "--quiet", "rules", "--configfile", str(extra), *CONFIG)
    counts = job_counts(result.stdout)
    methods = len(builtin_methods()) + 1
    # x1 for every method, the run's budgets for the new one, every seed; the run's config record
    # changes, the dataset's not; the main-budget reports gain a method.
    expected = (methods + len(BUDGETS)) * len(SEEDS)
    assert counts["unlearn"] == expected and counts["evaluate"] == expected
    assert counts["resolved_config"] == 1 and "card" not in counts
    # The new method's model at the main budget is attacked too (attacks.seeds).
    assert counts["attack"] == len(ATTACK_SEEDS)
    assert set(counts) == {
        *("unlearn", "evaluate", "table", "plots", "resolved_config"),
        *("fidelity", "compare", "vs_paper", "provenance_summary", "all", "total"),
        *("attack", "attack_table"),
    }


def test_retraining_compromised_reruns_only_what_depends_on_it(tiny_run):
    """README: `--forcerun <compromised checkpoint>` retrains it and redoes every unlearning and
    every evaluation but Clean's; nothing upstream (data, shards, Clean) runs."""
    compromised = f"results/{RUN}/models/compromised/checkpoint.pt"
    result = snakemake("-n", "--quiet", "rules", "--forcerun", compromised, *CONFIG)
    counts = job_counts(result.stdout)
    assert counts["train"] == 1 and counts["unlearn"] == FAN_OUT
    assert counts["evaluate"] == FAN_OUT + 1
    # Every attacked model but Clean is attacked again.
    assert counts["attack"] == 1 + len(builtin_methods()) * len(ATTACK_SEEDS)
    assert set(counts) == {
        *("train", "unlearn", "evaluate", "table", "plots", "provenance_summary"),
        *("fidelity", "compare", "vs_paper", "all", "total", "attack", "attack_table"),
    }


def test_a_metric_change_reevaluates_without_retraining(tiny_run, tmp_path):
    """README: changing an evaluate.* setting reruns the evaluations (embedding caches reused), the
    table and plots, never a training or an unlearning."""
    extra = tmp_path / "metric.yaml"
    extra.write_text("evaluate:\n  bootstrap: 200\n")
    result = snakemake("-n", "--quiet", "rules", "--configfile", str(extra), *CONFIG)
    counts = job_counts(result.stdout)
    assert counts["evaluate"] == FAN_OUT + 2
    assert set(counts) == {
        *("evaluate", "table", "plots", "resolved_config", "provenance_summary"),
        *("fidelity", "compare", "vs_paper", "all", "total"),
    }


def test_official_json_layout(tiny_run):
    result = read_json(RESULTS / "eval" / "compromised" / "evaluation.json")
    assert set(result["efficacy"]) == {
        "1.1_RetFail",
        "1.2_AssocStr",
        "1.3_ACS",
        "1.4_IdZSC",
        "1.5_CoreAssoc",
    }
    assert set(result["utility"]) == {
        "2.1_GenKnow",
        "2.2_InterIdSim",
        "2.3_IntraIdSim",
        "2.4_VisIdInt",
        "2.5_FragSim",
    }
    assert {"MRR", "R@1", "outcomes"} <= set(result["efficacy"]["1.1_RetFail"])


# The calibration targets the tiny tier meets (docs/calibration.md). The baselines' agreement with
# the paper (>= 6 of 8, one balanced) is computed and reported, but the tiny models do not reach it
# yet: it is not asserted here.
REFERENCE_TARGETS = (
    "Compromised RetFail MRR",
    "Compromised RetFail R@1",
    "Compromised / Clean RetFail MRR",
    "Clean GenKnow",
    "Clean GenKnow 95% half-width",
    "Compromised GenKnow",
    "Compromised GenKnow 95% half-width",
    "seeds per diagnosis (fewest)",
)


def test_fidelity_report_is_the_tables_and_the_reference_models_are_calibrated(tiny_run):
    """The fidelity report is computed from the table (each baseline's label is the diagnosis its
    seeds agree on), and the reference models are in the paper's regime: Compromised leaks without
    reciting, Clean does not, GenKnow is measured to +/- 0.025, every diagnosis has 3 seeds."""
    found = read_json(RESULTS / "fidelity.json")
    _, agreed = seeds.summarise(tiny_run)
    for baseline in found["baselines"]:
        assert baseline["ran"] and baseline["ours"] == agreed[baseline["state"]].label
        assert baseline["n_seeds"] == len(SEEDS)
        print(f"{baseline['name']}: paper {baseline['failure_mode']}; ours {baseline['ours']}")
    criteria = {c["name"]: c for c in found["criteria"]}
    for criterion in criteria.values():
        print(f"{criterion['name']}: {criterion['value']} ({criterion['target']})")
    assert "Fidelity to the paper" in (RESULTS / "fidelity.md").read_text()
    assert found["agreeing"] == sum(b["agrees"] for b in found["baselines"])
    failing = [name for name in REFERENCE_TARGETS if not criteria[name]["holds"]]
    assert not failing


def test_paired_comparisons_cover_every_pair_of_methods(tiny_run):
    found = read_json(RESULTS / "comparisons.json")
    methods = builtin_methods()
    assert found["methods"] == sorted(methods) and found["budget"] == MAIN
    pairs = len(methods) * (len(methods) - 1) // 2
    assert len(found["comparisons"]) == 2 * pairs  # RetFail and GenKnow
    by_pair = {(c["a"], c["b"], c["metric"]): c for c in found["comparisons"]}
    # A's value is the mean over its seeds of the table's rows.
    summary = pl.read_parquet(RESULTS / "benchmark_summary.parquet")
    first, second = sorted(methods)[:2]
    state = f"unlearned/{first}/x{MAIN:g}"
    expected = summary.filter(pl.col("state") == state)["RetFail_MRR"].item()
    assert by_pair[(first, second, "RetFail_MRR")]["a_value"] == pytest.approx(expected)


def test_calibrate_sweeps_a_learning_rate_grid_on_the_runs_models(tiny_run, tmp_path):
    """`salmu calibrate --lr-grid` stops at the first lr that closes the diagnosis's share of the
    RetFail gap and writes its fidelity report, outside the run's results."""
    work = tmp_path / "calibrate"
    command = [sys.executable, "-m", "salmu", "calibrate", "--run-dir", str(RESULTS)]
    command += ["--config", "config.yaml", "--methods", "neg_grad", "--seeds", "0"]
    command += ["--lr-grid", "1e-4", "3e-5", "--work-dir", str(work)]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    found = read_json(work / "fidelity.json")
    grid = found["grid"]
    assert [g["lr"] for g in grid] == [3e-5, 1e-4][: len(grid)]  # ascending
    assert all(g["gap_closed"] < 0.9 for g in grid[:-1])
    assert grid[-1]["gap_closed"] >= 0.9  # gradient ascent forgets by 1e-4
    assert found["lr"] == {"neg_grad": grid[-1]["lr"]}
    assert all(g["label"] for g in grid)  # each lr's seed-0 diagnosis, beside its gap
    assert "lr per method: neg_grad" in (work / "fidelity.md").read_text()


def shard_contents(shard_dir):
    """Keys and image hashes read from the tar files themselves, not from our manifest."""
    keys, hashes = set(), set()
    for shard in sorted(shard_dir.glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".jpg"):
                    keys.add(member.name[: -len(".jpg")])
                    hashes.add(hashlib.sha256(tar.extractfile(member).read()).hexdigest())
    return keys, hashes


def test_clean_training_shards_hold_no_sensitive_sample(tiny_run):
    sensitive_keys, sensitive_hashes = set(), set()
    for split in SENSITIVE:
        frame = pl.read_parquet(RESULTS / "benchmark" / "data" / f"{split}-00000-of-00001.parquet")
        sensitive_keys |= {name[: -len(".jpg")].replace(".", "_") for name in frame["file_name"]}
        sensitive_hashes |= {
            hashlib.sha256(b).hexdigest() for b in frame["image"].struct.field("bytes")
        }
    clean_keys, clean_hashes = shard_contents(RESULTS / "shards" / "retain")
    assert len(clean_keys) > 1000
    assert not clean_keys & sensitive_keys
    assert not clean_hashes & sensitive_hashes
    # ...while the Compromised model's extra shards hold every sensitive sample.
    extra_keys, _ = shard_contents(RESULTS / "shards" / "sensitive")
    assert extra_keys == sensitive_keys


def test_every_rule_left_a_benchmark_file(tiny_run):
    benchmarks = {
        p.relative_to(RESULTS / "benchmarks").as_posix()
        for p in (RESULTS / "benchmarks").rglob("*.tsv")
    }
    for name in (
        "personas.tsv",
        "faces/000-of-001.tsv",
        "merge_faces.tsv",
        "face_filter/000-of-001.tsv",
        "merge_face_filter.tsv",
        "captions.tsv",
        "card.tsv",
        "splits.tsv",
        "retain.tsv",
        "shards_retain.tsv",
        "train_clean.tsv",
        "train_compromised.tsv",
        "table.tsv",
        "evaluate/clean.tsv",
        "unlearn/neg_grad_x5_seed0.tsv",
        "attack/clean.tsv",
        "attack_table.tsv",
    ):
        assert name in benchmarks


def test_every_attacked_model_has_every_attack_in_the_attack_table(tiny_run):
    """Clean, Compromised and each method's model at the main budget for attacks.seeds: every
    relearning and precision attack, scored on the rows its attacker did not see."""
    table = pl.read_parquet(RESULTS / "attacks.parquet")
    attacks = [*SETTINGS["attacks"]["relearn"], *SETTINGS["attacks"]["precision"]]
    main = SETTINGS["report"]["main_budget"]
    states = ["clean", "compromised"] + [
        f"unlearned/{m}/x{main:g}/seed{s}" for m in builtin_methods() for s in ATTACK_SEEDS
    ]
    assert sorted(table["state"].unique().to_list()) == sorted(states)
    assert table.height == len(states) * len(attacks)
    references = table.filter(pl.col("state").is_in(["clean", "compromised"]))
    assert references["RetFail_MRR_recovered"].abs().max() < 1e-12  # nothing to recover
    forget_rows = pl.read_parquet(RESULTS / "benchmark/data/forget-00000-of-00001.parquet").height
    partial = table.filter(pl.col("attack") == "partial")["rows_measured"].unique().to_list()
    held = round(SETTINGS["attacks"]["partial_fraction"] * forget_rows)
    assert partial == [forget_rows - held]
    # Each attacker's data was audited against the rows it is measured on, by key and image.
    for state in ("compromised", f"unlearned/neg_grad/x{main:g}/seed{ATTACK_SEEDS[0]}"):
        found = read_json(RESULTS / "attacks" / state / "attacks.json")["attacks"]
        assert found["partial"]["audit"] == {
            "attack_samples": held,
            "measured_rows": forget_rows - held,
            "overlap": 0,
        }
        assert found["related"]["audit"]["measured_rows"] == forget_rows
    # The relearning attacks move the models (the attacker's data teaches them something).
    relearned = table.filter(pl.col("family") == "relearn")
    assert (relearned["RetFail_MRR_after"] != relearned["RetFail_MRR_before"]).all()
    assert "| unlearned/neg_grad/x5/seed0 |" in (RESULTS / "attacks.md").read_text()
    # The results table, the fidelity report and a plot carry them.
    results = pl.read_parquet(RESULTS / "benchmark.parquet")
    attacked = results.filter(pl.col("max_recovered").is_not_null())["state"].to_list()
    assert sorted(attacked) == sorted(states)
    assert {f"recovered_{a}" for a in attacks} <= set(results.columns)
    assert "attacks: most recovered (worst)" in (RESULTS / "fidelity.md").read_text()
    assert (RESULTS / "plots" / "recovered_gap.png").stat().st_size > 0


def shallow_unlearning(out, steps=20, lr=1e-3):
    """A deliberately shallow unlearning of the run's Compromised model: Neg. Gradient on the
    forget shards that may move only the two final projections (text and image)."""
    import torch

    from salmu.clip_model import load_clip, save_checkpoint
    from salmu.unlearn.data import SampleBank, read_samples
    from salmu.unlearn.losses import clip_loss

    torch.manual_seed(0)
    model, preprocess, tokenizer = load_clip(
        "resources/models/tiny-clip", RESULTS / "models" / "compromised" / "checkpoint.pt",
        train_transform=True,
    )  # fmt: skip
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in ("text_projection", "visual.proj"))
    bank = SampleBank(read_samples(RESULTS / "shards" / "forget"), preprocess, tokenizer, 0)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in range(steps):
        loss = -clip_loss(model, bank.next_batch(32))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    save_checkpoint(model.eval(), out, "shallow")


def attacked_row(checkpoint, state, tmp_path, *flags) -> dict:
    """``salmu attack`` on one checkpoint, then the attack table with the run's Clean and
    Compromised as references: the checkpoint's row (its worst attack and label)."""
    out = tmp_path / "attacked.json"
    attack = [sys.executable, "-m", "salmu", "attack", "--benchmark", str(RESULTS / "benchmark")]
    attack += ["--model-dir", "resources/models/tiny-clip", "--checkpoint", str(checkpoint)]
    attack += ["--state", state, "--retain-shards", str(RESULTS / "shards" / "retain")]
    subprocess.run([*attack, "--out", str(out), *flags], cwd=ROOT, check=True, capture_output=True)
    references = [str(RESULTS / "attacks" / s / "attacks.json") for s in ("clean", "compromised")]
    table = [sys.executable, "-m", "salmu", "attack-table", "--attacks", *references, str(out)]
    table += ["--out-prefix", str(tmp_path / "attacks")]
    subprocess.run(table, cwd=ROOT, check=True, capture_output=True)
    rows = pl.read_parquet(tmp_path / "attacks.parquet").filter(pl.col("state") == state)
    return rows.sort("RetFail_MRR_recovered", descending=True).row(0, named=True)


def compromised_retfail() -> float:
    table = pl.read_parquet(RESULTS / "attacks.parquet")
    return table.filter(pl.col("state") == "compromised")["RetFail_MRR_before"][0]


def test_a_shallow_unlearning_is_caught_as_superficial(tiny_run, tmp_path):
    """Forgetting that lives in the last projections alone: the relearning attacks bring most of
    the gap back, and the attack table says so; the run's own methods are not so labelled."""
    shallow = tmp_path / "shallow.pt"
    shallow_unlearning(shallow)
    row = attacked_row(shallow, "unlearned/shallow/x1/seed0", tmp_path, "--attack-precision")
    assert row["RetFail_MRR_before"] < 0.5 * compromised_retfail()  # it did forget, on its face
    assert row["attack_diagnosis"] == "superficial forgetting"
    assert row["worst_attack"] in SETTINGS["attacks"]["relearn"]
    assert row["max_recovered"] > SETTINGS["report"]["diagnosis"]["max_recovered"]
    run_labels = pl.read_parquet(RESULTS / "attacks.parquet")["attack_diagnosis"].unique()
    assert "superficial forgetting" not in run_labels.to_list()


def test_an_update_below_the_int8_step_is_caught_by_the_precision_attack(tiny_run, tmp_path):
    """Neg. Gradient's update, clipped weight by weight to 0.45 of the int8 step of its row (each
    row's largest weight kept), still forgets most of the gap in fp32; int8 rounds the update
    away and the association comes back."""
    import torch

    from salmu.attacks.precision import int8_round_trip
    from salmu.io import write_torch

    def state_dict(path):
        return torch.load(path, weights_only=True)["state_dict"]

    compromised = state_dict(RESULTS / "models" / "compromised" / "checkpoint.pt")
    unlearned = state_dict(
        RESULTS / "models" / "unlearned" / "neg_grad" / "x5" / "seed0" / "checkpoint.pt"
    )
    edited = {}
    for name, weight in compromised.items():
        if not (weight.is_floating_point() and weight.dim() >= 2):
            edited[name] = unlearned[name]
            continue
        grid = int8_round_trip(weight).reshape(weight.shape[0], -1)
        step = grid.abs().amax(dim=1, keepdim=True) / 127
        change = (unlearned[name].reshape(grid.shape) - grid).clamp(-0.45 * step, 0.45 * step)
        change = change.masked_fill(grid.abs() == grid.abs().amax(dim=1, keepdim=True), 0)
        edited[name] = (grid + change).reshape(weight.shape)
        assert torch.equal(int8_round_trip(edited[name]), grid.reshape(weight.shape))
    checkpoint = tmp_path / "substep.pt"
    write_torch({"epoch": 0, "name": "substep", "state_dict": edited}, checkpoint)
    row = attacked_row(checkpoint, "unlearned/substep/x5/seed0", tmp_path, "--attack-relearn")
    assert row["RetFail_MRR_before"] < 0.5 * compromised_retfail()
    assert row["worst_attack"] == "int8" and row["attack_diagnosis"] == "superficial forgetting"


def test_every_data_job_records_its_peak_memory(tiny_run):
    """`salmu memory-bench` tabulates the peaks that `salmu record` writes into each record."""
    from salmu.memory_bench import job_peaks, render

    peaks = job_peaks(RESULTS)
    data_rules = {"personas", "faces", "merge_faces", "face_filter", "merge_face_filter"}
    data_rules |= {"captions", "splits", "card", "retain", "shards", "leakcheck_clean"}
    assert data_rules <= set(peaks)
    assert peaks["shards"]["jobs"] == 3 and peaks["unlearn"]["jobs"] == FAN_OUT
    # Python with polars and pyarrow is ~100 MB; torch and open_clip several times that.
    assert all(50 < p["peak_rss_mb"] < 8000 for p in peaks.values())
    assert peaks["train"]["peak_rss_mb"] > peaks["personas"]["peak_rss_mb"]
    table = render({1: {"peaks": peaks, "data": {"images": 1, "image_mb": 1.0}}})
    assert "| `shards` (largest of 3 jobs) peak RSS (MB) |" in table


def test_released_layout_loads_with_datasets_and_the_card_counts_match(tiny_run):
    import datasets

    benchmark = RESULTS / "benchmark"
    loaded = datasets.load_dataset(str(benchmark))
    card = (benchmark / "README.md").read_text()
    for split in (*SENSITIVE, "retain_synth"):
        rows = pl.read_parquet(benchmark / "data" / f"{split}-00000-of-00001.parquet").height
        assert loaded[split].num_rows == rows
        assert f"| {split} | {rows:,} |" in card or f"| {split} | {rows} |" in card
    assert isinstance(loaded["forget"].features["image"], datasets.Image)
    # The procedural renderer is identity-consistent: the filter keeps every identity.
    report = read_json(RESULTS / "data" / "face_filter_report.json")
    assert len(read_json(benchmark / "identities_metadata.json")) == 40
    assert report


def test_rerun_is_a_no_op(tiny_run):
    start = time.time()
    result = snakemake("--cores", "2", *CONFIG)
    print(f"no-op rerun: {time.time() - start:.1f} s")
    assert "Nothing to be done" in result.stdout + result.stderr


SPLITS_SUMMARY_AND_CONTACT_SHEET = ("benchmark/splits_summary.json", "data/faces_contact_sheet.png")


def test_data_regenerates_byte_identically(tiny_run):
    again = "pytest-e2e-again"
    shutil.rmtree(ROOT / "results" / again, ignore_errors=True)
    # The splits, and the merged faces table (only the contact sheet and `all` need it).
    targets = [f"results/{again}/{t}" for t in SPLITS_SUMMARY_AND_CONTACT_SHEET]
    snakemake(*targets, "--cores", "2", "--config", f"run={again}")
    files = [
        "data/personas.parquet",
        "data/identities_metadata.json",
        "data/faces_parts/000-of-001.parquet",
        "data/faces.parquet",
        "data/faces_kept.parquet",
        "data/face_filter_report.json",
        "data/captions.parquet",
        *[f"benchmark/data/{s}-00000-of-00001.parquet" for s in (*SENSITIVE, "retain_synth")],
        "benchmark/sensitive_set_captions_metadata.json",
        "benchmark/fragile_set_ids.json",
    ]
    for name in files:
        assert (ROOT / "results" / again / name).read_bytes() == (RESULTS / name).read_bytes(), name
    shutil.rmtree(ROOT / "results" / again)


def run_overlay(tmp_path, overlay: dict, *targets: str):
    """A fresh run of ``overlay`` on top of config.yaml (its results folder removed first)."""
    import yaml

    shutil.rmtree(ROOT / "results" / overlay["run"], ignore_errors=True)
    path = tmp_path / f"{overlay['run']}.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return snakemake(*targets, "--cores", "2", "--configfile", str(path))


def test_evaluate_only_mode_reproduces_the_pipelines_numbers(tiny_run, tmp_path):
    """A user's checkpoint on a benchmark in the released layout, with nothing trained."""
    run = "pytest-external"
    overlay = {
        "run": run,
        "external": {
            "benchmark": str(RESULTS / "benchmark"),
            "models": {
                "mine": {
                    "model": "resources/models/tiny-clip",
                    "checkpoint": str(RESULTS / "models" / "compromised" / "checkpoint.pt"),
                }
            },
        },
    }
    result = run_overlay(tmp_path, overlay, "external")
    # Only the evaluation and its table ran: no data generation, no training.
    assert "rule train" not in result.stdout + result.stderr
    table = pl.read_parquet(ROOT / "results" / run / "external.parquet")
    assert table["state"].to_list() == ["external/mine"]
    for column in ("RetFail_MRR", "AssocStr", "ACS", "IdZSC", "InterIdSim", "FragSim"):
        assert table[column].item() == pytest.approx(metric(tiny_run, "compromised", column))
    # No GenKnow set ships with a released benchmark: reported as skipped (-1).
    assert table["GenKnow"].item() == -1
    shutil.rmtree(ROOT / "results" / run)


def test_confidence_intervals_diagnosis_plots_and_html_report(tiny_run, tmp_path):
    row = tiny_run.filter(pl.col("state") == "compromised")
    low, value, high = (
        row[c].item() for c in ("RetFail_MRR_ci_low", "RetFail_MRR", "RetFail_MRR_ci_high")
    )
    assert low <= value <= high and high > low
    diagnoses = dict(zip(tiny_run["state"], tiny_run["diagnosis"]))
    assert diagnoses["clean"] == diagnoses["compromised"] == "reference"
    assert all(diagnoses[s] for s in diagnoses if s.startswith("unlearned/"))
    for name in ("retfail_vs_genknow", "retfail_vs_intraidsim"):
        assert (RESULTS / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (RESULTS / "plots" / f"{name}.svg").read_bytes()[:400]
    report = tmp_path / "report.html"
    snakemake("--report", str(report), *CONFIG)
    html = report.read_text(errors="replace")
    assert "benchmark.csv" in html and "retfail_vs_genknow" in html
    assert "provenance.html" in html  # the provenance summary is in the report too
    summary = (RESULTS / "provenance.html").read_text()
    assert "<td>train</td>" in summary and "<td>unlearn</td>" in summary


def test_plan_of_a_finished_run_reads_its_shards_and_benchmarks(tiny_run, tmp_path):
    """The throughput rule measures this machine; the plan's config estimate of the data sizes
    matches the shards the run made (no face was filtered out), and the measured job times sit
    next to the projection."""
    snakemake("--cores", "2", f"results/{RUN}/throughput.json", *CONFIG)
    out = tmp_path / "plan.json"
    command = [sys.executable, "-m", "salmu", "plan", "--run", RUN]
    subprocess.run(command + ["--json", str(out), "--", "--forceall"], cwd=ROOT, check=True)
    payload = read_json(out)
    assert payload["sizes"]["source"] == "shards"
    config = SETTINGS
    estimate = estimated_sizes(config)
    for key in ("sensitive", "forget", "retain"):
        assert payload["sizes"][key] == getattr(estimate, key), key
    rules = {row["rule"]: row for row in payload["rules"]}
    assert rules["unlearn"]["jobs"] == FAN_OUT
    train = rules["train"]
    assert train["jobs"] == 2 and train["measured_jobs"] == 2
    assert train["device_hours"] > 0 and train["measured_hours"] > 0
    throughput = read_json(RESULTS / "throughput.json")
    assert throughput["faces"]["images"] == 2 * config["faces"]["images_per_identity"]


def audit_rules(node: dict) -> set[str]:
    rules = {node["rule"]} if node["rule"] else set()
    for child in node["inputs"]:
        rules |= audit_rules(child)
    return rules


def audit_flags(node: dict) -> list[str]:
    return node["flags"] + [f for child in node["inputs"] for f in audit_flags(child)]


def test_the_results_table_traces_back_to_the_persona_seed(tiny_run):
    """`salmu audit` of the table walks every job's record down to personas; nothing is stale, and
    every row's lineage column names its checkpoint's record."""
    command = [sys.executable, "-m", "salmu", "audit", str(RESULTS / "benchmark.csv"), "--json"]
    tree = json.loads(subprocess.run(command, cwd=ROOT, check=True, capture_output=True).stdout)
    expected = {"table", "evaluate", "unlearn", "train", "shards", "splits", "faces"}
    assert expected | {"personas", "face_filter", "captions", "retain"} <= audit_rules(tree)
    stale = [f for f in audit_flags(tree) if f.startswith(("input changed", "modified"))]
    assert not stale
    for row in tiny_run.iter_rows(named=True):
        record = read_json(ROOT / row["lineage"])
        assert row["checkpoint"] in record["outputs"]
        assert record["rule"] == (
            "train" if row["method"] in ("clean", "compromised") else "unlearn"
        )
        assert record["seeds"]["config.seed"] == 0


def test_a_damaged_split_stops_the_run_before_any_job_deletes_its_outputs(tiny_run):
    """Damage a holdout parquet and ask for one evaluation: Snakemake plans shards (which it
    would delete first), Clean's retraining and the evaluation. The preflight names the file in
    one line, and nothing runs or goes."""
    split = RESULTS / "benchmark" / "data" / "holdout_identity-00000-of-00001.parquet"
    original, stamp = split.read_bytes(), split.stat()
    manifest = (RESULTS / "shards" / "sensitive" / "manifest.json").read_bytes()
    try:
        split.write_bytes(os.urandom(len(original)))
        target = f"results/{RUN}/eval/clean/evaluation.json"
        result = snakemake("--cores", "2", target, *CONFIG, check=False)
    finally:
        split.write_bytes(original)
        os.utime(split, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"results/{RUN}/benchmark/data/{split.name}: unreadable parquet file" in log
    assert "rule shards:" not in log  # no job started
    assert (RESULTS / "shards" / "sensitive" / "manifest.json").read_bytes() == manifest


def test_shadow_models_feed_the_association_inference_attack(tiny_run):
    """attacks.shadow_pairs: 1 trains one more Clean and Compromised with the next seed. The
    inference attack fits on Compromised + the shadow Compromised (in) and Clean (out) and tells
    each model's forget pairs from the shadow Clean's, which no fit saw."""
    result = snakemake("--cores", "2", *CONFIG, "attacks={shadow_pairs: 1}")
    log = result.stdout + result.stderr
    assert log.count("rule train:") == 2  # the shadow pair; nothing else is retrained
    seed = SETTINGS["seed"] + 1
    for role in ("clean", "compromised"):
        record = read_json(
            RESULTS / "provenance" / "models" / "shadow1" / role / "checkpoint.pt.json"
        )
        command = record["command"]
        assert command[command.index("--seed") + 1] == str(seed)
    table = pl.read_parquet(RESULTS / "attacks.parquet").unique("state")
    auc = dict(zip(table["state"], table["inference_auc"]))
    assert set(table["inference_references"]) == {"1 shadow pair(s)"}
    assert not any(s.startswith("shadow") for s in auc)  # references, not attacked models
    assert auc["compromised"] > 0.9 and auc["compromised"] > auc["clean"]
    # Clean and Compromised recover 0 by construction. The shadow pair, attacked the same way
    # but never unlearned, is an independent check: a Compromised-like model has nothing to
    # recover, and a Clean-like one nothing to be given back.
    states = ["clean", "compromised", "shadow1/clean", "shadow1/compromised"]
    results, _ = attack_table.load([RESULTS / "attacks" / s / "attacks.json" for s in states])
    shares = attack_table.build(results, SETTINGS["report"]["diagnosis"]["min_reference_gap"])
    shadow = shares.filter(pl.col("state").str.starts_with("shadow1/"))
    print(shadow.select("state", "attack", "RetFail_MRR_recovered"))
    assert shadow.height == 2 * len(
        [*SETTINGS["attacks"]["relearn"], *SETTINGS["attacks"]["precision"]]
    )
    threshold = SETTINGS["report"]["diagnosis"]["max_recovered"]
    assert shadow["RetFail_MRR_recovered"].max() < threshold / 2
    assert (
        "Association inference (ours; references: 1 shadow pair(s))"
        in (RESULTS / "attacks.md").read_text()
    )


def test_forcing_the_compromised_training_retrains_it_from_epoch_0(tiny_run):
    """README "Retrain only the Compromised model": a forced rerun trains from epoch 0 instead of
    re-exporting the finished run, and (training is deterministic) gives the same checkpoint.

    Runs last: the checkpoint it rewrites is newer than everything downstream."""
    checkpoint = RESULTS / "models" / "compromised" / "checkpoint.pt"
    before, stamp = hashlib.sha256(checkpoint.read_bytes()).hexdigest(), checkpoint.stat()
    target = f"results/{RUN}/models/compromised/checkpoint.pt"
    # The target first: --forcerun takes every file name that follows it.
    snakemake(target, "--cores", "2", "--forcerun", target, *CONFIG)
    log = (RESULTS / "logs" / "train_compromised.log").read_text()
    run_log = (RESULTS / "models" / "compromised" / "open_clip" / "run" / "out.log").read_text()
    assert "restart: the previous run finished" in log
    assert "Train Epoch: 0 " in run_log and "resuming checkpoint" not in run_log
    assert checkpoint.stat().st_mtime_ns > stamp.st_mtime_ns
    assert hashlib.sha256(checkpoint.read_bytes()).hexdigest() == before


def test_release_round_trip_through_a_hub_cache(tiny_run, tmp_path, monkeypatch):
    """Export Clean and Compromised as hub repositories, put them in a Hugging Face cache, and
    run released-artifacts mode on them and on the exported benchmark: the path a user takes
    with the authors' artifacts."""
    from salmu.evaluate.layout import flatten

    snakemake("release", "--cores", "2", *CONFIG)
    release = RESULTS / "release"
    card = (release / "models" / "compromised" / "README.md").read_text()
    assert (
        "Provenance record of the checkpoint: `provenance/models/compromised/checkpoint.pt" in card
    )
    assert "| RetFail_MRR |" in card
    training = pl.read_parquet(
        release / "salmu-training" / "data" / "sensitive-00000-of-00001.parquet"
    )
    sensitive_rows = sum(
        pl.read_parquet(RESULTS / "benchmark" / "data" / f"{s}-00000-of-00001.parquet").height
        for s in SENSITIVE
    )
    assert training.height == sensitive_rows

    cache = tmp_path / "hub"
    for role in ("clean", "compromised"):
        files = {
            n: release / "models" / role / n
            for n in ("open_clip_config.json", "open_clip_model.safetensors")
        }
        put_in_hub_cache(cache, f"pytest/tiny-{role}", files)
    bench = {p.name: p for p in (release / "salmubench").iterdir()}
    put_in_hub_cache(cache, "pytest/tiny-salmubench", bench, kind="datasets")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    # Local artifacts live outside results/ (a path there is some run's output).
    genknow = shutil.copy(RESULTS / "data" / "genknow.parquet", tmp_path / "genknow.parquet")
    run = "pytest-released"
    overlay = {
        "run": run,
        "artifacts": {
            "benchmark": "hf-hub:pytest/tiny-salmubench",
            "clean": {"model": "hf-hub:pytest/tiny-clean"},
            "compromised": {"model": "hf-hub:pytest/tiny-compromised"},
            "genknow": str(genknow),
        },
        "unlearn": {"only": ["finetune", "neg_grad"], "seeds": [0], "budgets": [1]},
        "report": {"main_budget": 1},
    }
    result = run_overlay(tmp_path, overlay)
    counts = job_counts(result.stdout + result.stderr)
    assert not {"personas", "faces", "captions", "splits", "retain", "train"} & set(counts)
    out = ROOT / "results" / run
    for state in ("clean", "compromised"):
        ours = flatten(read_json(RESULTS / "eval" / state / "evaluation.json"))
        again = flatten(read_json(out / "eval" / state / "evaluation.json"))
        assert again == pytest.approx(ours, abs=1e-6), state
    table = pl.read_parquet(out / "benchmark.parquet")
    assert sorted(table["state"].to_list()[2:]) == [
        "unlearned/finetune/x1/seed0",
        "unlearned/neg_grad/x1/seed0",
    ]
    assert all(table["diagnosis"])
    # The attacks run on the released models too, with the fallback inference (no shadows).
    assert table["max_recovered"].null_count() == 0
    assert set(table["inference_references"]) == {"fallback (no shadow)"}
    assert "- compromised: not the released weights" in (out / "benchmark.md").read_text()
    versus = (out / "vs_paper.md").read_text()
    assert "compromised: not the released weights" in versus and "| compromised |" in versus
    source = read_json(out / "models" / "compromised" / "source.json")
    assert source["weights_hub_id"] == "pytest/tiny-compromised" and source["released"] is None
    shutil.rmtree(out)
