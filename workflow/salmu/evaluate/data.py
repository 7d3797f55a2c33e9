"""Load a benchmark directory in the released Hugging Face layout and build the derived splits.

The layout and the derived splits (the official ``load_benchmark_data``) are defined in
``salmu.released_layout``: sorted shard files, concatenated in that order, so per-row score lists
follow the official row order.

Every split table keeps a ``row`` column: the row's index in its *base* split (``BASE_OF``), so
image embeddings are computed once per base split and derived splits are index subsets.

Distractor pools: the official code calls ``np.random.choice(forget.text, 1000, replace=False)``
then ``np.random.choice(retain_disjoint.text, 1000, replace=False)`` on the global RNG. We draw
both, in that order, from ``np.random.RandomState(seed)``, which is bit-identical to those calls
made right after ``np.random.seed(seed)`` (our interpretation of where the official seed is set).

Image bytes are never held for a whole split: tables are read without the image column and images
are streamed shard by shard (``iter_split_images``) by the encoder.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from salmu.io import PARQUET_ERRORS, parquet_columns, read_json, read_parquet, unreadable
from salmu.released_layout import (
    CAPTIONS_JSON,
    FRAGILE_JSON,
    IDENTITIES_JSON,
    derive_splits,
    shard_paths,
)
from salmu.released_layout import SPLITS as BASE_SPLITS

# Derived split -> the released split its rows (and image embeddings) come from.
BASE_OF = {
    **{split: split for split in BASE_SPLITS},
    "retain_joint": "retain_synth",
    "retain_disjoint": "retain_synth",
    "fragile_set": "retain_synth",
    "forget_identity": "forget",
}
ALL_SPLITS = tuple(BASE_OF)
TABLE_COLUMNS = ("text", "identity_id", "file_name")
GENKNOW_COLUMNS = ("file_name", "label", "classname", "image")


class EvaluationWarning(UserWarning):
    """Something degraded the evaluation (empty split, capped pool) without making it invalid."""


@dataclass
class Benchmark:
    root: Path
    splits: dict[str, pl.DataFrame]  # columns: row, text, identity_id, file_name
    identities: dict
    captions: dict
    fragile_ids: list[str]
    forget_distractors: list[str] = field(default_factory=list)
    retain_distractors: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.root = Path(self.root)

    def sizes(self) -> dict[str, int]:
        return {name: self.splits[name].height for name in ALL_SPLITS}


# ----------------------------------------------------------------------------- parquet access
def read_split_table(root: str | Path, split: str) -> pl.DataFrame:
    """The split's rows without images: ``row, text, identity_id, file_name`` (shard order)."""
    frames = []
    for path in shard_paths(root, split):
        try:
            check_columns(path, TABLE_COLUMNS + ("image",))
            # Column projection: the image bytes (GBs for the real benchmark) are not read here.
            frame = read_parquet(path, list(TABLE_COLUMNS), only=True)
        except ValueError as err:
            raise ValueError(f"split {split!r}: {err}") from None
        # An all-null identity_id shard is typed Null; cast so shards concatenate.
        frames.append(frame.with_columns(pl.col(c).cast(pl.Utf8) for c in TABLE_COLUMNS))
    table = pl.concat(frames, how="vertical")
    if table["text"].null_count() or table["file_name"].null_count():
        raise ValueError(f"{root}: split {split!r} has null text or file_name values")
    return table.with_row_index("row")


def image_bytes(column: pa.Array | pa.ChunkedArray, where: str) -> list[bytes]:
    """Bytes of an image column: the HF Image struct ``{bytes, path}`` or plain binary."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_struct(column.type):
        column = column.field("bytes")
    if not (pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)):
        raise ValueError(f"{where}: image column has type {column.type}; expected binary or struct")
    values = column.to_pylist()
    for i, value in enumerate(values):
        if value is None:
            raise ValueError(
                f"{where}: row {i} of a batch has no image bytes (path-only images "
                "are not supported)"
            )
    return values


def check_columns(path: Path, wanted: tuple[str, ...]) -> None:
    names = parquet_columns(path)
    missing = [c for c in wanted if c not in names]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; has {names}")


def _parquet_batches(path: Path, batch_size: int, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """Record batches of a parquet file; a file damaged past its footer is named, not a trace."""
    try:
        yield from pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=columns)
    except PARQUET_ERRORS as err:
        raise unreadable(path, "parquet file", err) from None


def _iter_parquet_images(paths: list[Path], batch_size: int) -> Iterator[tuple[list, list]]:
    for path in paths:
        for batch in _parquet_batches(path, batch_size, ["file_name", "image"]):
            names = batch.column("file_name").to_pylist()
            yield names, image_bytes(batch.column("image"), str(path))


def iter_split_images(root: str | Path, split: str, batch_size: int) -> Iterator[tuple[list, list]]:
    """Yield ``(file_names, jpeg_bytes)`` batches in the same row order as ``read_split_table``."""
    try:
        yield from _iter_parquet_images(shard_paths(root, split), batch_size)
    except ValueError as err:
        raise ValueError(f"split {split!r}: {err}") from None


def files_fingerprint(paths: list[Path]) -> str:
    """Cheap identity of input files (name, size, mtime) so a regenerated input invalidates caches."""
    items = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in paths]
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- distractors
def draw_distractors(
    forget_texts: list[str], retain_texts: list[str], n: int, seed: int
) -> tuple[list[str], list[str]]:
    """Draw the two RetFail distractor pools (see module docstring for the RNG choice)."""
    if n < 0:
        raise ValueError(f"--distractors must be >= 0, got {n}")
    rng = np.random.RandomState(seed)
    pools = []
    for name, texts in (("forget", forget_texts), ("retain_disjoint", retain_texts)):
        k = n
        if n > len(texts):
            warnings.warn(
                f"--distractors {n} exceeds the {name} pool ({len(texts)} texts); "
                f"drawing {len(texts)}",
                EvaluationWarning,
                stacklevel=2,
            )
            k = len(texts)
        drawn = rng.choice(np.asarray(texts, dtype=object), k, replace=False)
        pools.append([str(t) for t in drawn])
    return pools[0], pools[1]


def load_benchmark(root: str | Path, distractors: int = 1000, seed: int = 42) -> Benchmark:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: benchmark directory not found")
    tables = {split: read_split_table(root, split) for split in BASE_SPLITS}
    identities = read_json(root / IDENTITIES_JSON)
    captions = read_json(root / CAPTIONS_JSON)
    fragile_ids = read_json(root / FRAGILE_JSON)
    for name, value, kind in (
        (IDENTITIES_JSON, identities, dict),
        (CAPTIONS_JSON, captions, dict),
        (FRAGILE_JSON, fragile_ids, list),
    ):
        if not isinstance(value, kind):  # ValueError: the CLI reports it as bad input
            raise ValueError(  # noqa: TRY004
                f"{root / name}: expected a JSON {kind.__name__}, got {type(value).__name__}"
            )
    splits = derive_splits(tables, [str(f) for f in fragile_ids])
    bench = Benchmark(root, splits, identities, captions, [str(f) for f in fragile_ids])
    bench.forget_distractors, bench.retain_distractors = draw_distractors(
        splits["forget"]["text"].to_list(),
        splits["retain_disjoint"]["text"].to_list(),
        distractors,
        seed,
    )
    return bench


# ----------------------------------------------------------------------------- metric texts
def identity_name(identities: dict, identity_id: str | None, root: Path | str = "") -> str:
    if identity_id is None:
        raise ValueError(
            f"{Path(root) / IDENTITIES_JSON}: a forget row has a null identity_id; "
            "cannot look up its name"
        )
    profile = identities.get(identity_id)
    if not isinstance(profile, dict) or not isinstance(profile.get("name"), str):
        raise ValueError(  # noqa: TRY004
            f"{Path(root) / IDENTITIES_JSON}: identity {identity_id!r} has no string 'name'"
        )
    return profile["name"]


def core_assoc_texts(bench: Benchmark) -> tuple[list[str], list[str]]:
    """Per forget row: ``"{name} {value}"`` and ``"{value} {name}"`` (docs/protocol.md §2.2, CoreAssoc).

    Name from identities_metadata.json (by identity_id), value from the row's entry in
    sensitive_set_captions_metadata.json (key ``value``).
    """
    where = bench.root / CAPTIONS_JSON
    name_value, value_name = [], []
    forget = bench.splits["forget"]
    for identity_id, file_name in zip(forget["identity_id"], forget["file_name"], strict=True):
        name = identity_name(bench.identities, identity_id, bench.root)
        entry = bench.captions.get(file_name)
        if not isinstance(entry, dict) or "value" not in entry:
            raise ValueError(f"{where}: no entry with a 'value' key for forget image {file_name!r}")
        value = entry["value"]
        if isinstance(value, list):  # multi-valued fields (emails): the first one is the one shown
            value = value[0] if value else ""
        if not isinstance(value, (str, int, float)):
            raise ValueError(  # noqa: TRY004
                f"{where}: {file_name!r} value has type {type(value).__name__}; expected a string"
            )
        name_value.append(f"{name} {value}")
        value_name.append(f"{value} {name}")
    return name_value, value_name


def idzsc_classes(bench: Benchmark) -> tuple[list[str], list[str], np.ndarray]:
    """Candidate identities for IdZSC: the forget_identity identities, sorted by id.

    Returns ``(identity_ids, names, labels)`` with ``labels[i]`` the class of forget_identity row i.
    """
    ids = bench.splits["forget_identity"]["identity_id"].to_list()
    if any(i is None for i in ids):
        identity_name(bench.identities, None, bench.root)  # raises, naming the problem
    classes = sorted(set(ids))
    names = [identity_name(bench.identities, i, bench.root) for i in classes]
    index = {identity_id: k for k, identity_id in enumerate(classes)}
    return classes, names, np.asarray([index[i] for i in ids], dtype=np.int64)


# ----------------------------------------------------------------------------- GenKnow
def read_genknow_table(path: str | Path) -> tuple[pl.DataFrame, list[str]]:
    """GenKnow rows (without images) and the class names; label indexes the sorted class names."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: GenKnow parquet not found (--genknow)")
    check_columns(path, GENKNOW_COLUMNS)
    table = read_parquet(path, ["file_name", "label", "classname"], only=True)
    classnames = sorted(table["classname"].unique().to_list())
    expected = table["classname"].replace_strict(classnames, list(range(len(classnames))))
    if not (expected == table["label"].cast(pl.Int64)).all():
        raise ValueError(
            f"{path}: column 'label' must be the index of 'classname' in the sorted "
            "unique class names"
        )
    return table, classnames


def iter_genknow_images(path: str | Path, batch_size: int) -> Iterator[tuple[list, list]]:
    yield from _iter_parquet_images([Path(path)], batch_size)
