"""Check by content that a training set holds none of a forbidden set's samples.

Used before training the Clean model (its shards must contain no sensitive sample) and before
unlearning (the forget and retain data a method sees must contain no holdout sample), comparing by
sample key *and* image sha256 (a renamed copy still matches one of the two). A forbidden set is a
shard directory or a split parquet in the released layout.
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Iterator

from salmu.io import iter_parquet, require_columns, write_json
from salmu.shards import image_bytes_column, read_manifest, sample_key


def forbidden_samples(source: str) -> Iterator[tuple[str, str]]:
    """(key, image sha256) of every sample of a shard directory or a split parquet."""
    if source.endswith(".parquet"):
        require_columns(source, ["file_name", "image"])
        # A batch at a time: a split's images are never all in memory.
        for batch in iter_parquet(source, ["file_name", "image"]):
            for name, image in zip(batch["file_name"], image_bytes_column(batch), strict=True):
                yield sample_key(name), hashlib.sha256(image).hexdigest()
    else:
        for sample in read_manifest(source)["samples"]:
            yield sample["key"], sample["sha256"]


def find_leaks(train_dirs: list[str], forbidden_dirs: list[str]) -> dict:
    forbidden_keys, forbidden_hashes = set(), set()
    for source in forbidden_dirs:
        for key, sha in forbidden_samples(source):
            forbidden_keys.add(key)
            forbidden_hashes.add(sha)
    leaks, checked = [], 0
    for shard_dir in train_dirs:
        for sample in read_manifest(shard_dir)["samples"]:
            checked += 1
            if sample["key"] in forbidden_keys or sample["sha256"] in forbidden_hashes:
                leaks.append({"shard_dir": shard_dir, **sample})
    return {
        "train": train_dirs,
        "forbidden": forbidden_dirs,
        "checked_samples": checked,
        "forbidden_samples": len(forbidden_keys),
        "leaks": leaks,
    }


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train", nargs="+", required=True, help="shard dirs a model trains on")
    parser.add_argument(
        "--forbidden",
        nargs="+",
        required=True,
        help="shard dirs or split parquets it must not contain",
    )
    parser.add_argument("--out", required=True)


def run(args: argparse.Namespace) -> None:
    report = find_leaks(args.train, args.forbidden)
    if report["leaks"]:
        example = report["leaks"][0]
        raise ValueError(
            f"{len(report['leaks'])} forbidden samples in {example['shard_dir']} "
            f"(e.g. {example['file_name']}); not writing {args.out}"
        )
    write_json(report, args.out)
    print(
        f"no leak: {report['checked_samples']} samples checked against {report['forbidden_samples']}"
    )
