"""The per-row checks of one faces part as a table, and the stage's outputs from those tables.

``salmu face-filter`` checks one faces part (steps 1 and 2 look at each person's own rows only)
and can write its checks as a small table (no images). ``salmu face-filter-merge`` joins the
checks of every part, applies step 3 and writes the kept rows by streaming the faces parts again:
neither ever holds more than a row group of images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from salmu.face_filter.decisions import Decisions
from salmu.io import RowGroupWriter, iter_parquet, write_parquet

META_COLUMNS = ("file_name", "person", "identity_id", "kind", "image_idx")
EMBED_BATCH_ROWS = 256


def embed_file(path: str | Path, embed: Callable[[Sequence[bytes]], np.ndarray]) -> np.ndarray:
    """Embeddings of the file's images, read ``EMBED_BATCH_ROWS`` at a time."""
    out = [
        embed(batch["image"].to_list()) for batch in iter_parquet(path, ["image"], EMBED_BATCH_ROWS)
    ]
    out = [e for e in out if len(e)]
    return np.concatenate(out) if out else np.zeros((0, 1))


def checks_table(
    meta: pl.DataFrame, decisions: Decisions, expected: dict[str, list[str]]
) -> pl.DataFrame:
    """One row per image: who it is, its similarity, and what steps 1-2 found."""
    columns = {
        **{c: meta[c] for c in META_COLUMNS},
        "similarity": pl.Series(decisions.similarity, dtype=pl.Float64),
        "is_reference": pl.Series(decisions.is_reference, dtype=pl.Boolean),
        "reasons": pl.Series(decisions.reasons, dtype=pl.List(pl.String)),
    }
    for attribute, readings in decisions.readings.items():
        columns[f"expected_{attribute}"] = pl.Series(expected[attribute], dtype=pl.String)
        columns[f"reading_{attribute}"] = pl.Series(readings, dtype=pl.String)
    return pl.DataFrame(columns)


def write_checks(table: pl.DataFrame, path: str | Path) -> None:
    write_parquet(table, path)


def join_checks(
    tables: list[pl.DataFrame], attributes: Sequence[str]
) -> tuple[pl.DataFrame, Decisions, dict[str, list[str]]]:
    """``(meta, decisions of steps 1-2, expected classes)`` of the parts' checks, in order."""
    table = pl.concat(tables, how="vertical_relaxed")
    missing = [f"{k}_{a}" for a in attributes for k in ("expected", "reading")]
    missing = [c for c in missing if c not in table.columns]
    if missing:
        raise ValueError(
            f"checks lack {missing}: they were made without the demographic checks now configured"
        )
    decisions = Decisions(
        similarity=table["similarity"].to_numpy(),
        is_reference=table["is_reference"].to_numpy(),
        reasons=[list(r) for r in table["reasons"].to_list()],
        readings={a: table[f"reading_{a}"].to_list() for a in attributes},
    )
    expected = {a: table[f"expected_{a}"].to_list() for a in attributes}
    return table.select(META_COLUMNS), decisions, expected


def write_kept(
    faces_parts: list[Path], file_names: list[str], keep: np.ndarray, out: str | Path
) -> int:
    """Stream the faces parts into ``out``, keeping the rows ``keep`` marks. ``file_names`` are
    the checked rows' names in order: a part that does not line up with them is an error."""
    import pyarrow.parquet as pq

    schema = pq.read_schema(faces_parts[0])
    row = 0
    with RowGroupWriter(out, schema) as writer:
        for part in faces_parts:
            for batch in iter_parquet(part, batch_rows=EMBED_BATCH_ROWS):
                names = batch["file_name"].to_list()
                if names != file_names[row : row + len(names)]:
                    raise ValueError(
                        f"{part}: its rows do not match the checks at row {row} (checks and "
                        "faces parts from different runs, or given in another order)"
                    )
                writer.write(batch.filter(pl.Series(keep[row : row + len(names)])))
                row += len(names)
        if row != len(file_names):
            raise ValueError(f"faces parts hold {row} rows, the checks {len(file_names)}")
    return writer.rows
