"""What a tier will cost, before it runs: ``salmu plan --configfile <tier>``.

Jobs come from Snakemake's own dry run (so they are exactly the jobs ``snakemake`` would run now:
``--forceall`` for a run from scratch). Hours come from a throughput file measured by
``salmu throughput`` (Snakemake target ``results/<run>/throughput.json``) on the tier's hardware,
times the work of each job:

- faces: images to render / faces images/s (anchor portraits are included in the measured rate);
- train: epochs x samples per epoch / train samples/s, per device (the throughput is measured on one
  GPU; multi-GPU scaling is assumed linear, so the hours are a lower bound and the wall-clock is
  device-hours / GPUs);
- unlearn: budget steps x (forget batch + retain batch) / train samples/s (a step of a method is a
  training step; a frozen reference model's forward passes are not counted);
- evaluate: images + captions of the benchmark and GenKnow / encode samples/s;
- attack: the forget pairs scored before and after each attack / encode samples/s, plus each
  relearning attack's steps x batch / train samples/s;
- commonpool: pairs per download job / ``retain.commonpool.expected_images_per_s`` (an assumed
  rate per node: downloads cannot be measured offline).

Other rules run on CPUs and are listed without hours. Data sizes are read from the run's shards when
they exist, else estimated from the config (upper bounds: before face filtering).

Each rule's ``runtime`` limit (minutes, the largest of its jobs in the dry run) stands beside the
projected hours per job; ``salmu.plan_report`` renders the table and warns of a job past it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from salmu.io import read_json, read_yaml
from salmu.plan_report import DEFAULT_CONFIG, RulePlan, add_runtimes, render, totals
from salmu.unlearn.budget import budget_steps

# Released ImageNet-1k validation set, the GenKnow set when evaluate.imagenet_path is given.
IMAGENET_VAL_IMAGES = 50_000


def merge(base: dict, overlay: dict) -> dict:
    """Snakemake's --configfile semantics: nested dicts are updated key by key."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(root: Path, configfiles: list[str]) -> dict:
    config: dict = {}
    for path in [root / DEFAULT_CONFIG, *(root / f for f in configfiles)]:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: config file not found")
        loaded = read_yaml(path, "config file") or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a YAML mapping of config keys")
        config = merge(config, loaded)
    return config


def dry_run_jobs(
    root: Path, configfiles: list[str], snakemake_args: list[str]
) -> tuple[dict[str, int], dict[str, int]]:
    """Rule -> number of jobs (the job-stats table) and rule -> runtime limit in minutes (the
    largest ``runtime`` resource of its jobs), from ``snakemake -n``."""
    command = [sys.executable, "-m", "snakemake", "-n"]
    if configfiles:
        command += ["--configfile", *configfiles]
    result = subprocess.run(
        command + snakemake_args, cwd=root, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ValueError(f"snakemake dry run failed:\n{(result.stdout + result.stderr)[-3000:]}")
    jobs = job_stats(result.stdout)
    jobs.pop("total", None)
    return jobs, job_runtimes(result.stdout)


def job_runtimes(stdout: str) -> dict[str, int]:
    """Rule -> the largest ``runtime=`` (minutes) in the resources of its jobs' blocks."""
    runtimes: dict[str, int] = {}
    rule = None
    for line in stdout.splitlines():
        stripped = line.strip()
        if stripped.startswith(("rule ", "localrule ")) and stripped.endswith(":"):
            rule = stripped.split()[1].rstrip(":")
        elif rule and stripped.startswith("resources:"):
            for item in stripped[len("resources:") :].split(","):
                key, _, value = item.strip().partition("=")
                if key == "runtime" and value.isdigit():
                    runtimes[rule] = max(runtimes.get(rule, 0), int(value))
    return runtimes


def job_stats(stdout: str) -> dict[str, int]:
    """Rule -> job count from Snakemake's job-stats table (its ``total`` row included)."""
    counts: dict[str, int] = {}
    in_table = False
    for line in stdout.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
        elif in_table and len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
            if parts[0] == "total":
                break
    return counts


@dataclass
class DataSizes:
    sensitive: int
    forget: int
    retain: int  # every retain sample both models train on (retain_synth included when it is)
    retain_synth: int
    genknow: int
    source: str  # "shards" or "config"


def count_uids(path: str | None) -> int | None:
    if path and Path(path).is_file():
        with open(path) as handle:
            return sum(1 for line in handle if line.strip())
    return None


def shard_total(directory: Path) -> int | None:
    sizes = directory / "sizes.json"
    if not sizes.is_file():
        return None
    return sum(read_json(sizes).values())


def estimated_forget(config: dict) -> int:
    """Forget rows the config makes before face filtering (an upper bound)."""
    personas, faces, splits = config["personas"], config["faces"], config["splits"]
    kept = 1 - splits["holdout_identity_fraction"]
    sensitive = personas["n_identities"] * faces["images_per_identity"]
    # Partially forgotten identities keep about half their attribute types (holdout_association).
    return round(sensitive * kept * (1 - splits["partial_forget_fraction"] / 2))


def estimated_sizes(config: dict) -> DataSizes:
    personas, faces, splits = config["personas"], config["faces"], config["splits"]
    kept = 1 - splits["holdout_identity_fraction"]
    sensitive = personas["n_identities"] * faces["images_per_identity"]
    forget = estimated_forget(config)
    retain_synth = round(
        personas["n_identities"] * kept * faces["generic_per_identity"]
        + faces["anonymous_identities"] * faces["images_per_anonymous"]
    )
    return DataSizes(
        sensitive=sensitive,
        forget=forget,
        retain=retain_pairs(config)
        + (retain_synth if config["train"]["include_retain_synth"] else 0),
        retain_synth=retain_synth,
        genknow=genknow_images(config),
        source="config",
    )


def retain_pairs(config: dict) -> int:
    retain = config["retain"]
    if retain["backend"] == "synthetic":
        return retain["n_pairs"]
    pool = retain["commonpool"]
    if pool.get("expected_pairs"):
        return pool["expected_pairs"]
    uids = count_uids(pool.get("uids"))
    if uids is None:
        raise ValueError(
            "config key retain.commonpool.expected_pairs: the plan needs the number of CommonPool "
            "pairs (or a local retain.commonpool.uids file to count)"
        )
    return uids


def genknow_images(config: dict) -> int:
    if config["evaluate"].get("imagenet_path"):
        return IMAGENET_VAL_IMAGES
    from salmu.retain import classnames

    return len(classnames()) * config["retain"]["genknow_images_per_class"]


def data_sizes(root: Path, config: dict) -> DataSizes:
    """Sizes of the run's shards when they all exist, else the config estimate."""
    shards = root / "results" / config["run"] / "shards"
    sources = ["sensitive", "forget", "retain"]
    if config["retain"]["backend"] == "commonpool":
        sources.append("commonpool")
    totals = {source: shard_total(shards / source) for source in sources}
    estimate = estimated_sizes(config)
    if any(total is None for total in totals.values()):
        return estimate
    return DataSizes(
        sensitive=totals["sensitive"],
        forget=totals["forget"],
        retain=totals["retain"] + totals.get("commonpool", 0),
        retain_synth=estimate.retain_synth,
        genknow=estimate.genknow,
        source="shards",
    )


def device_kind(device: str) -> str:
    return "cpu" if device == "cpu" else "gpu"


def rate(throughput: dict | None, kind: str, key: str) -> float | None:
    section = (throughput or {}).get(kind)
    return section.get(key) if section else None


def hours(units: float, per_second: float | None) -> float | None:
    return None if per_second is None else units / per_second / 3600


def face_images(config: dict) -> int:
    faces = config["faces"]
    return (
        config["personas"]["n_identities"]
        * (faces["images_per_identity"] + faces["generic_per_identity"])
        + faces["anonymous_identities"] * faces["images_per_anonymous"]
    )


def train_plan(config: dict, sizes: DataSizes, jobs: int, throughput: dict | None) -> RulePlan:
    train = config["train"]
    compromised = sizes.retain + sizes.sensitive * train["sensitive_upsampling"]
    # Both models when both are planned; otherwise assume the larger (Compromised).
    samples = (sizes.retain + compromised) if jobs == 2 else compromised * jobs
    devices = max(1, train["nodes"] * train["gpus_per_node"])
    return RulePlan(
        "train",
        jobs,
        device_kind(train["device"]),
        f"{train['epochs']} epochs x {sizes.retain:,} (Clean) / {compromised:,} (Compromised) samples",
        hours(samples * train["epochs"], rate(throughput, "train", "samples_per_s")),
        devices,
    )


def unlearn_plan(config: dict, sizes: DataSizes, jobs: int, throughput: dict | None) -> RulePlan:
    unlearn = config["unlearn"]
    steps = [budget_steps(b, sizes.forget, unlearn["batch_size"]) for b in unlearn["budgets"]]
    mean_steps = sum(steps) / len(steps)
    samples = jobs * mean_steps * 2 * unlearn["batch_size"]
    return RulePlan(
        "unlearn",
        jobs,
        device_kind(unlearn["device"]),
        f"{'/'.join(str(s) for s in steps)} steps (budgets {unlearn['budgets']}) of "
        f"{unlearn['batch_size']} forget + {unlearn['batch_size']} retain",
        hours(samples, rate(throughput, "train", "samples_per_s")),
    )


def evaluate_plan(config: dict, sizes: DataSizes, jobs: int, throughput: dict | None) -> RulePlan:
    per_job = sizes.sensitive + sizes.retain_synth + sizes.genknow
    return RulePlan(
        "evaluate",
        jobs,
        device_kind(config["evaluate"]["device"]),
        f"{per_job:,} images + captions per model",
        hours(jobs * per_job, rate(throughput, "encode", "samples_per_s")),
    )


def attack_plan(config: dict, sizes: DataSizes, jobs: int, throughput: dict | None) -> RulePlan:
    """An attacked model is scored on the forget pairs before and after each attack, and
    fine-tuned for each relearning attack. (The distractor captions are few and, as in
    evaluate, not counted.)"""
    attacks = config["attacks"]
    passes = 1 + len(attacks["relearn"]) + len(attacks["precision"])
    encoded = passes * sizes.forget
    trained = len(attacks["relearn"]) * attacks["steps"] * attacks["batch_size"]
    encode_hours = hours(jobs * encoded, rate(throughput, "encode", "samples_per_s"))
    train_hours = hours(jobs * trained, rate(throughput, "train", "samples_per_s"))
    return RulePlan(
        "attack",
        jobs,
        device_kind(config["evaluate"]["device"]),
        f"{passes} scorings of {sizes.forget:,} forget pairs + {trained:,} relearning samples "
        "per model",
        None if encode_hours is None or train_hours is None else encode_hours + train_hours,
    )


def faces_plan(config: dict, jobs: int, throughput: dict | None) -> RulePlan:
    """Each of the ``faces.jobs`` jobs of a run renders about 1/faces.jobs of the images."""
    faces = config["faces"]
    device = faces["diffusers"]["device"] if faces["backend"] == "diffusers" else "cpu"
    images = face_images(config)
    per_job = images / faces["jobs"]
    return RulePlan(
        "faces",
        jobs,
        device_kind(device),
        f"{images:,} images ({faces['backend']}), ~{per_job:,.0f} per job",
        hours(jobs * per_job, rate(throughput, "faces", "images_per_s")),
    )


def face_filter_plan(config: dict, jobs: int) -> RulePlan:
    embedder = config["faces"]["filter"]["embedder"]
    on = "gpu" if embedder == "clip" else "cpu"
    work = f"{face_images(config):,} images through the filter's {embedder} embedder"
    return RulePlan("face_filter", jobs, on, work + " (not measured)", None)


def commonpool_plan(config: dict, jobs: int) -> RulePlan:
    """Each of the ``retain.commonpool.jobs`` download jobs fetches ~1/jobs of the pairs, at the
    config's assumed rate per job (a download cannot be measured offline)."""
    pool = config["retain"]["commonpool"]
    pairs = retain_pairs(config)
    per_job = pairs / pool["jobs"]
    images_per_s = pool.get("expected_images_per_s")
    work = f"{pairs:,} pairs, ~{per_job:,.0f} per job"
    work += (
        f" at {images_per_s:,} images/s per job (retain.commonpool.expected_images_per_s)"
        if images_per_s
        else " (download rate not given: retain.commonpool.expected_images_per_s)"
    )
    # A download job is a node's worth of processes: its hours are node-hours.
    return RulePlan("commonpool", jobs, "node", work, hours(jobs * per_job, images_per_s))


def build_plan(config: dict, jobs: dict[str, int], sizes: DataSizes, throughput: dict | None):
    projected = {
        "commonpool": lambda n: commonpool_plan(config, n),
        "faces": lambda n: faces_plan(config, n, throughput),
        "face_filter": lambda n: face_filter_plan(config, n),
        "train": lambda n: train_plan(config, sizes, n, throughput),
        "unlearn": lambda n: unlearn_plan(config, sizes, n, throughput),
        "evaluate": lambda n: evaluate_plan(config, sizes, n, throughput),
        "attack": lambda n: attack_plan(config, sizes, n, throughput),
    }
    rows = []
    for rule, count in jobs.items():
        if rule == "all":  # a target, no work
            continue
        if rule in projected:
            rows.append(projected[rule](count))
        else:
            rows.append(RulePlan(rule, count, "cpu", "not projected (CPU)", None))
    return rows


def benchmark_files(root: Path, run: str, rule: str) -> list[Path]:
    """A rule's benchmark files: ``{rule}.tsv``, ``{rule}_*.tsv`` or ``{rule}/**.tsv``."""
    directory = root / "results" / run / "benchmarks"
    files = [directory / f"{rule}.tsv", *directory.glob(f"{rule}_*.tsv")]
    files += (directory / rule).rglob("*.tsv")
    return [f for f in files if f.is_file()]


def add_measured(root: Path, run: str, rows: list[RulePlan]) -> None:
    """Fill in each rule's measured wall-clock, to hold the projection against."""
    for row in rows:
        seconds = []
        for path in benchmark_files(root, run, row.rule):
            lines = path.read_text().splitlines()
            header = lines[0].split("\t") if lines else []
            if "s" in header and len(lines) > 1:
                seconds.append(float(lines[-1].split("\t")[header.index("s")]))
        if seconds:
            row.measured_hours = sum(seconds) / 3600
            row.measured_jobs = len(seconds)


def load_throughput(path: Path) -> dict | None:
    if not path.is_file():
        return None
    data = read_json(path)
    for key in ("train", "encode"):
        if not isinstance(data.get(key), dict) or "samples_per_s" not in data[key]:
            raise ValueError(
                f"{path}: expected '{key}.samples_per_s' (written by salmu throughput)"
            )
    return data


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--configfile", nargs="*", default=[], help="tier overlays, as given to snakemake"
    )
    parser.add_argument(
        "--throughput", default=None, help="throughput.json (default results/<run>/throughput.json)"
    )
    parser.add_argument("--run", default=None, help="override the config's run name")
    parser.add_argument("--directory", default=".", help="workflow root (holds the Snakefile)")
    parser.add_argument("--json", default=None, help="also write the plan as JSON here")
    parser.add_argument(
        "snakemake_args",
        nargs=argparse.REMAINDER,
        help="after --: further snakemake flags and targets, e.g. -- --forceall",
    )


def run(args: argparse.Namespace) -> None:
    root = Path(args.directory)
    if not (root / "Snakefile").is_file():
        raise FileNotFoundError(f"{root / 'Snakefile'}: run the plan from the workflow root")
    config = load_config(root, args.configfile)
    extra = [a for a in args.snakemake_args if a != "--"]
    if args.run:
        config["run"] = args.run
        extra += ["--config", f"run={args.run}"]
    jobs, runtimes = dry_run_jobs(root, args.configfile, extra)
    throughput_path = Path(args.throughput or f"results/{config['run']}/throughput.json")
    throughput = load_throughput(root / throughput_path)
    sizes = data_sizes(root, config)
    rows = build_plan(config, jobs, sizes, throughput)
    add_runtimes(rows, runtimes)
    add_measured(root, config["run"], rows)
    print(render(config, args.configfile, sizes, throughput, throughput_path, rows))
    if args.json:
        payload: dict[str, Any] = {
            "run": config["run"],
            "sizes": asdict(sizes),
            "throughput": str(throughput_path) if throughput else None,
            "rules": [
                dict(
                    asdict(row),
                    wall_hours_per_job=row.wall_hours_per_job,
                    over_runtime=row.over_runtime,
                )
                for row in rows
            ],
            "totals": totals(rows),
        }
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n")
