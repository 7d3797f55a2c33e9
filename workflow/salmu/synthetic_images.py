"""Photo-like JPEGs and shard directories of them, for the benchmarks that need image data
without a dataset (``salmu feed-bench``, ``salmu gpu-check``).

An image is a few random colour patches, smoothly upsampled, with grain: it compresses and decodes
about like a photograph of its size (a 512-px image is ~90 KB at quality 90), where pure noise
would be several times larger and slower to decode.
"""

from __future__ import annotations

from pathlib import Path


def photo_like(rng, width: int, height: int):
    import numpy as np
    from PIL import Image

    patches = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(patches).resize((width, height), Image.BICUBIC))
    grain = rng.normal(0, 8, size=smooth.shape)
    return Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8))


def image_shards(
    directory: Path,
    images: int,
    size: int,
    per_shard: int | None = None,
    seed: int = 0,
    generic: bool = False,
) -> Path:
    """``directory/shards``: ``images`` photo-like JPEGs, ``size`` px on the longest side (the
    other side drawn in [size/2, size]), captioned, ``per_shard`` to a tar (default: one tar).
    ``generic``: also a generic caption per image, as forget shards carry."""
    import numpy as np
    import polars as pl

    from salmu.io import jpeg_bytes, write_json, write_parquet
    from salmu.shards import write_shards

    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {"file_name": [], "text": [], "image": []}
    for i in range(images):
        short = int(rng.integers(size // 2, size + 1))
        width, height = (size, short) if i % 2 else (short, size)
        rows["file_name"].append(f"synthetic_{i:06d}.jpg")
        rows["text"].append(f"a photo of synthetic scene number {i}")
        rows["image"].append(jpeg_bytes(photo_like(rng, width, height)))
    directory = Path(directory)
    write_parquet(pl.DataFrame(rows), directory / "images.parquet")
    captions = None
    if generic:
        captions = directory / "generic.json"
        write_json({name: "a photo of a scene" for name in rows["file_name"]}, captions)
    out = directory / "shards"
    write_shards([directory / "images.parquet"], out, per_shard or images, seed, captions)
    return out
