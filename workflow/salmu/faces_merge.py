"""``salmu faces-merge``: the faces table from its parts, and its contact sheet.

``salmu faces --part K --parts N`` renders one identity range per job (config ``faces.jobs``).
The merge streams the parts, in order, into one table with fixed row groups
(``salmu.io.ROWS_PER_GROUP``), so its bytes do not depend on N: the same as one job's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from salmu.face_sheet import contact_sheet_of
from salmu.faces import SCHEMA
from salmu.io import (
    RowGroupWriter,
    arrow_schema,
    ensure_parent,
    iter_parquet_in_order,
    parquet_columns,
)


def merge_parts(parts: list[Path], out: str | Path, schema: dict, key: str = "file_name") -> int:
    """Join ``parts`` (each sorted by ``key``) in the given order into ``out``; returns the rows.

    A part without the columns of ``schema``, or one whose rows do not come after the previous
    part's (parts out of order, overlapping ranges), is an error naming the file, and ``out`` is
    not written."""
    if not parts:
        raise ValueError("faces-merge: no parts given")
    last, last_part = None, None
    with RowGroupWriter(out, arrow_schema(schema)) as writer:
        for part in parts:
            missing = sorted(set(schema) - set(parquet_columns(part)))
            if missing:
                raise ValueError(f"{part}: missing columns {missing} (not a faces part?)")
            for batch in iter_parquet_in_order(part, list(schema), key):
                if last is not None and batch[key][0] <= last:
                    raise ValueError(
                        f"{part}: rows not in {key} order after {last_part} "
                        "(parts out of order, or overlapping identity ranges)"
                    )
                last, last_part = batch[key][-1], part
                writer.write(batch)
    return writer.rows


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--parts", nargs="+", required=True, help="parts, in identity order")
    parser.add_argument("--out", required=True, help="faces.parquet")
    parser.add_argument("--contact-sheet", default=None, help="optional PNG grid to eyeball")


def run(args: argparse.Namespace) -> None:
    rows = merge_parts([Path(p) for p in args.parts], args.out, SCHEMA)
    if args.contact_sheet:
        contact_sheet_of(args.out).save(ensure_parent(args.contact_sheet), format="PNG")
    print(f"faces-merge: {rows} images from {len(args.parts)} part(s) -> {args.out}")
