"""Identity-consistent face images: ``salmu faces``.

Every identity (a persona, or an anonymous person who is not a persona) gets a stable *look*: named
traits such as skin tone, hair colour and style, glasses, beard and face shape. Every image of that
identity renders the look under a fresh per-image *variation* (pose, zoom, lighting, background,
shirt, aspect ratio, noise). The variation must be real but must not swamp identity: the tiny tier's
CLIP sees 32x32 pixels and still has to tell the identities apart, so that a model trained on
"name <-> face" captions leaks the association.

``salmu.look_draws`` draws the looks and variations; this module owns the per-image plan (file
names, aspects, variations, seeds), the table, the contact sheet and the CLI. Rendering goes
through the backend interface in ``salmu.face_backends`` (chosen by name): the offline ``procedural`` backend draws vector faces with
Pillow; the ``diffusers`` backend makes an anchor portrait per identity with a text-to-image model
and identity-preserving variants with an IP-Adapter. Looks and variations are backend-independent
named values, so a generative backend turns the same dicts into prompts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import polars as pl
from PIL import Image

from salmu.face_backends import (
    FaceBackend,
    Identity,
    PlannedImage,
    backend_class,
    get_backend,
)
from salmu.face_sheet import contact_sheet_of
from salmu.io import (
    RowGroupWriter,
    arrow_schema,
    ensure_parent,
    jpeg_bytes,
    read_parquet,
)
from salmu.look_draws import (
    AGE_BANDS,
    ANONYMOUS_BASE,
    GENDERS,
    anonymous_people,
    assign_looks,
    draw_variation,
)
from salmu.parts import add_part_arguments, check_part
from salmu.sections.faces import FaceDiffusersSettings, FacesSettings
from salmu.seeding import derive_seed, stream


def image_size(aspect: float, size: int) -> tuple[int, int]:
    """(width, height) with the longest side equal to ``size``."""
    if aspect >= 1.0:
        return size, max(1, round(size / aspect))
    return max(1, round(size * aspect)), size


def face_file_name(identity_number: int, image_idx: int, aspect: float) -> str:
    return f"{identity_number:08d}_{image_idx:03d}_ar-{aspect:.2f}.jpg"


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------

COLUMNS = (
    "file_name",
    "identity_id",
    "kind",
    "image_idx",
    "aspect",
    "width",
    "height",
    "image",
    "look",
)
SCHEMA = {
    "file_name": pl.String,
    "identity_id": pl.String,
    "kind": pl.String,
    "image_idx": pl.Int32,
    "aspect": pl.Float64,
    "width": pl.Int32,
    "height": pl.Int32,
    "image": pl.Binary,
    "look": pl.String,
}


def load_personas(path: str | Path) -> list[tuple[int, str, str]]:
    """Read ``(identity_number, gender, age_band)`` per persona, sorted by identity, validated."""
    frame = read_parquet(path, columns=["identity_id", "gender", "age_band"])
    people = []
    for ident, gender, age in frame.select("identity_id", "gender", "age_band").iter_rows():
        if not isinstance(ident, str) or len(ident) != 8 or not ident.isdigit():
            raise ValueError(f"{path}: identity_id {ident!r} is not an 8-digit string")
        if int(ident) >= ANONYMOUS_BASE:
            raise ValueError(
                f"{path}: identity_id {ident} collides with the anonymous range "
                f"(>= {ANONYMOUS_BASE})"
            )
        if gender not in GENDERS:
            raise ValueError(f"{path}: identity {ident}: gender {gender!r} not in {list(GENDERS)}")
        if age not in AGE_BANDS:
            raise ValueError(f"{path}: identity {ident}: age_band {age!r} not in {list(AGE_BANDS)}")
        people.append((int(ident), gender, age))
    numbers = [n for n, _, _ in people]
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"{path}: identity_id values are not unique")
    return sorted(people)


def image_plan(
    personas: list[tuple[int, str, str]],
    n_sensitive: int,
    n_generic: int,
    anonymous: list[tuple[int, str, str]],
    n_anonymous_images: int,
) -> list[tuple[int, bool, str, int]]:
    """Every image to render as ``(identity_number, is_persona, kind, image_idx)``."""
    plan = []
    for number, _, _ in personas:
        plan += [(number, True, "sensitive", i) for i in range(n_sensitive)]
        plan += [(number, True, "generic", i) for i in range(n_sensitive, n_sensitive + n_generic)]
    for number, _, _ in anonymous:
        plan += [(number, False, "anonymous", i) for i in range(n_anonymous_images)]
    return plan


def load_countries(path: str | Path) -> dict[int, str]:
    """Country per persona number, when the personas table has a ``country`` column.

    Only generative backends use it (in prompts); the procedural renderer ignores it.
    """
    frame = read_parquet(path, columns=["identity_id"])
    if "country" not in frame.columns:
        return {}
    return {
        int(ident): country
        for ident, country in frame.select("identity_id", "country").iter_rows()
        if isinstance(country, str) and country.strip()
    }


def plan_image(
    number: int,
    is_persona: bool,
    kind: str,
    image_idx: int,
    size: int,
    aspect_range: tuple[float, float],
    seed: int,
) -> PlannedImage:
    """Decide one image: its size (aspect drawn first), its variation and its sampling seed."""
    rng = stream(seed, "faces", "image", f"{number:08d}", image_idx)
    width, height = image_size(float(rng.uniform(*aspect_range)), size)
    variation = draw_variation(rng)
    return PlannedImage(
        number=number,
        is_persona=is_persona,
        kind=kind,
        image_idx=image_idx,
        width=width,
        height=height,
        variation=variation,
        # A separate named stream: drawing it never shifts the look/variation draws above.
        seed=derive_seed(seed, "faces", "render", f"{number:08d}", image_idx),
    )


def make_identity(
    number: int, is_persona: bool, gender: str, age_band: str, country: str | None, seed: int
) -> Identity:
    return Identity(
        number=number,
        is_persona=is_persona,
        gender=gender,
        age_band=age_band,
        country=country,
        anchor_seed=derive_seed(seed, "faces", "anchor", f"{number:08d}"),
    )


def render_identity(
    backend: FaceBackend, look: dict[str, Any], identity: Identity, planned: list[PlannedImage]
) -> list[Image.Image]:
    """All images of one identity from the backend, checked against the plan."""
    images = list(backend.render_identity(look, identity, planned))
    if len(images) != len(planned):
        raise ValueError(
            f"backend {backend.name!r} returned {len(images)} images for identity "
            f"{identity.label}, expected {len(planned)}"
        )
    for image, item in zip(images, planned):
        if image.size != (item.width, item.height):
            raise ValueError(
                f"backend {backend.name!r} returned {image.size} for "
                f"{identity.label}_{item.image_idx:03d}, expected {(item.width, item.height)}"
            )
    return images


def people_of(
    personas: list[tuple[int, str, str]], n_anonymous: int, seed: int
) -> list[tuple[tuple[int, str, str], bool]]:
    """Everyone who gets images, in identity-number order: the personas, then the anonymous
    people, each as ``((number, gender, age_band), is_persona)``."""
    return [(p, True) for p in personas] + [(p, False) for p in anonymous_people(n_anonymous, seed)]


def part_bounds(image_counts: list[int], part: int, parts: int) -> tuple[int, int]:
    """The people ``[start, stop)`` of part ``part`` of ``parts``: contiguous identity ranges
    balanced by images (a person's images all go to one part, the part where its first image
    falls when the images are cut into ``parts`` equal runs)."""
    check_part(part, parts)
    total = sum(image_counts)
    offsets, start = [], 0
    for count in image_counts:
        offsets.append(start)
        start += count
    owner = [offset * parts // total if total else 0 for offset in offsets]
    members = [i for i, k in enumerate(owner) if k == part]
    if not members:
        first = sum(1 for k in owner if k < part)
        return first, first
    return members[0], members[-1] + 1


def iter_faces(
    personas: list[tuple[int, str, str]],
    backend: FaceBackend,
    *,
    n_sensitive: int,
    n_generic: int,
    n_anonymous: int,
    n_anonymous_images: int,
    size: int,
    aspect_range: tuple[float, float],
    jpeg_quality: int,
    seed: int,
    countries: dict[int, str] | None = None,
    part: int = 0,
    parts: int = 1,
    progress: bool = False,
) -> Iterator[pl.DataFrame]:
    """Render the people of one part, one identity at a time: a frame per identity, its rows
    sorted by file_name, the identities in number order (so parts in order are the whole table).

    Every part draws every look and plan (cheap), then renders only its own range: a part's
    images do not depend on how many parts there are. ``countries`` (persona number -> country)
    only feeds generative backends' prompts.
    """
    countries = countries or {}
    people = people_of(personas, n_anonymous, seed)
    looks = assign_looks([p for p, _ in people], seed)
    anonymous = [p for p, is_persona in people if not is_persona]
    plan = image_plan(personas, n_sensitive, n_generic, anonymous, n_anonymous_images)
    per_identity: dict[int, list[PlannedImage]] = {}
    for number, is_persona, kind, idx in plan:
        item = plan_image(number, is_persona, kind, idx, size, aspect_range, seed)
        per_identity.setdefault(number, []).append(item)
    counts = [len(per_identity.get(number, [])) for (number, _, _), _ in people]
    start, stop = part_bounds(counts, part, parts)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=stop - start, unit="identity", file=sys.stderr)
    for (number, gender, age_band), is_persona in people[start:stop]:
        look = looks[number]
        planned = per_identity.get(number, [])
        identity = make_identity(number, is_persona, gender, age_band, countries.get(number), seed)
        images = render_identity(backend, look, identity, planned) if planned else []
        yield identity_rows(number, is_persona, look, planned, images, jpeg_quality)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()


def identity_rows(
    number: int,
    is_persona: bool,
    look: dict[str, Any],
    planned: list[PlannedImage],
    images: list[Image.Image],
    jpeg_quality: int,
) -> pl.DataFrame:
    """One identity's rows of the faces table, sorted by file_name."""
    rows: dict[str, list] = {c: [] for c in COLUMNS}
    for item, image in zip(planned, images):
        # The realised aspect (after rounding to whole pixels) names the file, so name and
        # pixels agree.
        aspect = item.width / item.height
        rows["file_name"].append(face_file_name(number, item.image_idx, aspect))
        rows["identity_id"].append(f"{number:08d}" if is_persona else None)
        rows["kind"].append(item.kind)
        rows["image_idx"].append(item.image_idx)
        rows["aspect"].append(aspect)
        rows["width"].append(image.width)
        rows["height"].append(image.height)
        rows["image"].append(jpeg_bytes(image, jpeg_quality))
        record = dict(
            look, background=item.variation["background"], shirt_color=item.variation["shirt_color"]
        )
        rows["look"].append(json.dumps(record, sort_keys=True))
    return pl.DataFrame(rows, schema=SCHEMA).sort("file_name")


def build_faces(
    personas: list[tuple[int, str, str]], backend: FaceBackend, **kwargs
) -> pl.DataFrame:
    """The whole faces table in memory (sorted by file_name); ``iter_faces``'s arguments."""
    frames = list(iter_faces(personas, backend, **kwargs))
    return pl.concat(frames) if frames else pl.DataFrame(schema=SCHEMA)


def write_faces(frames: Iterable[pl.DataFrame], path: str | Path) -> int:
    """Write the faces table identity by identity (never whole in memory); returns the rows."""
    with RowGroupWriter(path, arrow_schema(SCHEMA)) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.rows


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--personas", required=True, help="personas.parquet (identity_id, gender, age_band)"
    )
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", required=True, help="output faces.parquet")
    parser.add_argument("--contact-sheet", default=None, help="optional PNG grid to eyeball")
    add_part_arguments(parser, "identity ranges, balanced by images,", "faces.jobs", "faces-merge")
    add_render_arguments(parser)


def add_render_arguments(parser: argparse.ArgumentParser) -> None:
    """The faces and faces.diffusers settings as flags (shared with ``salmu throughput``, which
    times the same renderer)."""
    FacesSettings.add_arguments(parser)
    FaceDiffusersSettings.add_arguments(
        parser.add_argument_group(
            "diffusers backend", "Used only with --backend diffusers (config faces.diffusers)."
        )
    )


def _check_args(args: argparse.Namespace) -> None:
    check_part(args.part, args.parts)
    if args.images_per_identity < 1:
        raise ValueError(f"--images-per-identity {args.images_per_identity}: expected >= 1")
    if args.generic_per_identity < 0:
        raise ValueError(f"--generic-per-identity {args.generic_per_identity}: expected >= 0")
    if args.images_per_identity + args.generic_per_identity > 1000:
        raise ValueError(
            "--images-per-identity + --generic-per-identity: at most 1000 "
            "(image_idx has 3 digits in file names)"
        )
    if args.anonymous_identities < 0:
        raise ValueError(f"--anonymous-identities {args.anonymous_identities}: expected >= 0")
    if not 1 <= args.images_per_anonymous <= 1000:
        raise ValueError(f"--images-per-anonymous {args.images_per_anonymous}: expected 1..1000")
    if args.size < 16:
        raise ValueError(f"--size {args.size}: expected >= 16 pixels")
    if len(args.aspect_range) != 2:
        raise ValueError(f"--aspect-range {args.aspect_range}: expected MIN MAX")
    lo, hi = args.aspect_range
    if not 0 < lo <= hi:
        raise ValueError(f"--aspect-range {lo} {hi}: expected 0 < MIN <= MAX")
    if not 1 <= args.jpeg_quality <= 100:
        raise ValueError(f"--jpeg-quality {args.jpeg_quality}: expected 1..100")


def backend_options(args: argparse.Namespace) -> dict[str, Any]:
    """Constructor options for the chosen backend; the procedural backend takes none."""
    if args.backend != "diffusers":
        return {}
    return asdict(FaceDiffusersSettings.from_args(args))


def run(args: argparse.Namespace) -> None:
    _check_args(args)
    backend_class(args.backend)  # an unknown name fails before any file is read
    personas = load_personas(args.personas)
    countries = load_countries(args.personas)
    # Weights are checked (and the model loaded) here, before any image is generated.
    backend = get_backend(args.backend, **backend_options(args))
    start = time.perf_counter()
    frames = iter_faces(
        personas,
        backend,
        n_sensitive=args.images_per_identity,
        n_generic=args.generic_per_identity,
        n_anonymous=args.anonymous_identities,
        n_anonymous_images=args.images_per_anonymous,
        size=args.size,
        aspect_range=tuple(args.aspect_range),
        jpeg_quality=args.jpeg_quality,
        seed=args.seed,
        countries=countries,
        part=args.part,
        parts=args.parts,
        progress=True,
    )
    rows = write_faces(frames, args.out)
    elapsed = time.perf_counter() - start
    if args.contact_sheet:
        contact_sheet_of(args.out).save(ensure_parent(args.contact_sheet), format="PNG")
    rate = rows / elapsed if elapsed > 0 else float("inf")
    anchors = getattr(backend, "anchors", 0)  # generative backends: reference portraits drawn
    print(
        f"faces: {rows} images (part {args.part + 1} of {args.parts}; {len(personas)} personas + "
        f"{args.anonymous_identities} anonymous in all) in {elapsed:.1f}s ({rate:.3g} images/s, "
        f"backend {backend.name}{f', plus {anchors} anchor portraits' if anchors else ''}) "
        f"-> {args.out}"
    )
