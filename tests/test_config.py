"""Bad configuration fails before any job runs, naming the key."""

import shutil

import pytest
import yaml

from helpers import ROOT, job_counts, snakemake

OVERLAYS = {
    "wrong type": ({"personas": {"n_identities": "many"}}, "n_identities"),
    "unknown face backend": ({"faces": {"backend": "gan"}}, "backend"),
    "unknown retain backend": ({"retain": {"backend": "laion"}}, "backend"),
    "unknown key": ({"train": {"epochz": 3}}, "epochz"),
    "reports at a budget that never runs": (
        {"report": {"main_budget": 2}},
        "report.main_budget: 2 is not one of unlearn.budgets",
    ),
    "unknown method": (
        {"unlearn": {"methods": {"forget_me": {"lr": 0.1}}}},
        "unlearn.methods.forget_me",
    ),
    "diffusers without weights": ({"faces": {"backend": "diffusers"}}, "faces.diffusers.model"),
    "paraphrase without a model": (
        {"captions": {"paraphrase": "transformers"}},
        "captions.paraphrase_model",
    ),
    "commonpool without metadata": (
        {"retain": {"backend": "commonpool"}},
        "retain.commonpool.metadata",
    ),
    "missing model folder": ({"train": {"model_dir": "resources/models/nope"}}, "train.model_dir"),
    "missing ImageNet path": (
        {"evaluate": {"imagenet_path": "/nowhere/imagenet"}},
        "evaluate.imagenet_path",
    ),
    "clip filter without a model": (
        {"faces": {"filter": {"embedder": "clip"}}},
        "faces.filter.clip_model",
    ),
    "misspelled method hyperparameter": (
        {"unlearn": {"methods": {"neg_grad": {"lr": 0.1, "params": {"retain_wieght": 0.5}}}}},
        "unlearn.methods.neg_grad.params.retain_wieght: 'neg_grad' has no such hyperparameter",
    ),
    "more distractors than a split holds": (
        {"evaluate": {"distractors": 100000}},
        "evaluate.distractors: 100000 per pool",
    ),
    "an empty methods mapping that merging would ignore": (
        {"unlearn": {"methods": {}}},
        "config key unlearn.methods in",
    ),
    "a method subset naming an unconfigured method": (
        {"unlearn": {"only": ["forget_me"]}},
        "unlearn.only",
    ),
}


def paper_dry_run(*args: str, profile: bool = True):
    """``snakemake -n`` of the paper tier overlay (through the slurm profile by default)."""
    via = ("--profile", "slurm") if profile else ()
    return snakemake(
        *args, "-n", *via, "--configfile", "resources/tiers/paper.yaml", "--config", "run=paper"
    )


def overlay_commands(tmp_path, overlay: dict) -> list[str]:
    """The shell commands of a dry run of the tiny tier with ``overlay`` on top."""
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    result = snakemake("-n", "-p", "--configfile", str(path), "--config", "run=pytest-dag-only")
    return [line for line in result.stdout.splitlines() if line.startswith("Shell command")]


@pytest.mark.parametrize("case", sorted(OVERLAYS))
def test_bad_config_fails_before_any_job(tmp_path, case):
    overlay, key = OVERLAYS[case]
    run = f"pytest-badcfg-{case.replace(' ', '-')}"
    overlay = {**overlay, "run": run}
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    shutil.rmtree(ROOT / "results" / run, ignore_errors=True)
    result = snakemake("--cores", "1", "--configfile", str(path), check=False)
    assert result.returncode != 0
    assert key in result.stderr + result.stdout
    assert not (ROOT / "results" / run).exists()


def test_default_config_builds_the_whole_dag():
    # A run name nobody has built, so every job is in the plan.
    result = snakemake("-n", "--quiet", "rules", "--config", "run=pytest-dag-only")
    counts = job_counts(result.stdout)
    for rule in (
        *("personas", "faces", "captions", "splits", "retain"),
        *("leakcheck_clean", "leakcheck_unlearn"),
    ):
        assert counts[rule] == 1
    assert counts["shards"] == 3 and counts["train"] == 2
    # Every configured method x budget x seed is unlearned and evaluated (+ Clean, Compromised).
    config = yaml.safe_load((ROOT / "config.yaml").read_text())["unlearn"]
    fan_out = len(config["methods"]) * len(config["budgets"]) * len(config["seeds"])
    assert len(config["methods"]) == 11 and fan_out == 33  # 3 seeds at the main budget
    assert counts["unlearn"] == fan_out and counts["evaluate"] == fan_out + 2
    assert counts["table"] == counts["fidelity"] == counts["compare"] == 1


def test_a_subset_of_methods_budgets_and_seeds_from_an_overlay_or_the_command_line(tmp_path):
    """unlearn.only picks methods (an overlay cannot remove mappings); budgets and seeds are
    lists, which an overlay replaces. On the command line, nested values arrive as strings
    and are parsed where the schema wants numbers."""
    overlay = tmp_path / "subset.yaml"
    overlay.write_text("unlearn:\n  only: [neg_grad, ssd]\n  budgets: [5]\n  seeds: [0, 1, 2]\n")
    command_line = "unlearn={only: [neg_grad, ssd], budgets: [5], seeds: [0, 1, 2]}"
    run = "run=pytest-dag-only"
    for how in (("--configfile", str(overlay), "--config", run), ("--config", command_line, run)):
        result = snakemake("-n", "--quiet", "rules", *how)
        counts = job_counts(result.stdout)
        assert counts["unlearn"] == 2 * 3 and counts["evaluate"] == 2 * 3 + 2, how


def test_check_config_names_the_file_and_line_of_a_broken_overlay(tmp_path, capsys):
    """Snakemake reports a malformed --configfile without its name or line; salmu check-config
    does, then lets the workflow check the merged configuration."""
    from salmu.cli import main

    broken = tmp_path / "broken.yaml"
    broken.write_text("unlearn:\n  methods:\n    neg_grad: {lr: 0.1\n")
    assert main(["check-config", str(broken)]) == 2
    assert f"{broken}:4:1: not valid YAML" in capsys.readouterr().err
    typo = tmp_path / "typo.yaml"
    typo.write_text("unlearn:\n  methods:\n    ssd: {lr: 0.1, params: {alfa: 3}}\n")
    assert main(["check-config", str(typo)]) == 2
    assert "unlearn.methods.ssd.params.alfa" in capsys.readouterr().err
    assert main(["check-config", "resources/tiers/small.yaml"]) == 0


def test_paper_overlay_generates_diffusion_faces_and_filters_with_clip():
    """The paper tier's data half: its commands carry the configured models, its faces job a GPU."""
    target = "results/paper/benchmark/splits_summary.json"
    out = paper_dry_run("-p", target, profile=False).stdout
    assert "--backend diffusers" in out
    assert "--diffusers-model stable-diffusion-v1-5/stable-diffusion-v1-5" in out
    assert "--diffusers-ip-adapter h94/IP-Adapter" in out
    assert "--embedder clip" in out and "--demographics gender age_band" in out
    assert "--n-identities 1000" in out
    assert "gpu=1" in out


def test_paper_overlay_unlearns_on_a_gpu_in_bf16_with_a_retain_subset():
    target = "results/paper/models/unlearned/slug/x5/seed2/checkpoint.pt"
    result = paper_dry_run("-p", target, profile=False)
    command = next(line for line in result.stdout.splitlines() if "salmu unlearn" in line)
    for flag in ("--precision amp_bf16", "--retain-samples 152340", "--device auto"):
        assert flag in command
    assert "--param target_top1=0.1" in command
    assert "--lr" not in command  # SLUG edits one layer directly: no optimizer, no lr


def test_sensitive_upsampling_reaches_only_the_compromised_training(tmp_path):
    commands = overlay_commands(tmp_path, {"train": {"sensitive_upsampling": 4}})
    commands = [c for c in commands if "salmu train" in c]
    compromised = next(c for c in commands if "shards/sensitive" in c)
    clean = next(c for c in commands if "shards/sensitive" not in c)
    assert "--upsampling 1 4" in compromised and "--upsampling" not in clean


def test_without_the_benign_attacker_the_attacks_do_not_wait_for_retain_data(tmp_path):
    def attack_commands(overlay):
        commands = overlay_commands(tmp_path, overlay)
        return [c for c in commands if "salmu attack " in c]

    default = attack_commands({})
    assert default and all(
        "--retain-shards results/pytest-dag-only/shards/retain" in c for c in default
    )
    related_only = attack_commands({"attacks": {"relearn": ["related", "partial"]}})
    assert len(related_only) == len(default)
    assert not any("--retain-shards" in c for c in related_only)


def rule_resources(stdout: str, rule: str) -> dict[str, str]:
    """The 'resources:' line of the first job of ``rule`` in a dry-run printout."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"rule {rule}:")
    line = next(line for line in lines[start:] if line.strip().startswith("resources:"))
    return dict(item.split("=", 1) for item in line.split(":", 1)[1].strip().split(", "))


def test_paper_tier_through_the_slurm_profile_asks_for_128_gpus_to_train():
    """`snakemake -n --profile slurm` with the paper overlay: training is one srun-launched job over
    16 nodes x 8 GPUs (one task per GPU), unlearning and evaluation one GPU each."""
    targets = [
        "results/paper/models/compromised/checkpoint.pt",
        "results/paper/eval/unlearned/slug/x5/seed2/evaluation.json",
    ]
    result = paper_dry_run(*targets)
    train = rule_resources(result.stdout, "train")
    assert (train["nodes"], train["tasks_per_node"], train["gres"]) == ("16", "8", "gpu:8")
    assert train["mpi"] == "srun" and train["runtime"] == "2880"
    assert rule_resources(result.stdout, "unlearn")["gpu"] == "1"
    assert rule_resources(result.stdout, "evaluate")["gpu"] == "1"
    command = next(line for line in result.stdout.splitlines() if "salmu train" in line)
    assert "--launcher 'srun --cpu-bind=v --accel-bind=gn python -u'" in command
    assert "--model-dir resources/models/vit-b-16" in command and "--epochs 32" in command
    assert "-- --local-loss --gather-with-grad --grad-checkpointing" in command


def test_commonpool_backend_feeds_both_trainings_the_leak_audit_and_unlearning(tmp_path):
    pool_config = {"metadata": "/data/cp", "jobs": 3}
    overlay = {"retain": {"backend": "commonpool", "commonpool": pool_config}}
    commands = overlay_commands(tmp_path, overlay)

    def command(prefix):
        return next(c for c in commands if prefix in c)

    run = "results/pytest-dag-only"
    pool = f"{run}/shards/commonpool"
    # Three downloads (retain.commonpool.jobs), each its own metadata rows, output and state.
    downloads = sorted(c for c in commands if "salmu commonpool " in c)
    assert len(downloads) == 3
    for k, download in enumerate(downloads):
        label = f"{k:03d}-of-003"
        assert "--metadata /data/cp --blur-faces" in download
        assert f"--out-dir {run}/shards/commonpool_parts/{label} " in download
        # Its resumable state lives outside the output Snakemake would delete on failure.
        assert f"--work-dir {run}/downloads/commonpool/{label} " in download
        assert f"--part {k} --parts 3" in download
        assert f"--exclude-sha256 {run}/shards/sensitive" in download
    merge = command("salmu commonpool-merge")
    parts = " ".join(f"{run}/shards/commonpool_parts/{k:03d}-of-003" for k in range(3))
    assert f"--parts {parts} --out-dir {pool} " in merge
    trainings = [c for c in commands if "salmu train" in c]
    assert len(trainings) == 2 and all(pool in c for c in trainings)
    assert pool in command("salmu leakcheck") and pool in command("salmu unlearn")
    # The benign attacker fine-tunes on the same retain data.
    assert pool in command("salmu attack ").split("--retain-shards", 1)[1]
    # The synthetic scenes no longer go into the retain shards (retain_synth still does).
    retain_shards = command("--out-dir results/pytest-dag-only/shards/retain")
    assert "data/retain.parquet" not in retain_shards and "retain_synth" in retain_shards


def test_paper_tier_plans_commonpool_two_trainings_and_the_full_fan_out():
    result = paper_dry_run("--quiet", "rules")
    counts = job_counts(result.stdout)
    paper = yaml.safe_load((ROOT / "resources/tiers/paper.yaml").read_text())["unlearn"]
    fan_out = len(paper["methods"]) * len(paper["budgets"]) * len(paper["seeds"])
    assert fan_out == 66
    # The download as 64 jobs over the metadata (retain.commonpool.jobs), then one merge.
    assert counts["commonpool"] == 64 and counts["merge_commonpool"] == 1 and counts["train"] == 2
    assert counts["unlearn"] == fan_out and counts["evaluate"] == fan_out + 2


def test_small_tier_trains_vit_b_32_on_one_gpu_with_the_sensitive_set_upsampled():
    """One GPU: training is a plain 1-GPU job (no srun), faces / unlearning / evaluation too."""
    targets = [
        "results/small/models/compromised/checkpoint.pt",
        "results/small/eval/unlearned/ssd/x1/seed1/evaluation.json",
        "results/small/throughput.json",
    ]
    result = snakemake(
        *targets, "-n", "-p", "--configfile", "resources/tiers/small.yaml", "--config", "run=small"
    )
    train = rule_resources(result.stdout, "train")
    assert train["gpu"] == "1" and "nodes" not in train and "mpi" not in train
    for rule in ("faces", "face_filter", "unlearn", "evaluate", "throughput"):
        assert rule_resources(result.stdout, rule)["gpu"] == "1", rule
    command = next(line for line in result.stdout.splitlines() if "salmu train" in line)
    assert "--model-dir resources/models/vit-b-32" in command and "--epochs 10" in command
    assert "--upsampling 1 1 3" in command and "--launcher ''" in command
    measure = next(line for line in result.stdout.splitlines() if "salmu throughput" in line)
    assert "--train-batch-size 512 --encode-batch-size 256 --precision amp_bf16" in measure
    assert "--backend diffusers" in measure and "--diffusers-model stable-diffusion-v1-5" in measure
