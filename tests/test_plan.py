"""`salmu plan`: the jobs of a tier from Snakemake's dry run, hours from a throughput file."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from salmu.plan import build_plan, estimated_sizes, job_runtimes, load_config, retain_pairs
from salmu.plan_report import add_runtimes, render, runtime_warnings
from salmu.unlearn.budget import budget_steps

from helpers import ROOT

PAPER = "resources/tiers/paper.yaml"
THROUGHPUT = {
    "device": "cuda",
    "device_name": "a GPU",
    "measured_at": "today",
    "train": {"samples_per_s": 1000.0, "mfu": 0.4},
    "encode": {"samples_per_s": 4000.0},
    "faces": {"images_per_s": 2.0},
}
JOBS = {"personas": 1, "faces": 32, "train": 2, "unlearn": 66, "evaluate": 68, "attack": 13}


def paper_rows(throughput):
    config = load_config(ROOT, [PAPER])
    sizes = estimated_sizes(config)
    return config, sizes, {r.rule: r for r in build_plan(config, JOBS, sizes, throughput)}


def test_training_hours_are_samples_seen_over_the_measured_rate_on_128_gpus():
    config, sizes, rows = paper_rows(THROUGHPUT)
    compromised = sizes.retain + sizes.sensitive * config["train"]["sensitive_upsampling"]
    expected = (sizes.retain + compromised) * 32 / 1000.0 / 3600
    train = rows["train"]
    assert train.device == "gpu" and train.devices_per_job == 128
    assert train.device_hours == pytest.approx(expected)
    assert train.wall_hours_per_job == pytest.approx(expected / 2 / 128)
    # Twice the throughput, half the hours.
    _, _, faster = paper_rows({**THROUGHPUT, "train": {"samples_per_s": 2000.0}})
    assert faster["train"].device_hours == pytest.approx(expected / 2)


def test_unlearning_and_evaluation_hours_follow_budgets_and_benchmark_size():
    config, sizes, rows = paper_rows(THROUGHPUT)
    steps = [budget_steps(b, sizes.forget, 32) for b in config["unlearn"]["budgets"]]
    per_job_samples = sum(steps) / len(steps) * 2 * 32
    assert rows["unlearn"].device_hours == pytest.approx(66 * per_job_samples / 1000.0 / 3600)
    images = sizes.sensitive + sizes.retain_synth + sizes.genknow
    assert rows["evaluate"].device_hours == pytest.approx(68 * images / 4000.0 / 3600)
    faces = config["faces"]
    rendered = 1000 * (faces["images_per_identity"] + faces["generic_per_identity"]) + (
        faces["anonymous_identities"] * faces["images_per_anonymous"]
    )
    # 32 jobs (faces.jobs) of 1/32 of the images each: the same device-hours as one job.
    assert rows["faces"].device_hours == pytest.approx(rendered / 2.0 / 3600)
    assert rows["faces"].wall_hours_per_job == pytest.approx(rendered / 32 / 2.0 / 3600)
    assert rows["personas"].device_hours is None and rows["personas"].device == "cpu"


def test_attack_hours_count_every_scoring_and_every_relearning_step():
    config, sizes, rows = paper_rows(THROUGHPUT)
    attacks = config["attacks"]
    scorings = 1 + len(attacks["relearn"]) + len(attacks["precision"])
    encoded = scorings * sizes.forget
    trained = len(attacks["relearn"]) * attacks["steps"] * attacks["batch_size"]
    assert rows["attack"].device == "gpu"
    assert rows["attack"].device_hours == pytest.approx(
        13 * (encoded / 4000.0 + trained / 1000.0) / 3600
    )
    # Without the relearning attacks, only the scorings are left.
    config["attacks"]["relearn"] = []
    (fewer,) = build_plan(config, {"attack": 13}, sizes, THROUGHPUT)
    precision_only = (1 + len(attacks["precision"])) * sizes.forget
    assert fewer.device_hours == pytest.approx(13 * precision_only / 4000.0 / 3600)


def test_commonpool_size_comes_from_the_config_or_the_uid_list(tmp_path):
    config = load_config(ROOT, [PAPER])
    assert retain_pairs(config) == 400_000_000
    uids = tmp_path / "uids.txt"
    uids.write_text("a\nb\n\nc\n")
    config["retain"]["commonpool"].update(expected_pairs=None, uids=str(uids))
    assert retain_pairs(config) == 3
    config["retain"]["commonpool"]["uids"] = None
    with pytest.raises(ValueError, match="retain.commonpool.expected_pairs"):
        retain_pairs(config)


def plan(tmp_path, *args):
    out = tmp_path / "plan.json"
    result = subprocess.run(
        [sys.executable, "-m", "salmu", "plan", "--json", str(out), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout, json.loads(out.read_text())


def test_cli_plans_the_paper_tier_from_the_dry_run(tmp_path):
    throughput = tmp_path / "throughput.json"
    throughput.write_text(json.dumps(THROUGHPUT))
    stdout, payload = plan(
        tmp_path, "--configfile", PAPER, "--run", "pytest-plan", "--throughput", str(throughput)
    )
    rules = {row["rule"]: row for row in payload["rules"]}
    paper = yaml.safe_load((ROOT / PAPER).read_text())["unlearn"]
    fan_out = len(paper["methods"]) * len(paper["budgets"]) * len(paper["seeds"])
    assert rules["unlearn"]["jobs"] == fan_out and rules["evaluate"]["jobs"] == fan_out + 2
    assert rules["train"]["devices_per_job"] == 128
    # Clean, Compromised and each method's model at the main budget, for attacks.seeds ([0]).
    assert rules["attack"]["jobs"] == len(paper["methods"]) + 2
    assert rules["attack"]["device"] == "gpu" and rules["attack"]["device_hours"] > 0
    assert payload["sizes"]["source"] == "config" and payload["sizes"]["sensitive"] == 100_000
    assert payload["totals"]["gpu"] == pytest.approx(
        sum(r["device_hours"] or 0 for r in rules.values() if r["device"] == "gpu")
    )
    assert payload["totals"]["node"] == pytest.approx(rules["commonpool"]["device_hours"])
    assert "GPU-hours" in stdout and "on 128 devices" in stdout
    # 32 faces jobs (faces.jobs) of ~3,800 images at 2 images/s: each within its 60 minutes.
    assert rules["faces"]["jobs"] == rules["face_filter"]["jobs"] == 32
    assert rules["faces"]["runtime_minutes"] == 60 and not rules["faces"]["over_runtime"]
    assert not rules["evaluate"]["over_runtime"]
    assert "warning: faces" not in stdout
    # 64 CommonPool downloads (retain.commonpool.jobs) of 6.25M pairs at 1,300 images/s each:
    # ~1.3 h, within the 4-hour runtime; one merge publishes them.
    assert rules["commonpool"]["jobs"] == 64 and rules["merge_commonpool"]["jobs"] == 1
    assert rules["commonpool"]["wall_hours_per_job"] == pytest.approx(400e6 / 64 / 1300 / 3600)
    assert rules["commonpool"]["runtime_minutes"] == 240
    assert not rules["commonpool"]["over_runtime"] and "warning:" not in stdout


def test_one_faces_job_for_the_paper_tier_is_flagged(tmp_path):
    throughput = tmp_path / "throughput.json"
    throughput.write_text(json.dumps(THROUGHPUT))
    overlay = tmp_path / "one_job.yaml"
    overlay.write_text("faces:\n  jobs: 1\n")
    stdout, payload = plan(
        tmp_path, "--configfile", PAPER, str(overlay), "--run", "pytest-plan",
        "--throughput", str(throughput),
    )  # fmt: skip
    rules = {row["rule"]: row for row in payload["rules"]}
    # One job renders every image at 2 images/s: far past its 60-minute runtime.
    assert rules["faces"]["jobs"] == 1 and rules["faces"]["over_runtime"]
    assert "warning: faces: each of its 1 job(s) needs about" in stdout
    assert "Raise faces.runtime to at least" in stdout and "(faces.jobs)" in stdout


def test_one_commonpool_job_for_the_paper_tier_is_flagged(tmp_path):
    overlay = tmp_path / "one_job.yaml"
    overlay.write_text("retain:\n  commonpool:\n    jobs: 1\n    runtime: 2880\n")
    stdout, payload = plan(tmp_path, "--configfile", PAPER, str(overlay), "--run", "pytest-plan")
    rules = {row["rule"]: row for row in payload["rules"]}
    # 400M pairs through one node at 1,300 images/s: ~85 h, past a 48-hour runtime.
    assert rules["commonpool"]["jobs"] == 1 and rules["commonpool"]["over_runtime"]
    assert "warning: commonpool: each of its 1 job(s) needs about 85.5 h" in stdout
    assert "Raise retain.commonpool.runtime to at least" in stdout
    assert "(retain.commonpool.jobs)" in stdout


def test_runtimes_come_from_the_dry_runs_job_blocks():
    stdout = """
rule faces:
    input: a
    resources: tmpdir=/tmp, runtime=60, gpu=1, mem_mb=4000
localrule all:
    input: b
rule evaluate:
    resources: tmpdir=/tmp, runtime=30, gpu=1
rule evaluate:
    resources: tmpdir=/tmp, runtime=45, gpu=1
"""
    assert job_runtimes(stdout) == {"faces": 60, "evaluate": 45}


def test_a_job_past_its_runtime_is_flagged_with_what_to_change():
    config, sizes, rows = paper_rows(THROUGHPUT)
    add_runtimes(list(rows.values()), {"faces": 20, "train": 60, "evaluate": 6000, "personas": 1})
    assert rows["faces"].over_runtime and not rows["evaluate"].over_runtime
    warnings = "\n".join(runtime_warnings(list(rows.values())))
    hours = rows["faces"].wall_hours_per_job
    assert f"Raise faces.runtime to at least {math.ceil(hours * 60)} min" in warnings
    assert "spread the work over more jobs (faces.jobs)" in warnings
    # Training's limit is a config key: the advice names it.
    assert rows["train"].over_runtime and "Raise train.runtime to at least" in warnings
    text = render(config, [PAPER], sizes, THROUGHPUT, Path("t.json"), list(rows.values()))
    assert "warning: faces:" in text


def test_without_throughput_the_plan_says_how_to_measure_it():
    config, sizes, rows = paper_rows(None)
    text = render(
        config, [PAPER], sizes, None, Path("results/paper/throughput.json"), list(rows.values())
    )
    assert "results/paper/throughput.json not found" in text
    assert f"--configfile {PAPER} results/paper/throughput.json" in text
    assert "no hours projected" in text
    cpu = {**THROUGHPUT, "device": "cpu"}
    text = render(config, [PAPER], sizes, cpu, Path("t.json"), list(paper_rows(cpu)[2].values()))
    assert "warning: the throughput was measured on a CPU but this tier runs on GPUs" in text
