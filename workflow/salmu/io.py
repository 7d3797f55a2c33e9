"""Deterministic writers and readers shared by every stage.

Byte-identical regeneration is a contract (same seed + config -> same files), so every table and
JSON the pipeline writes goes through these helpers: stable column order, no timestamps, sorted keys.
"""

from __future__ import annotations

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


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def read_yaml(path: str | os.PathLike, what: str = "file") -> Any:
    """Parse a YAML resource; a missing or malformed file is an error naming the path."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from None


def write_parquet(frame: pl.DataFrame, path: str | os.PathLike) -> None:
    """Write a parquet file deterministically (no statistics timestamps, fixed compression)."""
    path = ensure_parent(path)
    tmp = path.with_name(path.name + ".tmp")
    frame.write_parquet(tmp, compression="zstd", compression_level=3, statistics=False)
    tmp.replace(path)


def read_parquet(path: str | os.PathLike, columns: list[str] | None = None) -> pl.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    frame = pl.read_parquet(path)
    if columns is not None:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}; has {frame.columns}")
    return frame


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
