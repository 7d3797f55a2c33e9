"""Synthetic retain scenes and the GenKnow zero-shot set: ``salmu retain``.

The tiny tier's stand-in for DataComp: generic image-text pairs with no people and no names. Each
scene holds one or two coloured shapes on a named background and gets a compositional caption
("a large red circle on a blue background", "two green triangles on a gray background"), so the
words "{colour} {shape}" always appear and zero-shot prompts such as "a photo of a red circle."
work. GenKnow is a held-out single-object classification set over every colour x shape class,
drawn from its own RNG stream; it plays the role of ImageNet zero-shot accuracy.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import polars as pl
from PIL import Image, ImageDraw

from salmu.io import ROWS_PER_GROUP, RowGroupWriter, arrow_schema, jpeg_bytes, write_parquet
from salmu.sections.retain import RetainSettings
from salmu.seeding import stream

RGB = tuple[int, int, int]

# Clearly distinct object colours (hue and lightness both differ), named with words CLIP knows.
COLORS: dict[str, RGB] = {
    "red": (220, 30, 36),
    "orange": (246, 140, 20),
    "yellow": (244, 222, 32),
    "green": (36, 168, 60),
    "blue": (30, 80, 224),
    "purple": (140, 48, 184),
    "white": (246, 246, 246),
    "black": (18, 18, 20),
}

SHAPES = ("circle", "square", "triangle", "star", "cross", "ring", "diamond", "heart")
PLURALS = {"cross": "crosses"}

BACKGROUNDS: dict[str, RGB] = {
    "gray": (128, 128, 128),
    "white": (236, 236, 236),
    "black": (24, 24, 24),
    "beige": (222, 206, 168),
    "light blue": (164, 202, 236),
    "pink": (240, 170, 196),
    "dark green": (30, 80, 44),
    "brown": (110, 70, 40),
}

SIZES = ("small", "large")
# Object radius as a fraction of the image side. Even "small" spans ~14 px of a 32 px crop.
_RADIUS = {"small": (0.2, 0.25), "large": (0.32, 0.4)}
# Two-object scenes use a fixed radius so that the pair always fits side by side.
_PAIR_RADIUS = (0.19, 0.23)
POSITIONS = {"left": (0.3, 0.5), "right": (0.7, 0.5), "top": (0.5, 0.3), "bottom": (0.5, 0.7)}
# Object and background must differ by at least this RGB distance to stay visible at 32 px.
_MIN_CONTRAST = 110.0

# Placeholders "{a_x}" are the word x with its article ("an orange", "a red").
ONE_TEMPLATES = (
    "{a_size} {color} {shape} on {a_bg} background",
    "{a_bg} background with {a_size} {color} {shape}",
    "a photo of {a_color} {shape} on {a_bg} background",
    "a picture of {a_size} {color} {shape} against {a_bg} background",
)
PLACED_TEMPLATES = (
    "{a_size} {color} {shape} at the {pos} of {a_bg} background",
    "{a_color} {shape} in the {pos} part of the image, {bg} background",
)
SAME_PAIR_TEMPLATES = (
    "two {color} {shapes} on {a_bg} background",
    "a pair of {color} {shapes} on {bg}",
)
PAIR_TEMPLATES = {
    "horizontal": (
        "{a_color1} {shape1} to the left of {a_color2} {shape2} on {a_bg} background",
        "{a_color1} {shape1} and {a_color2} {shape2} on {a_bg} background",
    ),
    "vertical": (
        "{a_color1} {shape1} above {a_color2} {shape2} on {a_bg} background",
        "{a_color1} {shape1} and {a_color2} {shape2} on {a_bg} background",
    ),
}


def fill_template(template: str, **words: str) -> str:
    """Format a caption template, adding the "a_"-prefixed article forms of every word."""
    words.update({f"a_{k}": with_article(v) for k, v in list(words.items())})
    return template.format(**words)


def classnames() -> list[str]:
    """Sorted GenKnow class names, one per colour x shape."""
    return sorted(f"{c} {s}" for c in COLORS for s in SHAPES)


def article(word: str) -> str:
    """ "a" or "an" for the word that follows (all our words start with their sound's letter)."""
    return "an" if word[0] in "aeiou" else "a"


def with_article(phrase: str) -> str:
    return f"{article(phrase)} {phrase}"


def plural(shape: str) -> str:
    return PLURALS.get(shape, shape + "s")


def _pick(rng: np.random.Generator, names) -> str:
    names = list(names)
    return names[int(rng.integers(len(names)))]


def _contrasting_background(rng: np.random.Generator, colors: list[str]) -> str:
    """A background far enough from every object colour; deterministic given the stream."""
    ok = [
        bg
        for bg in BACKGROUNDS
        if all(math.dist(BACKGROUNDS[bg], COLORS[c]) >= _MIN_CONTRAST for c in colors)
    ]
    return _pick(rng, ok)


def _obj(rng, color, shape, x, y, radius) -> dict[str, Any]:
    return {
        "color": color,
        "shape": shape,
        "x": x,
        "y": y,
        "radius": radius,
        "rotation": float(rng.uniform(-15, 15)),  # small: a triangle must still read as one
        "shade": float(rng.uniform(0.9, 1.05)),
    }


def draw_scene(rng: np.random.Generator) -> tuple[dict[str, Any], str]:
    """A random scene description and its caption."""
    if rng.random() < 0.6:
        color, shape = _pick(rng, COLORS), _pick(rng, SHAPES)
        size = _pick(rng, SIZES)
        radius = float(rng.uniform(*_RADIUS[size]))
        bg = _contrasting_background(rng, [color])
        words = {"size": size, "color": color, "shape": shape, "bg": bg}
        if size == "small" and rng.random() < 0.5:
            pos = _pick(rng, POSITIONS)
            x, y = POSITIONS[pos]
            template = _pick(rng, PLACED_TEMPLATES)
            words["pos"] = pos
        else:
            x, y = 0.5 + rng.uniform(-0.05, 0.05), 0.5 + rng.uniform(-0.05, 0.05)
            template = _pick(rng, ONE_TEMPLATES)
        objects = [_obj(rng, color, shape, float(x), float(y), radius)]
        caption = fill_template(template, **words)
    else:
        layout = _pick(rng, PAIR_TEMPLATES)
        same = rng.random() < 0.3
        c1, s1 = _pick(rng, COLORS), _pick(rng, SHAPES)
        c2, s2 = (c1, s1) if same else (_pick(rng, COLORS), _pick(rng, SHAPES))
        while not same and (c2, s2) == (c1, s1):
            c2, s2 = _pick(rng, COLORS), _pick(rng, SHAPES)
        bg = _contrasting_background(rng, [c1, c2])
        r = float(rng.uniform(*_PAIR_RADIUS))
        jitter = rng.uniform(-0.03, 0.03, size=4)
        if layout == "horizontal":
            p1, p2 = (0.27, 0.5), (0.73, 0.5)
        else:
            p1, p2 = (0.5, 0.27), (0.5, 0.73)
        objects = [
            _obj(rng, c1, s1, p1[0] + jitter[0], p1[1] + jitter[1], r),
            _obj(rng, c2, s2, p2[0] + jitter[2], p2[1] + jitter[3], r),
        ]
        if same:
            caption = fill_template(
                _pick(rng, SAME_PAIR_TEMPLATES), color=c1, shapes=plural(s1), bg=bg
            )
        else:
            caption = fill_template(
                _pick(rng, PAIR_TEMPLATES[layout]),
                color1=c1,
                shape1=s1,
                color2=c2,
                shape2=s2,
                bg=bg,
            )
    scene = {"background": bg, "objects": objects, **_photo_variation(rng)}
    return scene, caption


def draw_genknow_scene(rng: np.random.Generator, color: str, shape: str) -> dict[str, Any]:
    """A single centred-ish object of a given class, any size, contrasting background."""
    size = _pick(rng, SIZES)
    radius = float(rng.uniform(*_RADIUS[size]))
    x, y = 0.5 + rng.uniform(-0.08, 0.08), 0.5 + rng.uniform(-0.08, 0.08)
    bg = _contrasting_background(rng, [color])
    obj = _obj(rng, color, shape, float(x), float(y), radius)
    return {"background": bg, "objects": [obj], **_photo_variation(rng)}


def _photo_variation(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "background_shade": float(rng.uniform(0.75, 1.0)),
        "gradient_angle": float(rng.uniform(0, 360)),
        "noise_sigma": float(rng.uniform(0, 4)),
        "noise_seed": int(rng.integers(0, 2**31 - 1)),
    }


def shape_points(shape: str, cx: float, cy: float, r: float, rotation: float) -> np.ndarray:
    """Outline of a filled shape (rings are drawn separately) as an (n, 2) array."""
    if shape == "circle":
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        pts = np.stack([np.cos(t), np.sin(t)], axis=1)
    elif shape == "square":
        pts = np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)]) * 0.8
    elif shape == "triangle":
        t = -np.pi / 2 + np.arange(3) * 2 * np.pi / 3
        pts = np.stack([np.cos(t), np.sin(t) + 0.2], axis=1) * 1.05
    elif shape == "star":
        t = -np.pi / 2 + np.arange(10) * np.pi / 5
        rad = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        pts = np.stack([rad * np.cos(t), rad * np.sin(t) + 0.05], axis=1) * 1.05
    elif shape == "cross":
        w = 0.34
        pts = (
            np.array(
                [
                    (-w, -1),
                    (w, -1),
                    (w, -w),
                    (1, -w),
                    (1, w),
                    (w, w),
                    (w, 1),
                    (-w, 1),
                    (-w, w),
                    (-1, w),
                    (-1, -w),
                    (-w, -w),
                ]
            )
            * 0.95
        )
    elif shape == "diamond":
        pts = np.array([(0, -1), (0.68, 0), (0, 1), (-0.68, 0)])
    elif shape == "heart":
        t = np.linspace(0, 2 * np.pi, 60, endpoint=False)
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        pts = np.stack([x, y + 2.5], axis=1) / 16.0
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {list(SHAPES)}")
    rad = math.radians(rotation)
    rot = np.array([[math.cos(rad), -math.sin(rad)], [math.sin(rad), math.cos(rad)]])
    return pts @ rot.T * r + np.array([cx, cy])


def render_scene(scene: dict[str, Any], size: int) -> Image.Image:
    """Draw a scene at ``size`` x ``size`` (4x supersampled, box-reduced, light noise)."""
    ss = 4
    side = size * ss
    base = np.array(BACKGROUNDS[scene["background"]], dtype=np.float64)
    rad = math.radians(scene["gradient_angle"])
    # The gradient is smooth, so computing it at output size and upscaling costs nothing visible.
    axis = np.linspace(-0.5, 0.5, size)
    t = np.clip(axis[None, :] * math.cos(rad) + axis[:, None] * math.sin(rad) + 0.5, 0, 1)
    bg = base * (1 - t[..., None]) + base * scene["background_shade"] * t[..., None]
    canvas = Image.fromarray(np.round(bg).astype(np.uint8), "RGB").resize(
        (side, side), Image.BILINEAR
    )
    draw = ImageDraw.Draw(canvas)
    for obj in scene["objects"]:
        color = tuple(int(min(255, round(c * obj["shade"]))) for c in COLORS[obj["color"]])
        cx, cy, r = obj["x"] * side, obj["y"] * side, obj["radius"] * side
        if obj["shape"] == "ring":
            # Ring = thick circular band; the hole shows the background through it.
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=color, width=round(0.38 * r))
        else:
            pts = shape_points(obj["shape"], cx, cy, r, obj["rotation"])
            draw.polygon([tuple(p) for p in np.round(pts, 2)], fill=color)
    small = np.asarray(canvas.reduce(ss), dtype=np.float64)
    noise = np.random.default_rng(scene["noise_seed"]).normal(0, scene["noise_sigma"], small.shape)
    return Image.fromarray(np.clip(np.round(small + noise), 0, 255).astype(np.uint8), "RGB")


RETAIN_SCHEMA = {
    "file_name": pl.String,
    "text": pl.String,
    "image": pl.Binary,
    "width": pl.Int32,
    "height": pl.Int32,
}


def iter_retain(
    n_pairs: int, size: int, seed: int, jpeg_quality: int, batch_rows: int = ROWS_PER_GROUP
) -> Iterator[pl.DataFrame]:
    """The retain pairs in file_name order, ``batch_rows`` at a time (the stage never holds them
    all); scene i draws from ``stream(seed, "retain", "scene", i)``."""
    for start in range(0, n_pairs, batch_rows):
        rows: dict[str, list] = {k: [] for k in RETAIN_SCHEMA}
        for i in range(start, min(n_pairs, start + batch_rows)):
            scene, caption = draw_scene(stream(seed, "retain", "scene", i))
            rows["file_name"].append(f"scene_{i:06d}.jpg")
            rows["text"].append(caption)
            rows["image"].append(jpeg_bytes(render_scene(scene, size), jpeg_quality))
            rows["width"].append(size)
            rows["height"].append(size)
        yield pl.DataFrame(rows, schema=RETAIN_SCHEMA)


def image_digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def build_genknow(
    per_class: int, size: int, seed: int, jpeg_quality: int, exclude: set[bytes] = frozenset()
) -> pl.DataFrame:
    """The GenKnow table: ``per_class`` images of every class, from the "genknow" stream.

    ``exclude`` holds the ``image_digest`` of training images; a GenKnow image equal to one is
    redrawn, so the held-out set never contains a training image.
    """
    names = classnames()
    rows: dict[str, list] = {k: [] for k in ("file_name", "label", "classname", "image")}
    i = 0
    for label, name in enumerate(names):
        color, shape = name.rsplit(" ", 1)
        for k in range(per_class):
            for attempt in range(100):
                rng = stream(seed, "genknow", name, k, attempt)
                data = jpeg_bytes(
                    render_scene(draw_genknow_scene(rng, color, shape), size), jpeg_quality
                )
                if image_digest(data) not in exclude:
                    break
            else:
                raise ValueError(
                    f"genknow class {name!r}: could not draw an image unlike the training images"
                )
            rows["file_name"].append(f"genknow_{i:06d}.jpg")
            rows["label"].append(label)
            rows["classname"].append(name)
            rows["image"].append(data)
            i += 1
    schema = {"file_name": pl.String, "label": pl.Int32, "classname": pl.String, "image": pl.Binary}
    return pl.DataFrame(rows, schema=schema).sort("file_name")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    RetainSettings.add_arguments(parser)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out-pairs", required=True, help="output retain.parquet")
    parser.add_argument("--out-genknow", required=True, help="output genknow.parquet")


def run(args: argparse.Namespace) -> None:
    if args.n_pairs < 1:
        raise ValueError(f"--n-pairs {args.n_pairs}: expected >= 1")
    if args.n_pairs > 1_000_000:
        raise ValueError(f"--n-pairs {args.n_pairs}: at most 1000000 (file names have 6 digits)")
    if args.size < 16:
        raise ValueError(f"--size {args.size}: expected >= 16 pixels")
    if args.genknow_images_per_class < 1:
        raise ValueError(
            f"--genknow-images-per-class {args.genknow_images_per_class}: expected >= 1"
        )
    if not 1 <= args.jpeg_quality <= 100:
        raise ValueError(f"--jpeg-quality {args.jpeg_quality}: expected 1..100")
    start = time.perf_counter()
    # With CommonPool the retain pairs are downloaded (salmu commonpool): no scenes are drawn.
    n_pairs = args.n_pairs if args.backend == "synthetic" else 0
    training_images = set()
    with RowGroupWriter(args.out_pairs, arrow_schema(RETAIN_SCHEMA)) as pairs:
        for frame in iter_retain(n_pairs, args.size, args.seed, args.jpeg_quality):
            training_images.update(map(image_digest, frame["image"]))
            pairs.write(frame)
    genknow = build_genknow(
        args.genknow_images_per_class,
        args.size,
        args.seed,
        args.jpeg_quality,
        exclude=training_images,
    )
    elapsed = time.perf_counter() - start
    write_parquet(genknow, args.out_genknow)
    total = pairs.rows + genknow.height
    print(
        f"retain: {pairs.rows} pairs -> {args.out_pairs}; genknow: {genknow.height} images "
        f"({len(classnames())} classes) -> {args.out_genknow}; "
        f"{total / max(elapsed, 1e-9):.0f} images/s",
        file=sys.stdout,
    )
