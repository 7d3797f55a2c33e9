"""Peak memory of the data stages as the data grows: ``salmu memory-bench``.

For each scale s, one run of the data half of the workflow (personas to the audited shards and the
dataset card) with s times the tier's personas, images per anonymous person and retain scenes, so
s times its images. (Anonymous people keep their number: the procedural renderer's look space
holds about 2,000 distinct identities, fewer than 16 times the tiny tier's 440.) Each job's peak resident memory is the kernel's high-water mark, which ``salmu record``
writes into the job's provenance record (``memory.peak_rss_mb``); the table puts every rule's
largest job beside the data it handled. A stage that streams its images stays flat while the data
grows; one that holds them grows with it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from salmu.io import read_json, write_json
from salmu.plan import load_config

# The outputs that make every data stage run: the two leak audits need every shard directory
# (and so faces, the filter, captions, splits and retain), the card reads the benchmark, the
# contact sheet comes with the merged faces table.
DATA_TARGETS = (
    "audits/clean_has_no_sensitive.json",
    "audits/unlearning_has_no_holdout.json",
    "benchmark/README.md",
    "data/faces_contact_sheet.png",  # the faces merge
)
# Config keys scaled with s: (section, key).
SCALED_KEYS = (
    ("personas", "n_identities"),
    ("faces", "images_per_anonymous"),
    ("retain", "n_pairs"),
)


def scaled_overlay(config: dict, scale: int, run: str) -> dict:
    """The overlay of one scale: the run's name and every scaled key times ``scale``."""
    overlay: dict = {"run": run}
    for section, key in SCALED_KEYS:
        overlay.setdefault(section, {})[key] = config[section][key] * scale
    return overlay


def run_scale(root: Path, configfiles: list[str], overlay: Path, run: str, cores: int) -> None:
    targets = [f"results/{run}/{target}" for target in DATA_TARGETS]
    command = [sys.executable, "-m", "snakemake", "--cores", str(cores), "--forceall"]
    command += ["--configfile", *configfiles, str(overlay), "--", *targets]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ValueError(f"snakemake for {run} failed:\n{(result.stdout + result.stderr)[-3000:]}")


def job_peaks(run_dir: Path) -> dict[str, dict]:
    """Rule -> the largest peak (MB) over its jobs and the number of jobs, from the run's records.
    A job recorded by an older version, or written by Snakemake itself, has no peak: skipped."""
    peaks: dict[str, dict] = {}
    seen: set[tuple[str, str]] = set()
    for path in sorted((run_dir / "provenance").rglob("*.json")):
        if "configs" in path.relative_to(run_dir / "provenance").parts:
            continue
        record = read_json(path)
        memory = record.get("memory")
        job = (record["rule"], tuple(sorted(record["outputs"])))  # a record per output: once
        if not memory or job in seen:
            continue
        seen.add(job)
        row = peaks.setdefault(record["rule"], {"peak_rss_mb": 0.0, "jobs": 0})
        row["peak_rss_mb"] = max(row["peak_rss_mb"], memory["peak_rss_mb"])
        row["jobs"] += 1
    return peaks


def data_volume(run_dir: Path) -> dict[str, int]:
    """Images the data stages made and their bytes (faces before the filter, retain scenes)."""
    import pyarrow.parquet as pq

    images, image_bytes = 0, 0
    data = run_dir / "data"
    for path in [*sorted(data.glob("faces_parts/*.parquet")), data / "retain.parquet"]:
        if not path.is_file():
            continue
        meta = pq.ParquetFile(path).metadata
        images += meta.num_rows
        column = meta.schema.to_arrow_schema().get_field_index("image")
        image_bytes += sum(
            meta.row_group(g).column(column).total_uncompressed_size
            for g in range(meta.num_row_groups)
        )
    return {"images": images, "image_mb": round(image_bytes / 2**20, 1)}


def render(results: dict[int, dict]) -> str:
    """The markdown table: a row per rule, a column per scale, the growth from first to last."""
    scales = sorted(results)
    first, last = scales[0], scales[-1]

    def growth(a: float, b: float) -> str:
        return f"{b / a:.2f}x" if a else ""

    header = ["", *(f"{s}x" for s in scales), f"{last}x / {first}x"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, label in (("images", "images made"), ("image_mb", "image data (MB)")):
        values = [results[s]["data"][key] for s in scales]
        cells = [f"{v:,}" for v in values] + [growth(values[0], values[-1])]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    rules = sorted({rule for s in scales for rule in results[s]["peaks"]})
    for rule in rules:
        values = [results[s]["peaks"].get(rule, {}).get("peak_rss_mb") for s in scales]
        jobs = max(results[s]["peaks"].get(rule, {}).get("jobs", 0) for s in scales)
        label = f"`{rule}`" + (f" (largest of {jobs} jobs)" if jobs > 1 else "")
        cells = [f"{v:,.0f}" if v is not None else "" for v in values]
        ratio = growth(values[0], values[-1]) if None not in (values[0], values[-1]) else ""
        lines.append(f"| {label} peak RSS (MB) | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scales", nargs="+", type=int, default=[1, 4, 16])
    parser.add_argument(
        "--configfile", nargs="*", default=[], help="tier overlays the scales start from"
    )
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--run-prefix", default="memory", help="runs are results/<prefix>-x<s>/")
    parser.add_argument("--directory", default=".", help="workflow root (holds the Snakefile)")
    parser.add_argument("--json", default=None, help="also write the numbers as JSON here")
    parser.add_argument(
        "--table-only",
        action="store_true",
        help="do not run anything: tabulate the runs' existing records",
    )


def run(args: argparse.Namespace) -> None:
    if any(s < 1 for s in args.scales):
        raise ValueError(f"--scales {args.scales}: expected whole numbers >= 1")
    root = Path(args.directory)
    config = load_config(root, args.configfile)
    results = {}
    for scale in sorted(set(args.scales)):
        run_name = f"{args.run_prefix}-x{scale}"
        run_dir = root / "results" / run_name
        if not args.table_only:
            overlay = run_dir.with_name(run_name + ".overlay.yaml")
            overlay.parent.mkdir(parents=True, exist_ok=True)
            # JSON is YAML: the overlay Snakemake reads.
            overlay.write_text(json.dumps(scaled_overlay(config, scale, run_name), indent=1))
            print(f"memory-bench: running the data stages at {scale}x ({run_dir})", flush=True)
            run_scale(root, args.configfile, overlay.resolve(), run_name, args.cores)
        results[scale] = {"peaks": job_peaks(run_dir), "data": data_volume(run_dir)}
    print(render(results))
    if args.json:
        write_json({str(s): r for s, r in results.items()}, args.json)
