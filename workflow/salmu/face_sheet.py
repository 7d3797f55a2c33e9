"""The faces contact sheet: a grid of the first identities' images, for a person to look at."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from PIL import Image

from salmu.io import iter_parquet, open_image, read_parquet


def contact_sheet(
    frame: pl.DataFrame, n_identities: int = 8, n_images: int = 8, cell: int | None = None
) -> Image.Image:
    """A grid, one row per identity (personas first, then anonymous), for a person to look at."""
    frame = frame.with_columns(pl.col("file_name").str.slice(0, 8).alias("_who"))
    who = frame["_who"].unique(maintain_order=True).to_list()[:n_identities]
    cell = cell or int(max(frame["width"].max(), frame["height"].max()))
    gap = 2
    sheet = Image.new(
        "RGB", (n_images * (cell + gap) + gap, len(who) * (cell + gap) + gap), (255, 255, 255)
    )
    for r, ident in enumerate(who):
        images = frame.filter(pl.col("_who") == ident).sort("image_idx")["image"].to_list()
        for c, data in enumerate(images[:n_images]):
            img = open_image(data)
            img.thumbnail((cell, cell), Image.LANCZOS)
            x = gap + c * (cell + gap) + (cell - img.width) // 2
            y = gap + r * (cell + gap) + (cell - img.height) // 2
            sheet.paste(img, (x, y))
    return sheet


def contact_sheet_of(path: str | Path, n_identities: int = 8) -> Image.Image:
    """The contact sheet of a faces file, read in batches: the cell size from the whole table's
    sizes (two integer columns), the images of the first ``n_identities`` people only."""
    sizes = read_parquet(path, columns=["width", "height"], only=True)
    cell = int(max(sizes["width"].max(), sizes["height"].max())) if sizes.height else 1
    who: list[str] = []
    head = []
    for batch in iter_parquet(path, columns=["file_name", "image_idx", "width", "height", "image"]):
        people = batch["file_name"].str.slice(0, 8)
        for person in people.unique(maintain_order=True).to_list():
            if person not in who and len(who) < n_identities:
                who.append(person)
        head.append(batch.filter(people.is_in(who)))
        if not people.is_in(who).all():  # the file has gone past the first n people
            break
    if not head:
        return Image.new("RGB", (2, 2), (255, 255, 255))  # no images: an empty sheet
    frame = pl.concat(head)
    return contact_sheet(frame, n_identities=n_identities, cell=cell)
