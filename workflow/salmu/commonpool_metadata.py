"""CommonPool metadata for ``salmu commonpool``: where it is, which rows one job downloads.

The metadata (parquet files: ``uid, url, text`` and optionally ``sha256``, ``face_bboxes``, ...)
is one table, the files in name order. ``--parts N`` cuts that table into N contiguous row ranges,
balanced by rows (the row counts come from the files' footers), and ``--part K`` reads only its
range: a job holds its own share of the metadata, never the pool's. Then the ``--uids`` subset and
the sensitive images' hashes filter it (``select_rows``).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from salmu.io import PARQUET_ERRORS, first_line, parquet_columns, unreadable
from salmu.parts import check_part

REQUIRED_COLUMNS = ["uid", "url", "text"]
BBOX_COLUMN = "face_bboxes"
HF_PREFIX = "hf-hub:"


def resolve_metadata(spec: str) -> list[Path]:
    """Parquet files of a file, a directory, or a cached/downloadable ``hf-hub:<dataset id>``."""
    if spec.startswith(HF_PREFIX):
        root = _hf_snapshot(spec[len(HF_PREFIX) :])
    else:
        root = Path(spec)
        if not root.exists():
            raise FileNotFoundError(f"{spec}: metadata not found")
        if root.is_file():
            return [root]
    files = sorted(root.rglob("*.parquet"))
    if not files:
        raise ValueError(f"{spec}: no *.parquet metadata files")
    return files


def _hf_snapshot(dataset_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        # Offline (HF_HUB_OFFLINE=1) this returns the cached snapshot or raises.
        path = snapshot_download(dataset_id, repo_type="dataset", allow_patterns="*.parquet")
    except (OSError, ValueError) as err:
        # Hub errors are OSError/ValueError subclasses with multi-line messages.
        raise ValueError(
            f"{HF_PREFIX}{dataset_id}: dataset not available (not cached, or the Hub refused: "
            f"{first_line(err)})"
        ) from None
    return Path(path)


def row_counts(files: list[Path]) -> list[int]:
    """Rows of each file, from its footer (no data read)."""
    import pyarrow.parquet as pq

    counts = []
    for path in files:
        try:
            counts.append(pq.ParquetFile(path).metadata.num_rows)
        except PARQUET_ERRORS as err:
            raise unreadable(path, "parquet file", err) from None
    return counts


def part_range(total: int, part: int, parts: int) -> tuple[int, int]:
    """Rows [start, stop) of part ``part`` of ``parts`` of a ``total``-row table."""
    check_part(part, parts)
    return total * part // parts, total * (part + 1) // parts


def load_metadata(
    files: list[Path], blur_faces: bool, part: int = 0, parts: int = 1
) -> tuple[pl.DataFrame, dict]:
    """The rows of one part: uid, url, text, sha256 (null when a file has none) and, for
    blurring, face_bboxes. Returns them and where they came from (files, row range)."""
    expected = REQUIRED_COLUMNS + ([BBOX_COLUMN] if blur_faces else [])
    counts = row_counts(files)
    start, stop = part_range(sum(counts), part, parts)
    frames, read_from, offset = [], [], 0
    for path, count in zip(files, counts):
        first = offset  # the file's first row in the whole table
        offset += count
        lo, hi = max(start, first), min(stop, offset)
        if lo >= hi:
            continue
        columns = parquet_columns(path)
        missing = [c for c in expected if c not in columns]
        if missing:
            raise ValueError(
                f"{path}: missing columns {missing}; CommonPool metadata needs {expected}"
                + (" (--blur-faces needs face_bboxes)" if BBOX_COLUMN in missing else "")
            )
        wanted = expected + (["sha256"] if "sha256" in columns else [])
        try:
            # Only this part's rows of the file: the scan reads the row groups they lie in.
            frame = pl.scan_parquet(path).select(wanted).slice(lo - first, hi - lo)
            frames.append(_normalise(frame.collect(), blur_faces))
        except PARQUET_ERRORS as err:
            raise unreadable(path, "parquet file", err) from None
        read_from.append(str(path))
    meta = pl.concat(frames) if frames else _normalise(_empty(expected), blur_faces)
    duplicated = meta.filter(pl.col("uid").is_duplicated())["uid"].unique().sort().to_list()
    if duplicated:
        raise ValueError(
            f"{files[0].parent}: duplicate uids in the metadata, e.g. {duplicated[:3]}"
        )
    source = {"files": read_from, "part": part, "parts": parts, "rows": [start, stop]}
    return meta, source


def _empty(columns: list[str]) -> pl.DataFrame:
    return pl.DataFrame({c: pl.Series([], dtype=pl.Null) for c in columns})


def _normalise(frame: pl.DataFrame, blur_faces: bool) -> pl.DataFrame:
    """One schema for every file, so that files with and without sha256 concatenate."""
    columns = [
        pl.col("uid").cast(pl.String),
        pl.col("url").cast(pl.String),
        pl.col("text").cast(pl.String),
        (pl.col("sha256") if "sha256" in frame.columns else pl.lit(None))
        .cast(pl.String)
        .str.to_lowercase()
        .alias("sha256"),
    ]
    if blur_faces:
        columns.append(pl.col(BBOX_COLUMN).cast(pl.List(pl.List(pl.Float64))))
    return frame.select(columns)


def read_uids(path: str | Path) -> set[str]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: uid list not found")
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def select_rows(
    meta: pl.DataFrame, uids: set[str] | None, forbidden: set[str], whole_pool: bool = True
) -> tuple[pl.DataFrame, dict]:
    """Keep the requested uids, drop rows whose crawl-time sha256 is a forbidden image.

    ``whole_pool``: ``meta`` is all of the metadata, so uids it lacks are absent from the pool
    (a part cannot tell: the merge counts them). An empty selection is an error only then."""
    counts = {"metadata_rows": meta.height, "uids_requested": None, "uids_not_in_metadata": 0}
    if uids is not None:
        counts["uids_requested"] = len(uids)
        missing = len(uids - set(meta["uid"].to_list())) if whole_pool else None
        counts["uids_not_in_metadata"] = missing
        meta = meta.filter(pl.col("uid").is_in(sorted(uids)))
    counts["rows_in_subset"] = meta.height
    known = pl.col("sha256").is_in(sorted(forbidden)).fill_null(False)
    counts["dropped_by_metadata_sha256"] = meta.filter(known).height
    rows = meta.filter(~known).drop("sha256")
    counts["rows_to_download"] = rows.height
    if rows.height == 0 and whole_pool:
        raise ValueError(
            "no metadata rows left to download after the uid subset / sha256 exclusion"
        )
    return rows, counts
