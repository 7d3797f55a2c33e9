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
import sys
import tarfile
from pathlib import Path

import polars as pl

from salmu.io import decode_image, read_json, read_parquet, write_json
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


def load_sources(paths: list[str]) -> pl.DataFrame:
    frames = []
    for path in paths:
        frame = read_parquet(path, ["file_name", "text", "image"])
        frames.append(
            pl.DataFrame(
                {
                    "file_name": frame["file_name"],
                    "text": frame["text"],
                    "image": pl.Series(image_bytes_column(frame), dtype=pl.Binary),
                }
            )
        )
    rows = pl.concat(frames)
    duplicated = rows.filter(pl.col("file_name").is_duplicated())["file_name"].unique().to_list()
    if duplicated:
        raise ValueError(f"inputs {paths} share file_names, e.g. {sorted(duplicated)[:3]}")
    return rows.sort("file_name")


def attach_generic_captions(rows: pl.DataFrame, path: str | Path) -> pl.DataFrame:
    """Add ``generic_text`` from a file_name -> caption JSON (``sensitive_set_generic_captions.json``)."""
    captions = read_json(path)
    if not isinstance(captions, dict):
        raise ValueError(f"{path}: expected a JSON object file_name -> generic caption")
    missing = [f for f in rows["file_name"] if f not in captions]
    if missing:
        raise ValueError(
            f"{path}: no generic caption for {len(missing)} samples, e.g. {missing[:3]}"
        )
    return rows.with_columns(
        pl.Series("generic_text", [captions[f] for f in rows["file_name"]], dtype=pl.String)
    )


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def write_shards(
    rows: pl.DataFrame, out_dir: str | Path, samples_per_shard: int, seed: int
) -> dict:
    """Write shuffled shards (so each shard mixes all sources) and return the manifest."""
    if rows.height == 0:
        raise ValueError(f"{out_dir}: no samples to shard")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, corrupt = drop_undecodable(rows)
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
            for row in chunk.iter_rows(named=True):
                file_name, text, image = row["file_name"], row["text"], row["image"]
                key = sample_key(file_name)
                meta = {"file_name": file_name}
                if row.get("generic_text") is not None:
                    meta["generic_text"] = row["generic_text"]
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
        shard_hashes[shard_name] = hashlib.sha256(tmp.read_bytes()).hexdigest()
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


def drop_undecodable(rows: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """Rows whose image bytes do not decode are counted, warned about and left out."""
    bad = [name for name, image in zip(rows["file_name"], rows["image"]) if not decode_image(image)]
    if bad:
        print(
            f"warning: skipped {len(bad)} samples whose image does not decode, e.g. {bad[:3]}",
            file=sys.stderr,
        )
        rows = rows.filter(~pl.col("file_name").is_in(bad))
    return rows, bad


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
    rows = load_sources(args.inputs)
    if args.generic_captions:
        rows = attach_generic_captions(rows, args.generic_captions)
    manifest = write_shards(rows, args.out_dir, args.samples_per_shard, args.seed)
    print(f"{args.out_dir}: {manifest['num_samples']} samples in {len(manifest['shards'])} shards")
