"""The benchmark directory as the official release lays it out (docs/protocol.md §1.3, §1.4).

``data/{split}-*.parquet`` holds the four released splits (shards sorted by name, concatenated in
that order) and the metadata JSONs sit at the root. The splits the official ``load_benchmark_data``
derives from them are built here too, so the pipeline's writer (``salmu splits``), its reader (the
evaluator), the dataset card and the release check all share one definition.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the workflow reads the names at parse time; polars loads only to derive
    import polars as pl

SPLITS = ("forget", "holdout_association", "holdout_identity", "retain_synth")
SENSITIVE_SPLITS = ("forget", "holdout_association", "holdout_identity")
DERIVED_SPLITS = ("retain_joint", "retain_disjoint", "fragile_set", "forget_identity")

IDENTITIES_JSON = "identities_metadata.json"
CAPTIONS_JSON = "sensitive_set_captions_metadata.json"
GENERIC_CAPTIONS_JSON = "sensitive_set_generic_captions.json"
FRAGILE_JSON = "fragile_set_ids.json"
FRAGILE_SCORES_JSON = "fragile_set_all_similarities.json"
SUMMARY_JSON = "splits_summary.json"  # written by this pipeline only, not in the release
# The metadata every reader needs; the others are written by the pipeline and may be absent.
REQUIRED_JSONS = (IDENTITIES_JSON, CAPTIONS_JSON, FRAGILE_JSON)
METADATA_JSONS = (
    IDENTITIES_JSON,
    CAPTIONS_JSON,
    GENERIC_CAPTIONS_JSON,
    FRAGILE_JSON,
    FRAGILE_SCORES_JSON,
    SUMMARY_JSON,
)


def split_file(root: str | Path, split: str) -> Path:
    """Where this pipeline writes a split: one shard, ``data/<split>-00000-of-00001.parquet``."""
    return Path(root) / "data" / f"{split}-00000-of-00001.parquet"


def shard_paths(root: str | Path, split: str) -> list[Path]:
    """Sorted shard files of one released split; a missing split is an error, not an empty one."""
    pattern = f"{split}-*.parquet"
    paths = sorted((Path(root) / "data").glob(pattern))
    if not paths:
        raise FileNotFoundError(
            f"{Path(root) / 'data' / pattern}: no shard files for split {split!r}"
        )
    return paths


def derive_splits(
    tables: dict[str, pl.DataFrame], fragile_ids: list[str]
) -> dict[str, pl.DataFrame]:
    """Add the four derived splits to the four released ones, exactly as the official loader.

    - ``retain_joint``    = retain_synth rows whose identity_id is set and is a forget identity;
    - ``retain_disjoint`` = retain_synth rows whose identity_id is null;
    - ``fragile_set``     = retain_disjoint rows whose file_name is in ``fragile_set_ids.json``;
    - ``forget_identity`` = forget rows whose identity_id is not a holdout_association identity.

    The tables need the columns ``identity_id`` and ``file_name``; others are kept.
    """
    import polars as pl

    forget, retain = tables["forget"], tables["retain_synth"]
    forget_ids = forget["identity_id"].drop_nulls().unique().to_list()
    holdout_assoc_ids = tables["holdout_association"]["identity_id"].drop_nulls().unique().to_list()
    ident = pl.col("identity_id")
    out = dict(tables)
    out["retain_joint"] = retain.filter(ident.is_not_null() & ident.is_in(forget_ids))
    out["retain_disjoint"] = retain.filter(ident.is_null())
    out["fragile_set"] = out["retain_disjoint"].filter(pl.col("file_name").is_in(fragile_ids))
    # pandas' ~isin keeps null ids; polars' is_in gives null there, so fill with False to match.
    out["forget_identity"] = forget.filter(~ident.is_in(holdout_assoc_ids).fill_null(False))
    return out


def split_sizes(paths: list[Path]) -> dict[str, int]:
    """``num_examples`` and ``num_bytes`` of a split for a dataset card's ``dataset_info``, read
    from the parquet footers: bytes are the uncompressed column data, close to the Arrow size
    ``datasets`` itself records."""
    import pyarrow.parquet as pq

    rows = size = 0
    for path in paths:
        meta = pq.ParquetFile(path).metadata
        rows += meta.num_rows
        size += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return {"num_examples": rows, "num_bytes": size}


def retain_disjoint_rows(paths: list[Path]) -> int:
    """Rows of retain_synth without an identity: the retain-side RetFail distractor pool."""
    import pyarrow.parquet as pq

    return sum(pq.read_table(p, columns=["identity_id"])["identity_id"].null_count for p in paths)
