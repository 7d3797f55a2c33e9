"""``salmu commonpool-merge``: one retain shard directory from the CommonPool download's parts.

Each ``salmu commonpool --part K --parts N`` job downloads one metadata row range (config
``retain.commonpool.jobs``), with its own resumable state and its own ``download_report.json``.
The merge publishes their shards under one numbering, in part order (hard links: no second copy),
with one ``sizes.json``, manifest (written a part at a time) and report. The report keeps every part's report whole under
``parts`` and sums them in ``metadata`` and ``total``; the uids requested but absent from the
whole metadata can only be counted here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from salmu.commonpool import REPORT, SHARD_TAR, publish_shard, summarise
from salmu.io import read_json, write_json
from salmu.shards import BYTES, MANIFEST, read_manifest

# Selection counts that add up over parts.
SUMMED = ("metadata_rows", "rows_in_subset", "dropped_by_metadata_sha256", "rows_to_download")


def part_shards(part_dir: Path, first_index: int) -> list[dict]:
    """The part's published shards, renamed from ``first_index`` on, with their samples."""
    manifest = read_manifest(part_dir)
    by_shard: dict[str, list] = {name: [] for name in manifest["shards"]}
    for sample in manifest["samples"]:
        by_shard[sample["shard"]].append(sample)
    return [
        {
            "name": f"{first_index + i:05d}.tar",
            "source": part_dir / name,
            "samples": by_shard[name],
            "sha256": manifest["shard_sha256"][name],
        }
        for i, name in enumerate(manifest["shards"])
    ]


def merged_selection(reports: dict[str, dict]) -> dict:
    """The parts' metadata counts as one selection over the whole pool."""
    selections = [r["metadata"] for r in reports.values()]
    merged = {key: sum(s[key] for s in selections) for key in SUMMED}
    merged["files"] = [f for s in selections for f in s["files"]]
    requested = selections[0]["uids_requested"]
    merged["uids_requested"] = requested
    # Parts hold disjoint metadata rows, and CommonPool's uids are unique (a part refuses a
    # duplicate among its own rows; across parts it is not checked).
    merged["uids_not_in_metadata"] = (
        0 if requested is None else requested - merged["rows_in_subset"]
    )
    return merged


def read_reports(part_dirs: list[Path]) -> dict[str, dict]:
    reports = {}
    for part_dir in part_dirs:
        if part_dir.name in reports:
            raise ValueError(f"{part_dir}: given twice (parts are named by their folder)")
        reports[part_dir.name] = read_json(part_dir / REPORT)
    requests = {json.dumps([r["settings"], r["exclude_sha256"]]) for r in reports.values()}
    if len(requests) > 1:
        raise ValueError(
            f"{part_dirs[0].parent}: the parts were downloaded with different settings or "
            "exclusions (parts of two requests)"
        )
    return reports


def publish_parts(part_dirs: list[Path], out_dir: Path) -> dict:
    """Link every part's shards into ``out_dir`` under one numbering and write its sizes, bytes
    and manifest. The manifest is written a part at a time: at paper scale it lists hundreds of
    millions of samples, and only one part's are held here."""
    for stale in out_dir.iterdir():
        if SHARD_TAR.match(stale.name):
            stale.unlink()
    sizes, shard_bytes, shard_hashes, count = {}, {}, {}, 0
    tmp = out_dir / (MANIFEST + ".tmp")
    with tmp.open("w") as manifest:
        manifest.write('{"samples": [')
        for part_dir in part_dirs:
            for shard in part_shards(part_dir, len(sizes)):
                target = out_dir / shard["name"]
                publish_shard(shard["source"], target, set())
                sizes[shard["name"]] = len(shard["samples"])
                shard_bytes[shard["name"]] = target.stat().st_size
                shard_hashes[shard["name"]] = shard["sha256"]
                for sample in shard["samples"]:
                    manifest.write(",\n" if count else "\n")
                    manifest.write(json.dumps({**sample, "shard": shard["name"]}, sort_keys=True))
                    count += 1
        tail = {"num_samples": count, "shard_sha256": shard_hashes, "shards": list(sizes)}
        manifest.write("\n], " + json.dumps(tail, sort_keys=True)[1:] + "\n")
    if not count:
        tmp.unlink()
        return {"num_samples": 0, "shards": []}
    tmp.replace(out_dir / MANIFEST)
    write_json(sizes, out_dir / "sizes.json")
    write_json(shard_bytes, out_dir / BYTES)
    return {"num_samples": count, "shards": list(sizes)}


def merge_parts(part_dirs: list[Path], out_dir: Path) -> tuple[dict, dict]:
    """Publish every part's shards in ``out_dir``; returns (sample and shard counts, report)."""
    try:
        reports = read_reports(part_dirs)
        shard_reports = {
            f"{label}/{name}": shard
            for label, report in reports.items()
            for name, shard in report["shards"].items()
        }
        first = next(iter(reports.values()))
        report = {
            "settings": first["settings"],
            "img2dataset_version": first["img2dataset_version"],
            "metadata": merged_selection(reports),
            "exclude_sha256": first["exclude_sha256"],
            "parts": reports,
            "total": summarise(shard_reports),
        }
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(report, out_dir / REPORT)
        published = publish_parts(part_dirs, out_dir)
    except KeyError as err:
        raise ValueError(
            f"{part_dirs[0].parent}: a part's report or manifest lacks {err} (not the output "
            "of salmu commonpool?)"
        ) from None
    if not published["num_samples"]:
        raise ValueError(
            f"{out_dir}: no sample was downloaded by any of the {len(part_dirs)} parts; "
            f"see {out_dir / REPORT}"
        )
    return published, report


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--parts", nargs="+", required=True, help="the parts' shard directories, in part order"
    )
    parser.add_argument("--out-dir", required=True, help="the retain shard directory to write")


def run(args: argparse.Namespace) -> None:
    manifest, report = merge_parts([Path(p) for p in args.parts], Path(args.out_dir))
    total = report["total"]
    print(
        f"{args.out_dir}: {manifest['num_samples']} samples in {len(manifest['shards'])} shards "
        f"from {len(args.parts)} part(s); {total['successes']}/{total['rows']} downloaded"
    )
