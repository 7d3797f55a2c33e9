"""Deterministic writers and readers shared by every stage.

Byte-identical regeneration is a contract (same seed + config -> same files), so every table and
JSON the pipeline writes goes through these helpers: stable column order, no timestamps, sorted keys.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import polars as pl
from PIL import Image


def ensure_parent(path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_json(obj: Any, path: str | os.PathLike) -> None:
    """Write JSON with sorted keys and a trailing newline, atomically (tmp file + rename)."""
    path = ensure_parent(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    tmp.replace(path)


def first_line(err: BaseException) -> str:
    """First sentence of the first line of an error message (library messages run long)."""
    text = str(err).strip()
    line = text.splitlines()[0] if text else type(err).__name__
    return line.split(". ", 1)[0]


# What polars and pyarrow raise on a damaged file (pyarrow's errors subclass these two).
PARQUET_ERRORS = (pl.exceptions.PolarsError, OSError, ValueError)


def unreadable(path: str | os.PathLike, kind: str, err: BaseException) -> ValueError:
    """The one-line error for a damaged input: which file, what it should be, what was wrong."""
    return ValueError(f"{path}: unreadable {kind} ({first_line(err)})")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not valid JSON (not UTF-8 text: {err.reason})") from None


def read_yaml(path: str | os.PathLike, what: str = "file") -> Any:
    """Parse a YAML resource; a missing or malformed file is an error naming the path."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        if mark is None:
            raise ValueError(f"{path}: not valid YAML ({first_line(err)})") from None
        problem = " ".join(filter(None, [getattr(err, "context", None), err.problem]))
        raise ValueError(
            f"{path}:{mark.line + 1}:{mark.column + 1}: not valid YAML ({problem})"
        ) from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not valid YAML (not UTF-8 text: {err.reason})") from None


def write_parquet(frame: pl.DataFrame, path: str | os.PathLike) -> None:
    """Write a parquet file deterministically (no statistics timestamps, fixed compression)."""
    path = ensure_parent(path)
    tmp = path.with_name(path.name + ".tmp")
    frame.write_parquet(tmp, compression="zstd", compression_level=3, statistics=False)
    tmp.replace(path)


def parquet_columns(path: str | os.PathLike) -> list[str]:
    """Column names from the file's footer (no data read); a damaged file is named."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        return list(pl.read_parquet_schema(path))
    except PARQUET_ERRORS as err:
        raise unreadable(path, "parquet file", err) from None


def require_columns(path: str | os.PathLike, columns: list[str]) -> None:
    """An error naming the file and the missing columns unless it has all of ``columns``."""
    names = parquet_columns(path)
    missing = [c for c in columns if c not in names]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; has {names}")


def read_parquet(
    path: str | os.PathLike, columns: list[str] | None = None, only: bool = False
) -> pl.DataFrame:
    """The table, checked for ``columns``; ``only``: read just those (column projection)."""
    path = Path(path)
    if columns is not None:
        require_columns(path, columns)
    elif not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        return pl.read_parquet(path, columns=columns if only else None)
    except PARQUET_ERRORS as err:
        raise unreadable(path, "parquet file", err) from None


def join_parquet(paths: list[Path], target: str | os.PathLike) -> None:
    """One parquet file from several, rows in the given order, record batch by record batch (a
    split is never held in memory whole); each batch is cast to the first file's schema, so
    shards that typed an all-null column differently still join."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(paths[0])
    target = ensure_parent(target)
    tmp = target.with_name(target.name + ".tmp")
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for path in paths:
            for batch in pq.ParquetFile(path).iter_batches(columns=list(schema.names)):
                writer.write_table(pa.Table.from_batches([batch]).cast(schema))
    tmp.replace(target)


# Rows per row group of the tables written incrementally: the groups do not depend on how the
# rows arrived (one job or many parts), so a merge of parts is byte-identical to a single run.
ROWS_PER_GROUP = 512


class RowGroupWriter:
    """Write a parquet file frame by frame, holding at most one row group in memory.

    Every frame is cast to ``schema`` and buffered; full groups of ``rows_per_group`` rows are
    written as they fill, the remainder on ``close``. The file appears atomically (tmp + rename)
    only when the writer closes without an error, so a killed job leaves no half table under the
    final name.
    """

    def __init__(self, path, schema, rows_per_group: int = ROWS_PER_GROUP) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._pa = pa
        self.path = ensure_parent(path)
        self._tmp = self.path.with_name(self.path.name + ".tmp")
        self.schema = schema
        self.rows_per_group = rows_per_group
        self.rows = 0
        self._buffer: list = []
        self._buffered = 0
        self._writer = pq.ParquetWriter(
            self._tmp, schema, compression="zstd", compression_level=3, write_statistics=False
        )

    def write(self, frame) -> None:
        """Append rows: a polars DataFrame or a pyarrow Table / RecordBatch."""
        table = frame.to_arrow() if isinstance(frame, pl.DataFrame) else frame
        if isinstance(table, self._pa.RecordBatch):
            table = self._pa.Table.from_batches([table])
        if table.num_rows == 0:
            return
        self._buffer.append(table.select(self.schema.names).cast(self.schema))
        self._buffered += table.num_rows
        if self._buffered >= self.rows_per_group:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        pending = self._pa.concat_tables(self._buffer) if self._buffer else None
        self._buffer, self._buffered = [], 0
        if pending is None:
            return
        start = 0
        while pending.num_rows - start >= self.rows_per_group:
            self._writer.write_table(pending.slice(start, self.rows_per_group))
            start += self.rows_per_group
        rest = pending.slice(start)
        if final:
            if rest.num_rows:
                self._writer.write_table(rest)
        elif rest.num_rows:
            self._buffer, self._buffered = [rest], rest.num_rows
        self.rows += pending.num_rows - (0 if final else rest.num_rows)

    def close(self) -> None:
        self._flush(final=True)
        self._writer.close()
        self._tmp.replace(self.path)

    def abort(self) -> None:
        self._writer.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> RowGroupWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def arrow_schema(schema: dict):
    """The pyarrow schema polars gives a frame of ``schema`` (column name -> polars dtype)."""
    return pl.DataFrame(schema=schema).to_arrow().schema


def iter_parquet(path: str | os.PathLike, columns: list[str] | None = None, batch_rows: int = 256):
    """The file's rows as polars frames of at most ``batch_rows`` rows (column projection with
    ``columns``): a reader that never holds the whole table."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        handle = pq.ParquetFile(path)
        for batch in handle.iter_batches(batch_size=batch_rows, columns=columns):
            yield pl.from_arrow(batch)
    except PARQUET_ERRORS as err:
        raise unreadable(path, "parquet file", err) from None


def iter_parquet_in_order(
    path: str | os.PathLike, columns: list[str], key: str = "file_name", batch_rows: int = 256
):
    """``iter_parquet``, checking that the rows come in ``key`` order: a streamed join relies on
    it, and a table out of order is an error naming the file, not a silently wrong output."""
    last = None
    for batch in iter_parquet(path, columns, batch_rows):
        if batch.height == 0:
            continue
        keys = batch[key]
        if not keys.is_sorted() or (last is not None and keys[0] <= last):
            raise ValueError(f"{path}: rows not in {key} order")
        last = keys[-1]
        yield batch


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, read a megabyte at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_torch(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` atomically, through a file handle: given a path, torch names the archive's
    records after the file, so the same checkpoint saved under two names had two sha256s."""
    import torch

    path = ensure_parent(path)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as handle:
        torch.save(obj, handle)
    tmp.replace(path)


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    """Encode an image as baseline JPEG; PIL's encoder is deterministic for fixed settings."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality, optimize=False)
    return buffer.getvalue()


def open_image(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def decode_image(data: bytes) -> Image.Image | None:
    """The decoded RGB image, or None when the bytes are not a readable image (corrupt, truncated,
    not an image): callers count and skip those instead of crashing deep in a loader."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
        return image.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
