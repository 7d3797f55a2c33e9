"""DataComp CommonPool retain shards, downloaded with img2dataset into our shard-directory format.

CommonPool metadata (parquet: ``uid, url, text`` and optionally ``sha256``, ``face_bboxes``, ...;
``salmu.commonpool_metadata``) is filtered (``--uids`` subset; rows whose ``sha256`` is an image of
a ``--exclude-sha256`` shard directory), handed to ``img2dataset.download`` and the downloaded
shards are published as a shard directory that ``salmu train``/``salmu leakcheck`` read like any
other (see ``salmu.shards``). With ``--part K --parts N`` a job downloads one of N contiguous
metadata row ranges into a directory of its own; ``salmu commonpool-merge`` joins the parts::

    OUT/00000.tar ...            published shards (samples: <key>.jpg/.txt/.json, key = img2dataset key)
    OUT/sizes.json               shard name -> sample count (open_clip_train)
    OUT/manifest.json            our manifest; file_name = CommonPool uid, sha256 of the bytes in the tar
    OUT/download_report.json     rows, successes, failures by status and message, dedup counts
    STATE/salmu_state.json       the request STATE was made for, and whether the job finished
    STATE/commonpool_rows.parquet  the rows img2dataset reads (uid, url, text[, face_bboxes])
    STATE/img2dataset/           img2dataset's own output: NNNNN.tar, NNNNN.parquet, NNNNN_stats.json

STATE is ``--work-dir`` (the workflow keeps it outside the published directory, which Snakemake
deletes before a job runs), or OUT itself.

img2dataset writes into its own sub-folder because in incremental mode it takes every ``*.json`` of
its output folder for a ``<shard>_stats.json`` and would choke on our ``sizes.json``. A published
shard is a hard link to img2dataset's tar (no second copy of hundreds of GB), or a filtered copy
when samples had to be dropped. Resuming: img2dataset runs with ``incremental_mode="incremental"``,
which skips shards that have a ``_stats.json``; when every shard has one, img2dataset is not started
at all. The published files are rebuilt from img2dataset's output on every run. Whether the state
is resumed is ``salmu.resumable``'s rule: only an unfinished download of the same request (settings
and rows) resumes; another request's state, or a finished one (a forced rerun), is removed and the
download starts over.

Failures live only in img2dataset's per-shard parquet (every row, with ``status``/``error_message``),
never in the tar, so the report is computed from those parquets. A shard with no sample left (all
URLs dead, or all dropped as sensitive) is not published: it is absent from ``sizes.json`` and the
manifest's ``shards`` and listed under ``empty_shards`` in the report, so no consumer opens an
empty tar (open_clip_train splits shards across workers and our unlearning reader rejects a shard
directory without samples).

Dedup against the sensitive set happens twice: metadata rows whose ``sha256`` (hash of the image at
crawl time) is a forbidden image hash are never downloaded, and a downloaded sample is dropped when
either the hash of the bytes img2dataset fetched or the hash of the re-encoded bytes in the tar is
a forbidden hash (``salmu leakcheck`` compares the latter).

Face blurring is an explicit choice (``--blur-faces`` / ``--no-blur-faces``, no default). DataComp
blurs the ``face_bboxes`` it ships, so with blurring the retain set shows almost no recognisable
real face: what the Compromised model learns about linking a face to a name then comes almost only
from the (unblurred, synthetic) sensitive set, which makes forgetting easy to attribute but gives
the models less general face utility than a web-trained CLIP has. Without blurring the retain set
keeps the realistic face statistics a web CLIP is trained on (closer to the paper's setting of a
model that knows faces), at the cost of redistributing and training on unblurred faces of real,
non-consenting people.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import math
import os
import re
import shutil
import tarfile
from importlib import metadata as importlib_metadata
from pathlib import Path

import polars as pl

from salmu.commonpool_metadata import (
    BBOX_COLUMN,
    load_metadata,
    read_uids,
    resolve_metadata,
    select_rows,
)
from salmu.io import file_sha256, read_parquet, write_json, write_parquet
from salmu.parts import add_part_arguments
from salmu.resumable import mark_finished, open_state
from salmu.sections.retain import CommonPoolSettings
from salmu.shards import BYTES, MANIFEST, read_manifest

WORKDIR = "img2dataset"
ROWS = "commonpool_rows.parquet"
REPORT = "download_report.json"
# img2dataset names shard N "{N:0<oom_shard_count>d}"; 5 digits matches our NNNNN.tar layout.
OOM_SHARD_COUNT = 5
SHARD_TAR = re.compile(r"^\d+\.tar$")


# --- metadata ---------------------------------------------------------------------------------


def forbidden_hashes(shard_dirs: list[str]) -> set[str]:
    return {s["sha256"] for d in shard_dirs for s in read_manifest(d)["samples"]}


# --- the img2dataset run --------------------------------------------------------------------


def shard_name(shard_id: int) -> str:
    return f"{shard_id:0{OOM_SHARD_COUNT}d}"


def rows_fingerprint(rows: pl.DataFrame) -> str:
    """Identity of the download request: img2dataset shards by row position, so a resumed run
    must see the same rows in the same order."""
    lines = rows.select(
        pl.concat_str([pl.col("uid"), pl.col("url").fill_null("")], separator="\t")
    ).to_series()
    return hashlib.sha256("\n".join(lines.to_list()).encode()).hexdigest()


def unfinished_shards(workdir: Path, n_shards: int) -> list[int]:
    """img2dataset writes <shard>_stats.json last, so a shard without one is not done."""
    return [i for i in range(n_shards) if not (workdir / f"{shard_name(i)}_stats.json").exists()]


def run_img2dataset(rows_path: Path, workdir: Path, args: argparse.Namespace) -> None:
    # albumentations otherwise asks PyPI for updates at import, in every worker process.
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    from img2dataset import download

    # Workers are *spawned* and re-import the parent's __main__ (as __mp_main__): fine for the
    # `salmu` console script and `python -m salmu`, whose entry points are guarded; a script that
    # calls this must keep its own top-level code under `if __name__ == "__main__":`.
    download(
        url_list=str(rows_path),
        input_format="parquet",
        url_col="url",
        caption_col="text",
        save_additional_columns=["uid"],
        bbox_col=BBOX_COLUMN if args.blur_faces else None,
        output_folder=str(workdir),
        output_format="webdataset",
        image_size=args.image_size,
        resize_mode=args.resize_mode,
        resize_only_if_bigger=args.resize_only_if_bigger,
        encode_format="jpg",
        number_sample_per_shard=args.samples_per_shard,
        oom_shard_count=OOM_SHARD_COUNT,
        processes_count=args.processes,
        thread_count=args.threads,
        timeout=args.timeout,
        retries=args.retries,
        distributor="multiprocessing",
        enable_wandb=False,
        incremental_mode="incremental",
        # sha256 of the fetched bytes, used for the post-download dedup. No verify_hash: ~14% of
        # CommonPool's crawl-time hashes no longer match the served bytes, which would silently
        # drop valid images (DataComp downloads without verification too).
        compute_hash="sha256",
        verify_hash=None,
    )


# --- reading img2dataset's output -----------------------------------------------------------


def _tar_images(path: Path) -> dict[str, str]:
    """key -> sha256 of the image bytes of one img2dataset tar."""
    hashes = {}
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                key, _, ext = member.name.partition(".")
                if ext == "jpg":
                    hashes[key] = hashlib.sha256(tar.extractfile(member).read()).hexdigest()
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ValueError(f"{path}: unreadable shard ({err}); {_redo_hint(path)}") from None
    return hashes


def _redo_hint(path: Path) -> str:
    stem = path.name.split(".")[0]
    return f"delete {path.parent / (stem + '_stats.json')} and rerun to download it again"


def read_shard(workdir: Path, shard_id: int, forbidden: set[str]) -> dict:
    """One finished img2dataset shard: its kept samples and its part of the report."""
    name = shard_name(shard_id)
    tar_path = workdir / f"{name}.tar"
    table = read_parquet(workdir / f"{name}.parquet", ["uid", "key", "status", "error_message"])
    failed = table.filter(pl.col("status") != "success")
    failures: dict = collections.defaultdict(dict)
    for status, message, count in (
        failed.group_by(["status", "error_message"]).len().sort(["status", "error_message"]).rows()
    ):
        failures[status][message or ""] = count
    # Rows come in download-completion order; sort so the manifest does not depend on timing.
    ok = table.filter(pl.col("status") == "success").sort("key")
    images = _tar_images(tar_path)
    if sorted(images) != sorted(ok["key"].to_list()):
        raise ValueError(
            f"{tar_path}: holds {len(images)} images but its parquet lists {ok.height} successes; "
            + _redo_hint(tar_path)
        )
    fetched = ok["sha256"].to_list() if "sha256" in ok.columns else [None] * ok.height
    samples, dropped = [], []
    for key, uid, fetched_hash in zip(ok["key"], ok["uid"], fetched):
        if images[key] in forbidden or fetched_hash in forbidden:
            dropped.append(key)
        else:
            samples.append({"key": key, "file_name": uid, "sha256": images[key]})
    return {
        "name": f"{name}.tar",
        "source": tar_path,
        "samples": samples,
        "dropped": set(dropped),
        "report": {
            "rows": table.height,
            "successes": ok.height,
            "failures": dict(failures),
            "dropped_by_image_sha256": len(dropped),
            "samples": len(samples),
        },
    }


# --- publishing -----------------------------------------------------------------------------


def publish_shard(source: Path, target: Path, drop_keys: set[str]) -> None:
    """Hard-link img2dataset's tar (no second copy); write a filtered copy when keys must go."""
    tmp = target.with_name(target.name + ".tmp")
    tmp.unlink(missing_ok=True)
    if drop_keys:
        _copy_without(source, tmp, drop_keys)
    else:
        try:
            os.link(source, tmp)
        except OSError:
            # Other file system, or no hard links there: fall back to a copy.
            shutil.copyfile(source, tmp)
    tmp.replace(target)


def _copy_without(source: Path, target: Path, drop_keys: set[str]) -> None:
    with tarfile.open(source) as src, tarfile.open(target, "w", format=tarfile.USTAR_FORMAT) as dst:
        for member in src:
            if not member.isfile() or member.name.partition(".")[0] in drop_keys:
                continue
            info = tarfile.TarInfo(member.name)
            # Same fixed headers as salmu.shards, so a rebuilt copy has the same bytes.
            info.size, info.mtime, info.mode = member.size, 0, 0o644
            dst.addfile(info, src.extractfile(member))


def summarise(reports: dict[str, dict]) -> dict:
    """Totals over shard reports (shard name -> ``read_shard``'s report)."""
    failures: dict = collections.defaultdict(collections.Counter)
    for report in reports.values():
        for status, messages in report["failures"].items():
            failures[status].update(messages)
    total = {
        k: sum(r[k] for r in reports.values())
        for k in ("rows", "successes", "dropped_by_image_sha256", "samples")
    }
    total["failed"] = total["rows"] - total["successes"]
    total["success_rate"] = round(total["successes"] / total["rows"], 6) if total["rows"] else 0.0
    total["failures"] = {status: dict(sorted(c.items())) for status, c in sorted(failures.items())}
    total["failures_by_status"] = {s: sum(c.values()) for s, c in sorted(failures.items())}
    total["empty_shards"] = [name for name, r in reports.items() if not r["samples"]]
    return total


def write_shard_dir(out_dir: Path, shards: list[dict]) -> dict:
    """Publish ``shards`` (name, source tar, samples, keys to drop) into ``out_dir`` with its
    sizes, bytes and manifest; a tar already there under another name is stale and goes."""
    for stale in out_dir.iterdir():
        if SHARD_TAR.match(stale.name) and stale.name not in {s["name"] for s in shards}:
            stale.unlink()
    samples, shard_hashes, shard_bytes = [], {}, {}
    for shard in shards:
        target = out_dir / shard["name"]
        publish_shard(shard["source"], target, shard["dropped"])
        shard_hashes[shard["name"]] = file_sha256(target)
        shard_bytes[shard["name"]] = target.stat().st_size
        samples.extend({**s, "shard": shard["name"]} for s in shard["samples"])
    manifest = {
        "num_samples": len(samples),
        "shards": [s["name"] for s in shards],
        "shard_sha256": shard_hashes,
        "samples": samples,
    }
    write_json({s["name"]: len(s["samples"]) for s in shards}, out_dir / "sizes.json")
    write_json(shard_bytes, out_dir / BYTES)
    write_json(manifest, out_dir / MANIFEST)
    return manifest


def publish(out_dir: Path, shards: list[dict], report: dict, allow_empty: bool = False) -> dict:
    """Publish the non-empty shards and the report. No sample at all is an error, unless this
    is one part of a download (``allow_empty``): the merge judges the whole pool."""
    write_json(report, out_dir / REPORT)
    kept = [s for s in shards if s["samples"]]
    if not kept and not allow_empty:
        for stale in out_dir.iterdir():
            if SHARD_TAR.match(stale.name) or stale.name in ("sizes.json", BYTES, MANIFEST):
                stale.unlink()
        raise ValueError(f"{out_dir}: no sample was downloaded; see {out_dir / REPORT}")
    return write_shard_dir(out_dir, kept)


# --- command line ---------------------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser) -> None:
    CommonPoolSettings.add_arguments(parser)
    parser.add_argument(
        "--work-dir",
        default=None,
        help="download state (request, rows, img2dataset output); default: --out-dir",
    )
    parser.add_argument("--out-dir", required=True, help="shard directory to create or resume")
    parser.add_argument(
        "--exclude-sha256",
        nargs="+",
        default=[],
        metavar="SHARD_DIR",
        help="shard dirs (e.g. the sensitive set) whose images must not be in the retain set",
    )
    parser.add_argument(
        "--resize-only-if-bigger", action=argparse.BooleanOptionalAction, default=True
    )
    add_part_arguments(
        parser, "contiguous metadata row ranges", "retain.commonpool.jobs", "commonpool-merge"
    )


def _check_args(args: argparse.Namespace) -> None:
    if not args.metadata:
        raise ValueError(
            "--metadata (config key retain.commonpool.metadata): expected a parquet file, a "
            "directory of parquets or hf-hub:<dataset id>"
        )
    for flag, minimum in (
        ("image_size", 1),
        ("samples_per_shard", 1),
        ("processes", 1),
        ("threads", 1),
        ("timeout", 1),
        ("retries", 0),
    ):
        if getattr(args, flag) < minimum:
            option = "--" + flag.replace("_", "-")
            raise ValueError(f"{option} must be >= {minimum}, got {getattr(args, flag)}")


def run(args: argparse.Namespace) -> None:
    _check_args(args)
    out_dir = Path(args.out_dir)
    files = resolve_metadata(args.metadata)
    meta, source = load_metadata(files, args.blur_faces, args.part, args.parts)
    uids = read_uids(args.uids) if args.uids else None
    forbidden = forbidden_hashes(args.exclude_sha256)
    rows, selection = select_rows(meta, uids, forbidden, whole_pool=args.parts == 1)

    settings = {
        "blur_faces": args.blur_faces,
        "image_size": args.image_size,
        "resize_mode": args.resize_mode,
        "resize_only_if_bigger": args.resize_only_if_bigger,
        "samples_per_shard": args.samples_per_shard,
        "encode_format": "jpg",
    }
    # The download state may live outside the published directory, which a workflow manager
    # deletes before rerunning a failed job: the download then resumes instead of restarting.
    state_dir = Path(args.work_dir) if args.work_dir else out_dir
    request = {**settings, "rows": rows.height, "rows_sha256": rows_fingerprint(rows)}
    print(f"download state in {state_dir}: {open_state(state_dir, request)}", flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows_path = state_dir / ROWS
    if not rows_path.exists():
        write_parquet(rows, rows_path)
    workdir = state_dir / WORKDIR
    n_shards = math.ceil(rows.height / args.samples_per_shard)
    pending = unfinished_shards(workdir, n_shards)
    if pending:  # none when this part has no row to download
        print(f"downloading {len(pending)} of {n_shards} shards into {workdir}")
        run_img2dataset(rows_path, workdir, args)
        # img2dataset gives up on a shard after max_shard_retry without raising.
        still = unfinished_shards(workdir, n_shards)
        if still:
            raise ValueError(
                f"{workdir}: {len(still)} shards did not finish (e.g. {shard_name(still[0])}); "
                "rerun the same command to resume"
            )

    shards = [read_shard(workdir, i, forbidden) for i in range(n_shards)]
    report = {
        "settings": settings,
        "img2dataset_version": importlib_metadata.version("img2dataset"),
        "metadata": {**source, **selection},
        "exclude_sha256": list(args.exclude_sha256),
        "shards": {s["name"]: s["report"] for s in shards},
        "total": summarise({s["name"]: s["report"] for s in shards}),
    }
    manifest = publish(out_dir, shards, report, allow_empty=args.parts > 1)
    mark_finished(state_dir)
    total = report["total"]
    print(
        f"{out_dir}: {manifest['num_samples']} samples in {len(manifest['shards'])} shards; "
        f"{total['successes']}/{total['rows']} downloaded, "
        f"{selection['dropped_by_metadata_sha256']} + {total['dropped_by_image_sha256']} "
        "dropped as forbidden (metadata sha256 + image sha256)"
    )
