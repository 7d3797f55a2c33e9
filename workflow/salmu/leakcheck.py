"""Check by content that a training set holds none of a forbidden set's samples.

Used before training the Clean model: its shards must contain no sensitive sample, compared by
sample key *and* image sha256 (a re-encoded or renamed copy still matches one of the two).
"""

from __future__ import annotations

import argparse

from salmu.io import write_json
from salmu.shards import read_manifest


def find_leaks(train_dirs: list[str], forbidden_dirs: list[str]) -> dict:
    forbidden_keys, forbidden_hashes = set(), set()
    for shard_dir in forbidden_dirs:
        for sample in read_manifest(shard_dir)["samples"]:
            forbidden_keys.add(sample["key"])
            forbidden_hashes.add(sample["sha256"])
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
        "--forbidden", nargs="+", required=True, help="shard dirs it must not contain"
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
