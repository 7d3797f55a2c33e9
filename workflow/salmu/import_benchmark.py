"""``salmu import-benchmark``: a benchmark folder in the released layout becomes this run's benchmark.

Released-artifacts mode (``artifacts.benchmark``) reads the authors' ``salmubench-512-redistributed``
(or any folder in its layout, e.g. one ``salmu export`` wrote) instead of generating one. The copy
in ``results/<run>/benchmark/`` has the layout every later stage reads:

- each split as one file ``data/<split>-00000-of-00001.parquet``: a single source shard is copied
  byte for byte, several are concatenated in name order (the official loader's row order), record
  batch by record batch, so a split is never held in memory whole;
- the metadata JSONs copied unchanged. A file the source lacks and no stage strictly needs
  (``fragile_set_all_similarities.json``, ``sensitive_set_generic_captions.json``) is written as an
  empty object and named in ``splits_summary.json`` under ``absent_in_source``; the config check
  refuses Generic Captions on a benchmark without generic captions before any job runs;
- ``splits_summary.json``: the source's own, or the row counts read here (the release has none).

Every problem is one line naming the file and what was expected; nothing is written until the
whole source has been checked.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from salmu.io import ensure_parent, first_line, join_parquet, read_json, write_json
from salmu.released_layout import (
    FRAGILE_SCORES_JSON,
    GENERIC_CAPTIONS_JSON,
    REQUIRED_JSONS,
    SPLITS,
    SUMMARY_JSON,
    retain_disjoint_rows,
    shard_paths,
    split_file,
)

COLUMNS = ("image", "text", "identity_id", "file_name")
# Written as {} when the source lacks them (see the module docstring).
OPTIONAL_JSONS = (GENERIC_CAPTIONS_JSON, FRAGILE_SCORES_JSON)


def check_source(root: Path) -> dict[str, list[Path]]:
    """Shards per split, each with the released columns; raises on the first problem."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such benchmark folder (expected the released layout)")
    shards = {split: shard_paths(root, split) for split in SPLITS}
    for paths in shards.values():
        for path in paths:
            try:
                names = pq.read_schema(path).names
            except Exception as err:  # pyarrow raises several kinds on a damaged file
                raise ValueError(f"{path}: unreadable parquet shard ({first_line(err)})") from None
            missing = [c for c in COLUMNS if c not in names]
            if missing:
                raise ValueError(
                    f"{path}: no column(s) {', '.join(missing)} (the released splits have "
                    f"{', '.join(COLUMNS)})"
                )
    for name in REQUIRED_JSONS:
        if not (root / name).is_file():
            raise FileNotFoundError(f"{root / name}: not found (every released benchmark has it)")
    return shards


def copy_split(paths: list[Path], target: Path) -> int:
    """Write one split file from its shards (a single one byte for byte); returns its rows."""
    if len(paths) == 1:
        tmp = ensure_parent(target).with_name(target.name + ".tmp")
        shutil.copyfile(paths[0], tmp)
        tmp.replace(target)
    else:
        join_parquet(paths, target)
    return pq.ParquetFile(target).metadata.num_rows


def import_benchmark(source: Path, out_dir: Path) -> dict:
    shards = check_source(source)
    rows = {split: copy_split(paths, split_file(out_dir, split)) for split, paths in shards.items()}
    for name in REQUIRED_JSONS:
        shutil.copyfile(source / name, out_dir / name)
    absent = []
    for name in OPTIONAL_JSONS:
        if (source / name).is_file():
            shutil.copyfile(source / name, out_dir / name)
        else:
            absent.append(name)
            write_json({}, out_dir / name)
    if (source / SUMMARY_JSON).is_file():
        summary = read_json(source / SUMMARY_JSON)
    else:
        summary = {
            "rows": rows,
            "retain_disjoint_rows": retain_disjoint_rows([split_file(out_dir, "retain_synth")]),
            "seed": None,
        }
    summary["imported_from"] = str(source)
    summary["absent_in_source"] = absent
    write_json(summary, out_dir / SUMMARY_JSON)
    return summary


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--benchmark", required=True, help="benchmark folder in the released layout"
    )
    parser.add_argument("--out-dir", required=True, help="this run's benchmark folder")


def run(args: argparse.Namespace) -> None:
    summary = import_benchmark(Path(args.benchmark), Path(args.out_dir))
    print(f"imported {args.benchmark}: {summary.get('rows')}")
