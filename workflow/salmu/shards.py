"""Webdataset training shards (the format open_clip_train and img2dataset speak).

One shard directory per training source holds ``00000.tar, 00001.tar, …``, a ``sizes.json`` that
open_clip_train reads for the sample count, and a ``manifest.json`` listing every sample's key and
image sha256 (so leakage can be checked by content, not by trust) and every tar's sha256 (so a
consumer can tell that the data changed, captions included). Tars are byte-deterministic
(fixed member order, mtime 0, no owner names). Each sample's ``.json`` holds its ``file_name`` and,
for forget shards, its ``generic_text`` (the generic-captions unlearning baseline trains on it).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tarfile
from pathlib import Path

import polars as pl

from salmu.io import (
    decode_image,
    file_sha256,
    iter_parquet,
    read_json,
    read_parquet,
    require_columns,
    write_json,
)
from salmu.sections.shards import ShardsSettings
from salmu.seeding import stream

MANIFEST = "manifest.json"
# Byte size of every tar, to tell a truncated shard at a glance.
BYTES = "bytes.json"


def sample_key(file_name: str) -> str:
    """Webdataset splits key from extension at the first dot, so dots in file names must go."""
    stem = (
        file_name.rsplit(".", 1)[0] if file_name.lower().endswith((".jpg", ".jpeg")) else file_name
    )
    return stem.replace(".", "_")


def image_bytes_column(frame: pl.DataFrame) -> list[bytes]:
    """Image bytes from a plain binary column or from the released HF Image struct."""
    column = frame["image"]
    if column.dtype == pl.Binary:
        return column.to_list()
    return column.struct.field("bytes").to_list()


def index_sources(paths: list[str]) -> pl.DataFrame:
    """``file_name, text`` of every row of the inputs (no image bytes), sorted by file_name."""
    frames = []
    for path in paths:
        require_columns(path, ["file_name", "text", "image"])
        image = pl.read_parquet_schema(path)["image"]
        if image != pl.Binary and not (
            isinstance(image, pl.Struct) and "bytes" in image.to_schema()
        ):
            raise ValueError(
                f"{path}: column 'image' is {image}; expected JPEG bytes (binary) or the "
                "released layout's image struct with 'bytes'"
            )
        frames.append(read_parquet(path, ["file_name", "text"], only=True))
    rows = pl.concat(frames)
    duplicated = rows.filter(pl.col("file_name").is_duplicated())["file_name"].unique().to_list()
    if duplicated:
        raise ValueError(f"inputs {paths} share file_names, e.g. {sorted(duplicated)[:3]}")
    return rows.sort("file_name")


def read_generic_captions(path: str | Path, file_names: list[str]) -> dict[str, str]:
    """file_name -> generic caption (``sensitive_set_generic_captions.json``), one per sample."""
    captions = read_json(path)
    if not isinstance(captions, dict):
        raise ValueError(f"{path}: expected a JSON object file_name -> generic caption")
    missing = [f for f in file_names if f not in captions]
    if missing:
        raise ValueError(
            f"{path}: no generic caption for {len(missing)} samples, e.g. {missing[:3]}"
        )
    return captions


class ImageSpool:
    """The inputs' decodable images, copied into one scratch file and read back by file_name:
    the shuffle then writes any shard from it while holding only offsets in memory."""

    def __init__(self, paths: list[str], scratch: Path) -> None:
        self.path = scratch
        self.offsets: dict[str, tuple[int, int]] = {}
        self.corrupt: list[str] = []
        try:
            with scratch.open("wb") as spool:
                for path in paths:
                    for batch in iter_parquet(path, ["file_name", "image"]):
                        for name, image in zip(batch["file_name"], image_bytes_column(batch)):
                            if decode_image(image) is None:
                                self.corrupt.append(name)
                                continue
                            self.offsets[name] = (spool.tell(), len(image))
                            spool.write(image)
        except BaseException:
            scratch.unlink(missing_ok=True)
            raise
        self._handle = scratch.open("rb")

    def read(self, file_name: str) -> bytes:
        offset, size = self.offsets[file_name]
        return os.pread(self._handle.fileno(), size, offset)

    def close(self) -> None:
        self._handle.close()
        self.path.unlink(missing_ok=True)


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def write_shards(
    sources: list[str],
    out_dir: str | Path,
    samples_per_shard: int,
    seed: int,
    generic_captions: str | Path | None = None,
) -> dict:
    """Write shuffled shards of the ``sources`` parquets (so each shard mixes all sources) and
    return the manifest.

    The order is a seeded permutation of the decodable rows sorted by file_name. The images are
    streamed: a first pass copies them into a scratch file beside the output (checking that each
    decodes), then each shard reads its samples back from it, so memory holds one batch of images
    and the samples' names, never the set."""
    out_dir = Path(out_dir)
    rows = index_sources(list(map(str, sources)))
    generic = None
    if generic_captions is not None:
        generic = read_generic_captions(generic_captions, rows["file_name"].to_list())
    if rows.height == 0:
        raise ValueError(f"{out_dir}: no samples to shard")
    out_dir.mkdir(parents=True, exist_ok=True)
    spool = ImageSpool(list(map(str, sources)), out_dir / "images.spool.tmp")
    try:
        return _write_from_spool(rows, spool, out_dir, samples_per_shard, seed, generic)
    finally:
        spool.close()


def _write_from_spool(rows, spool, out_dir, samples_per_shard, seed, generic) -> dict:
    corrupt = sorted(spool.corrupt)
    if corrupt:
        print(
            f"warning: skipped {len(corrupt)} samples whose image does not decode, "
            f"e.g. {corrupt[:3]}",
            file=sys.stderr,
        )
        rows = rows.filter(~pl.col("file_name").is_in(corrupt))
    if rows.height == 0:
        raise ValueError(f"{out_dir}: no decodable image among the samples")
    order = stream(seed, "shards").permutation(rows.height)
    rows = rows[order.tolist()]
    samples, sizes, shard_hashes, shard_bytes = [], {}, {}, {}
    for shard_index, start in enumerate(range(0, rows.height, samples_per_shard)):
        shard_name = f"{shard_index:05d}.tar"
        chunk = rows.slice(start, samples_per_shard)
        tmp = out_dir / (shard_name + ".tmp")
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for file_name, text in zip(chunk["file_name"], chunk["text"]):
                image = spool.read(file_name)
                key = sample_key(file_name)
                meta = {"file_name": file_name}
                if generic is not None:
                    meta["generic_text"] = generic[file_name]
                _add_member(tar, f"{key}.jpg", image)
                _add_member(tar, f"{key}.txt", text.encode())
                _add_member(tar, f"{key}.json", json.dumps(meta).encode())
                samples.append(
                    {
                        "key": key,
                        "file_name": file_name,
                        "sha256": hashlib.sha256(image).hexdigest(),
                        "shard": shard_name,
                    }
                )
        shard_hashes[shard_name] = file_sha256(tmp)
        shard_bytes[shard_name] = tmp.stat().st_size
        tmp.replace(out_dir / shard_name)
        sizes[shard_name] = chunk.height
    manifest = {
        "num_samples": rows.height,
        "shards": sorted(sizes),
        "shard_sha256": shard_hashes,
        "skipped_corrupt": corrupt,
        "samples": samples,
    }
    write_json(sizes, out_dir / "sizes.json")
    write_json(shard_bytes, out_dir / BYTES)
    write_json(manifest, out_dir / MANIFEST)
    return manifest


def verify_shards(shard_dir: str | Path) -> dict[str, int]:
    """Every shard is present and whole: a clear error naming the shard, rather than a webdataset
    worker that silently drops the rest of a truncated tar. Reads the small ``sizes.json`` and
    ``bytes.json`` only (the manifest lists every sample: too large at paper scale); a directory
    without ``bytes.json`` has each tar walked instead. Returns ``sizes.json``."""
    shard_dir = Path(shard_dir)
    sizes = read_json(shard_dir / "sizes.json")
    names = sorted(sizes)
    expected = read_json(shard_dir / BYTES) if (shard_dir / BYTES).is_file() else {}
    for name in names:
        path = shard_dir / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: shard listed in sizes.json is missing")
        size = path.stat().st_size
        if name in expected and size != expected[name]:
            raise ValueError(
                f"{path}: truncated or altered shard ({size} bytes, {BYTES} says "
                f"{expected[name]}); rebuild its directory"
            )
        if name not in expected:
            try:
                with tarfile.open(path) as tar:
                    for _ in tar:
                        pass
            except (tarfile.TarError, EOFError) as err:
                raise ValueError(f"{path}: unreadable tar shard ({err})") from None
    return sizes


def read_manifest(shard_dir: str | Path) -> dict:
    manifest = read_json(Path(shard_dir) / MANIFEST)
    for key in ("num_samples", "shards", "samples"):
        if key not in manifest:
            raise ValueError(f"{shard_dir}/{MANIFEST}: missing key '{key}'")
    return manifest


def shard_urls(shard_dir: str | Path) -> list[str]:
    manifest = read_manifest(shard_dir)
    return [str(Path(shard_dir) / name) for name in manifest["shards"]]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--inputs", nargs="+", required=True, help="parquet files (file_name, text, image)"
    )
    parser.add_argument("--out-dir", required=True)
    ShardsSettings.add_arguments(parser)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument(
        "--generic-captions", default=None, help="file_name -> generic caption JSON to attach"
    )


def run(args: argparse.Namespace) -> None:
    if args.samples_per_shard < 1:
        raise ValueError(f"--samples-per-shard must be >= 1, got {args.samples_per_shard}")
    manifest = write_shards(
        args.inputs, args.out_dir, args.samples_per_shard, args.seed, args.generic_captions
    )
    print(f"{args.out_dir}: {manifest['num_samples']} samples in {len(manifest['shards'])} shards")
