"""Identity-consistent face images: ``salmu faces``.

Every identity (a persona, or an anonymous person who is not a persona) gets a stable *look*: named
traits such as skin tone, hair colour and style, glasses, beard and face shape. Every image of that
identity renders the look under a fresh per-image *variation* (pose, zoom, lighting, background,
shirt, aspect ratio, noise). The variation must be real but must not swamp identity: the tiny tier's
CLIP sees 32x32 pixels and still has to tell the identities apart, so that a model trained on
"name <-> face" captions leaks the association.

Rendering goes through a small backend interface (``FaceBackend``) chosen by name from ``BACKENDS``;
the offline ``procedural`` backend draws vector faces with Pillow. Looks and variations are
backend-independent named values, so a generative backend can turn the same dicts into prompts.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import polars as pl
from PIL import Image, ImageDraw

from salmu.io import ensure_parent, jpeg_bytes, open_image, read_parquet, write_parquet
from salmu.seeding import stream

RGB = tuple[int, int, int]

GENDERS = ("female", "male")
AGE_BANDS = ("young", "middle-aged", "older")

# Anonymous people are numbered from here so their file names never collide with persona ids.
ANONYMOUS_BASE = 90_000_000

# ---------------------------------------------------------------------------------------------
# Named trait palettes. Colours are chosen to stay distinct after down-scaling to 32 px.
# ---------------------------------------------------------------------------------------------

SKIN_TONES: dict[str, RGB] = {
    "porcelain": (255, 226, 212),
    "fair": (240, 196, 164),
    "olive": (200, 164, 112),
    "golden": (222, 162, 100),
    "tan": (184, 128, 86),
    "brown": (146, 96, 60),
    "dark brown": (104, 64, 40),
    "deep": (66, 42, 30),
}

HAIR_COLORS: dict[str, RGB] = {
    "black": (22, 20, 22),
    "dark brown": (64, 40, 26),
    "chestnut": (118, 64, 32),
    "auburn": (150, 48, 24),
    "copper red": (212, 92, 36),
    "golden blonde": (214, 168, 78),
    "platinum blonde": (236, 222, 168),
    "gray": (138, 138, 142),
    "white": (242, 242, 240),
    "dyed blue": (40, 92, 210),
    "dyed pink": (232, 96, 176),
    "dyed green": (46, 160, 92),
}

HAIR_STYLES = (
    "bald",
    "buzz cut",
    "short",
    "side part",
    "spiky",
    "curly",
    "afro",
    "mohawk",
    "bob",
    "long straight",
    "long wavy",
    "ponytail",
    "bun",
)

EYE_COLORS: dict[str, RGB] = {
    "dark brown": (58, 34, 20),
    "brown": (112, 70, 36),
    "hazel": (142, 112, 52),
    "green": (62, 134, 72),
    "blue": (56, 112, 200),
    "gray": (128, 140, 152),
}

# name -> (width scale, height scale, superellipse exponent, chin taper)
FACE_SHAPES: dict[str, tuple[float, float, float, float]] = {
    "oval": (1.00, 1.00, 2.0, 0.20),
    "round": (1.12, 0.94, 2.2, 0.06),
    "long": (0.86, 1.08, 2.1, 0.16),
    "square": (1.05, 0.97, 3.4, 0.08),
    "heart": (1.10, 1.00, 2.4, 0.52),
}

_BACKGROUND_BASE: dict[str, RGB] = {
    "white": (238, 238, 236),
    "light gray": (188, 188, 192),
    "charcoal": (62, 64, 70),
    "sky blue": (136, 184, 228),
    "navy": (36, 50, 96),
    "teal": (40, 128, 128),
    "sage green": (150, 174, 134),
    "forest green": (40, 84, 50),
    "cream": (236, 226, 198),
    "peach": (244, 194, 160),
    "lavender": (184, 170, 220),
    "maroon": (110, 36, 46),
    "mustard": (208, 170, 62),
    "brick red": (168, 70, 56),
}


def _mute(color: RGB, amount: float) -> RGB:
    return tuple(int(round(amount * 128 + (1 - amount) * c)) for c in color)


# Backgrounds are pulled 30% towards mid-gray: still clearly named colours, but a white or navy
# backdrop no longer outweighs the face in pixel space.
BACKGROUNDS: dict[str, RGB] = {k: _mute(v, 0.3) for k, v in _BACKGROUND_BASE.items()}

SHIRT_COLORS: dict[str, RGB] = {
    "white": (236, 236, 236),
    "black": (28, 28, 30),
    "gray": (128, 128, 130),
    "navy": (32, 44, 90),
    "royal blue": (40, 80, 200),
    "red": (200, 36, 40),
    "burgundy": (120, 24, 48),
    "green": (40, 140, 70),
    "olive": (110, 112, 52),
    "yellow": (236, 206, 60),
    "orange": (236, 128, 40),
    "purple": (112, 56, 160),
    "pink": (236, 150, 180),
    "beige": (210, 190, 150),
    "teal": (30, 130, 136),
}

EXPRESSIONS = ("neutral", "smile")

# Close-up framing: at 32 px every background pixel is nuisance, so the head fills most of the frame.
FACE_SCALE = 1.2

# Traits compared for distinctness: the ones most visible at 32 px.
# Keys of the `look` JSON column: per identity, then per image. Captions and splits read these.
IDENTITY_LOOK_KEYS = (
    "gender",
    "age_band",
    "skin_tone",
    "hair_color",
    "hair_style",
    "eye_color",
    "glasses",
    "beard",
)
IMAGE_LOOK_KEYS = ("background", "shirt_color")
DISTINCT_TRAITS = ("skin_tone", "hair_color", "hair_style", "glasses")

# Prior weights. Style depends on gender, hair colour on age: plausible people, while the
# distinctness search below still spreads identities over the whole trait space.
_STYLE_WEIGHTS: dict[str, dict[str, float]] = {
    "female": {
        "buzz cut": 0.3,
        "short": 1.5,
        "side part": 0.5,
        "spiky": 0.2,
        "curly": 1.5,
        "afro": 1.0,
        "mohawk": 0.1,
        "bob": 2.0,
        "long straight": 2.5,
        "long wavy": 2.0,
        "ponytail": 2.0,
        "bun": 1.5,
    },
    "male": {
        "bald": 1.0,
        "buzz cut": 2.0,
        "short": 2.5,
        "side part": 2.0,
        "spiky": 1.0,
        "curly": 1.5,
        "afro": 1.0,
        "mohawk": 0.4,
        "bob": 0.1,
        "long straight": 0.5,
        "long wavy": 0.3,
        "ponytail": 0.4,
        "bun": 0.4,
    },
}
_HAIR_WEIGHTS: dict[str, dict[str, float]] = {
    "young": {
        "black": 3,
        "dark brown": 3,
        "chestnut": 2,
        "auburn": 1.5,
        "copper red": 1,
        "golden blonde": 2,
        "platinum blonde": 1,
        "dyed blue": 0.6,
        "dyed pink": 0.6,
        "dyed green": 0.4,
    },
    "middle-aged": {
        "black": 3,
        "dark brown": 3,
        "chestnut": 2,
        "auburn": 1.2,
        "copper red": 0.8,
        "golden blonde": 1.5,
        "platinum blonde": 0.7,
        "gray": 1.5,
        "white": 0.2,
        "dyed blue": 0.15,
        "dyed pink": 0.15,
        "dyed green": 0.1,
    },
    "older": {
        "black": 1,
        "dark brown": 1,
        "chestnut": 0.5,
        "auburn": 0.3,
        "copper red": 0.2,
        "golden blonde": 0.3,
        "platinum blonde": 1,
        "gray": 4,
        "white": 3,
        "dyed blue": 0.05,
        "dyed pink": 0.05,
        "dyed green": 0.05,
    },
}
_GLASSES_P = {"young": 0.3, "middle-aged": 0.4, "older": 0.55}
_BEARD_P = 0.45
# A new identity takes the most different of this many prior draws (see assign_looks).
_LOOK_CANDIDATES = 4
_MAX_LOOK_ATTEMPTS = 200


def _weighted(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _pick(rng: np.random.Generator, names) -> str:
    names = list(names)
    return names[int(rng.integers(len(names)))]


# ---------------------------------------------------------------------------------------------
# Identity looks
# ---------------------------------------------------------------------------------------------


def draw_look(rng: np.random.Generator, gender: str, age_band: str) -> dict[str, Any]:
    """One prior draw of an identity's stable traits (named values only)."""
    if gender not in GENDERS:
        raise ValueError(f"gender {gender!r}: expected one of {list(GENDERS)}")
    if age_band not in AGE_BANDS:
        raise ValueError(f"age_band {age_band!r}: expected one of {list(AGE_BANDS)}")
    style_weights = dict(_STYLE_WEIGHTS[gender])
    if gender == "male" and age_band == "older":
        style_weights["bald"] = 3.0  # pattern baldness is common in older men
    if age_band != "young":
        style_weights["mohawk"] = style_weights.get("mohawk", 0) * 0.25
    return {
        "gender": gender,
        "age_band": age_band,
        "skin_tone": _pick(rng, SKIN_TONES),
        "hair_color": _weighted(rng, _HAIR_WEIGHTS[age_band]),
        "hair_style": _weighted(rng, style_weights),
        "eye_color": _pick(rng, EYE_COLORS),
        "face_shape": _pick(rng, FACE_SHAPES),
        "glasses": bool(rng.random() < _GLASSES_P[age_band]),
        "beard": bool(gender == "male" and rng.random() < _BEARD_P),
    }


def look_key(look: dict[str, Any]) -> tuple:
    """The most visible traits; no two identities may share this tuple."""
    return tuple(look[t] for t in DISTINCT_TRAITS)


def _color_gap(a: RGB, b: RGB) -> float:
    return float(np.linalg.norm(np.subtract(a, b, dtype=np.float64))) / 255.0


def look_distance(a: dict[str, Any], b: dict[str, Any]) -> float:
    """How differently two looks render at low resolution (bigger = easier to tell apart)."""
    # Colour traits use pixel distance: "fair" vs "porcelain" is a much smaller change than
    # "fair" vs "deep", which a plain equal/unequal count would miss.
    return (
        2.0 * _color_gap(SKIN_TONES[a["skin_tone"]], SKIN_TONES[b["skin_tone"]])
        + 2.0 * _color_gap(HAIR_COLORS[a["hair_color"]], HAIR_COLORS[b["hair_color"]])
        + 1.0 * (a["hair_style"] != b["hair_style"])
        + 1.0 * (a["glasses"] != b["glasses"])
        + 0.5 * (a["beard"] != b["beard"])
        + 0.3 * (a["face_shape"] != b["face_shape"])
        + 0.1 * (a["eye_color"] != b["eye_color"])
    )


def assign_looks(people: list[tuple[int, str, str]], seed: int) -> dict[int, dict[str, Any]]:
    """Give each ``(identity_number, gender, age_band)`` a look, in the given order.

    Draws come from ``stream(seed, "faces", "look", number, attempt)``; candidates whose
    distinct-trait tuple is taken are skipped, and of the first few free candidates the one farthest
    from every look assigned so far wins. Earlier people never depend on later ones, so anonymous
    people listed after the personas do not change the personas' looks.
    """
    looks: dict[int, dict[str, Any]] = {}
    used: set[tuple] = set()
    for number, gender, age_band in people:
        candidates: list[dict[str, Any]] = []
        for attempt in range(_MAX_LOOK_ATTEMPTS):
            look = draw_look(stream(seed, "faces", "look", number, attempt), gender, age_band)
            if look_key(look) not in used:
                candidates.append(look)
                if len(candidates) == _LOOK_CANDIDATES:
                    break
        if not candidates:
            raise ValueError(
                f"identity {number:08d}: no distinct look left after {_MAX_LOOK_ATTEMPTS} draws "
                f"(too many identities for the trait space {DISTINCT_TRAITS})"
            )
        best = max(
            candidates,
            key=lambda c: min((look_distance(c, other) for other in looks.values()), default=0.0),
        )
        looks[number] = best
        used.add(look_key(best))
    return looks


def anonymous_people(count: int, seed: int) -> list[tuple[int, str, str]]:
    """Anonymous people (not personas): numbers 90000000 + k, gender and age band drawn seeded."""
    people = []
    for k in range(count):
        rng = stream(seed, "faces", "anonymous", k)
        people.append((ANONYMOUS_BASE + k, _pick(rng, GENDERS), _pick(rng, AGE_BANDS)))
    return people


# ---------------------------------------------------------------------------------------------
# Per-image variation
# ---------------------------------------------------------------------------------------------


def draw_variation(rng: np.random.Generator) -> dict[str, Any]:
    """Per-image nuisance: pose, framing, lighting, background, shirt, expression, noise.

    Ranges are small on purpose: identity must dominate what changes between two images.
    """
    return {
        "background": _pick(rng, BACKGROUNDS),
        "background_shade": float(rng.uniform(0.6, 1.0)),  # far end of the gradient
        "gradient_angle": float(rng.uniform(0.0, 360.0)),
        "shirt_color": _pick(rng, SHIRT_COLORS),
        "expression": _pick(rng, EXPRESSIONS),
        "zoom": float(rng.uniform(0.9, 1.1)),
        "offset_x": float(rng.uniform(-0.06, 0.06)),  # fractions of the short side
        "offset_y": float(rng.uniform(-0.05, 0.05)),
        "tilt": float(rng.uniform(-9.0, 9.0)),  # degrees
        "yaw": float(rng.uniform(-0.14, 0.14)),  # features shift sideways, a cheap head turn
        "brightness": float(rng.uniform(0.85, 1.15)),
        "contrast": float(rng.uniform(0.85, 1.15)),
        "tint": [float(t) for t in rng.uniform(-0.06, 0.06, size=3)],
        "light_angle": float(rng.uniform(0.0, 360.0)),
        "light_strength": float(rng.uniform(0.0, 0.15)),
        "noise_sigma": float(rng.uniform(0.0, 4.0)),
        "noise_seed": int(rng.integers(0, 2**31 - 1)),
    }


def image_size(aspect: float, size: int) -> tuple[int, int]:
    """(width, height) with the longest side equal to ``size``."""
    if aspect >= 1.0:
        return size, max(1, round(size / aspect))
    return max(1, round(size * aspect)), size


def face_file_name(identity_number: int, image_idx: int, aspect: float) -> str:
    return f"{identity_number:08d}_{image_idx:03d}_ar-{aspect:.2f}.jpg"


# ---------------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------------


class FaceBackend(Protocol):
    """Turns a look and a variation into an image of exactly ``width`` x ``height`` pixels.

    ``render`` must be a pure function of its arguments (determinism contract).
    """

    name: str

    def render(
        self, look: dict[str, Any], variation: dict[str, Any], width: int, height: int
    ) -> Image.Image: ...


def _shade(color: RGB, factor: float) -> RGB:
    return tuple(int(max(0, min(255, round(c * factor)))) for c in color)


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    """``t`` of ``a`` and ``1 - t`` of ``b``."""
    return tuple(int(round(t * x + (1 - t) * y)) for x, y in zip(a, b))


class _Painter:
    """Draws polygons in output-pixel units, rotated about a pivot, on a supersampled canvas."""

    def __init__(self, image: Image.Image, scale: int, pivot: tuple[float, float], tilt: float):
        self.draw = ImageDraw.Draw(image, "RGBA")
        self.scale = scale
        self.pivot = np.array(pivot, dtype=np.float64)
        rad = math.radians(tilt)
        self.rot = np.array([[math.cos(rad), -math.sin(rad)], [math.sin(rad), math.cos(rad)]])

    def _tx(self, pts) -> list[tuple[float, float]]:
        pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        out = ((pts - self.pivot) @ self.rot.T + self.pivot) * self.scale
        return [tuple(p) for p in np.round(out, 2)]

    def polygon(self, pts, fill) -> None:
        self.draw.polygon(self._tx(pts), fill=fill)

    def ellipse(self, cx, cy, rx, ry, fill, n: int = 40) -> None:
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        self.polygon(np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1), fill)

    def line(self, pts, fill, width: float) -> None:
        self.draw.line(
            self._tx(pts), fill=fill, width=max(1, round(width * self.scale)), joint="curve"
        )


def _superellipse(cx, cy, a, b, n, taper, theta) -> np.ndarray:
    """Points of a head-like outline; image y points down, so ``sin(theta) > 0`` is the chin side."""
    c, s = np.cos(theta), np.sin(theta)
    x = a * np.sign(c) * np.abs(c) ** (2.0 / n)
    y = b * np.sign(s) * np.abs(s) ** (2.0 / n)
    x = x * (1.0 - taper * np.clip(y / b, 0.0, None) ** 2)  # narrower towards the chin
    return np.stack([cx + x, cy + y], axis=1)


class ProceduralFaceBackend:
    """Offline vector faces drawn with Pillow (supersampled, then box-reduced)."""

    name = "procedural"

    def render(
        self, look: dict[str, Any], variation: dict[str, Any], width: int, height: int
    ) -> Image.Image:
        # Supersample so thin features (glasses frames, brows) survive as soft strokes.
        ss = int(min(4, max(2, 256 // max(width, height))))
        # The background gradient is smooth: compute it at output size, upscale for drawing.
        canvas = Image.fromarray(_gradient(variation, width, height), "RGB").resize(
            (width * ss, height * ss), Image.BILINEAR
        )
        # The face is sized by the short side, which is what survives CLIP's centre crop.
        u = min(width, height) * variation["zoom"] * FACE_SCALE
        cx = width / 2 + variation["offset_x"] * min(width, height)
        cy = height / 2 - 0.01 * u + variation["offset_y"] * min(width, height)
        painter = _Painter(canvas, ss, (cx, cy), variation["tilt"])
        _draw_person(painter, look, variation, cx, cy, u)
        small = canvas.reduce(ss)
        return Image.fromarray(_relight(np.asarray(small), variation), "RGB")


BACKENDS: dict[str, type] = {"procedural": ProceduralFaceBackend}


def get_backend(name: str, **options: Any) -> FaceBackend:
    """Instantiate a registered backend; ``options`` go to its constructor (model paths, ...)."""
    if name not in BACKENDS:
        raise ValueError(
            f"--backend {name!r}: unknown face backend; choose one of {sorted(BACKENDS)}"
        )
    return BACKENDS[name](**options)


def _gradient(variation: dict[str, Any], width: int, height: int) -> np.ndarray:
    """Background: the named colour fading linearly to a darker shade of it."""
    base = np.array(BACKGROUNDS[variation["background"]], dtype=np.float64)
    far = base * variation["background_shade"]
    rad = math.radians(variation["gradient_angle"])
    xs, ys = np.linspace(-0.5, 0.5, width)[None, :], np.linspace(-0.5, 0.5, height)[:, None]
    t = np.clip(xs * math.cos(rad) + ys * math.sin(rad) + 0.5, 0.0, 1.0)[..., None]
    return np.round(base * (1 - t) + far * t).astype(np.uint8)


def _relight(pixels: np.ndarray, variation: dict[str, Any]) -> np.ndarray:
    """Brightness, contrast, colour tint, a soft directional light and sensor noise."""
    img = pixels.astype(np.float64)
    img = img * variation["brightness"]
    mean = img.mean()
    img = (img - mean) * variation["contrast"] + mean
    img = img * (1.0 + np.array(variation["tint"], dtype=np.float64))
    h, w = img.shape[:2]
    rad = math.radians(variation["light_angle"])
    xs, ys = np.linspace(-0.5, 0.5, w)[None, :], np.linspace(-0.5, 0.5, h)[:, None]
    side = xs * math.cos(rad) + ys * math.sin(rad)
    img = img * (1.0 + 2.0 * variation["light_strength"] * side)[..., None]
    noise_rng = np.random.default_rng(variation["noise_seed"])
    img = img + noise_rng.normal(0.0, variation["noise_sigma"], size=img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


# Hair styles drawn as a cap over the head: (thickness in u, how low the sides reach in radians,
# hairline points as (x in half-widths, y in half-heights) from the left side to the right side).
_CAPS: dict[str, tuple[float, float, list[tuple[float, float]]]] = {
    "buzz cut": (
        0.015,
        0.0,
        [(-0.96, 0.0), (-0.7, -0.55), (0.0, -0.62), (0.7, -0.55), (0.96, 0.0)],
    ),
    "short": (0.05, 0.12, [(-0.94, 0.1), (-0.75, -0.42), (0.0, -0.5), (0.75, -0.42), (0.94, 0.1)]),
    "side part": (
        0.075,
        0.12,
        [(-0.94, 0.1), (-0.8, -0.5), (-0.45, -0.66), (0.2, -0.48), (0.8, -0.3), (0.94, 0.1)],
    ),
    "spiky": (0.05, 0.08, [(-0.94, 0.05), (-0.7, -0.5), (0.0, -0.58), (0.7, -0.5), (0.94, 0.05)]),
    "curly": (0.07, 0.2, [(-0.92, 0.2), (-0.7, -0.4), (0.0, -0.46), (0.7, -0.4), (0.92, 0.2)]),
    "afro": (0.1, 0.25, [(-0.92, 0.25), (-0.7, -0.45), (0.0, -0.5), (0.7, -0.45), (0.92, 0.25)]),
    "mohawk": (0.012, 0.0, [(-0.96, 0.0), (-0.7, -0.55), (0.0, -0.62), (0.7, -0.55), (0.96, 0.0)]),
    "bob": (0.07, 1.0, [(-0.97, 0.62), (-0.86, -0.3), (0.86, -0.3), (0.97, 0.62)]),
    "long straight": (
        0.06,
        1.2,
        [
            (-0.97, 0.9),
            (-0.78, 0.0),
            (-0.45, -0.55),
            (0.0, -0.72),
            (0.45, -0.55),
            (0.78, 0.0),
            (0.97, 0.9),
        ],
    ),
    "long wavy": (
        0.08,
        1.2,
        [
            (-0.97, 0.9),
            (-0.76, 0.05),
            (-0.5, -0.5),
            (0.0, -0.6),
            (0.5, -0.5),
            (0.76, 0.05),
            (0.97, 0.9),
        ],
    ),
    "ponytail": (
        0.03,
        0.05,
        [(-0.95, 0.05), (-0.7, -0.58), (0.0, -0.66), (0.7, -0.58), (0.95, 0.05)],
    ),
    "bun": (0.03, 0.05, [(-0.95, 0.05), (-0.7, -0.58), (0.0, -0.66), (0.7, -0.58), (0.95, 0.05)]),
}


def _draw_person(p: _Painter, look: dict[str, Any], var: dict[str, Any], cx, cy, u) -> None:
    skin = SKIN_TONES[look["skin_tone"]]
    hair = HAIR_COLORS[look["hair_color"]]
    style = look["hair_style"]
    wscale, hscale, n_exp, taper = FACE_SHAPES[look["face_shape"]]
    a = 0.23 * u * wscale  # head half-width
    b = 0.30 * u * hscale  # head half-height
    yaw = var["yaw"] * a  # facial features slide sideways with a head turn
    dark_skin = _shade(skin, 0.85)

    _draw_hair_back(p, style, hair, cx, cy, a, b, u)

    # Neck and shoulders; the shirt reaches past the frame so tilting never shows its edge.
    p.polygon(
        [
            (cx - 0.45 * a, cy + 0.4 * b),
            (cx + 0.45 * a, cy + 0.4 * b),
            (cx + 0.5 * a, cy + b + 0.2 * u),
            (cx - 0.5 * a, cy + b + 0.2 * u),
        ],
        dark_skin,
    )
    shirt = SHIRT_COLORS[var["shirt_color"]]
    top = cy + b + 0.08 * u
    p.ellipse(cx, top + 0.5 * u, 0.62 * u, 0.5 * u, shirt)
    p.polygon(
        [(cx - 0.3 * a, top - 0.01 * u), (cx + 0.3 * a, top - 0.01 * u), (cx, top + 0.12 * u)],
        dark_skin,
    )

    # Ears, then the head.
    for side in (-1, 1):
        p.ellipse(cx + side * 0.97 * a - 0.3 * yaw, cy + 0.02 * b, 0.16 * a, 0.24 * b, dark_skin)
    theta = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    p.polygon(_superellipse(cx, cy, a, b, n_exp, taper, theta), skin)

    _draw_hair_front(p, style, hair, skin, cx, cy, a, b, u, n_exp)

    if look["age_band"] != "young":  # forehead lines; more of them with age
        lines = 2 if look["age_band"] == "older" else 1
        for k in range(lines):
            y = cy - (0.42 + 0.1 * k) * b
            p.line(
                [(cx - 0.35 * a + yaw, y), (cx + yaw, y - 0.02 * b), (cx + 0.35 * a + yaw, y)],
                _shade(skin, 0.78 if lines == 2 else 0.85),
                0.012 * u,
            )

    # Eyes and brows.
    eye_y = cy - 0.05 * b
    eye_r = 0.15 * a if look["age_band"] != "older" else 0.13 * a
    brow = _shade(hair, 0.7) if sum(hair) > 300 else hair
    for side in (-1, 1):
        ex = cx + side * 0.38 * a + yaw
        p.ellipse(ex, eye_y, eye_r * 1.25, eye_r * 0.75, (245, 245, 240))
        p.ellipse(ex + 0.3 * yaw, eye_y, eye_r * 0.62, eye_r * 0.62, EYE_COLORS[look["eye_color"]])
        p.ellipse(ex + 0.3 * yaw, eye_y, eye_r * 0.3, eye_r * 0.3, (10, 10, 12))
        if look["gender"] == "female":  # lash line
            p.line(
                [
                    (ex - eye_r * 1.3, eye_y - 0.1 * eye_r),
                    (ex, eye_y - 0.8 * eye_r),
                    (ex + eye_r * 1.3, eye_y - 0.1 * eye_r),
                ],
                (20, 16, 16),
                0.014 * u,
            )
        p.line(
            [
                (ex - side * 0.2 * a, eye_y - 0.2 * b),
                (ex + side * 0.05 * a, eye_y - 0.27 * b),
                (ex + side * 0.22 * a, eye_y - 0.22 * b),
            ],
            brow,
            0.03 * u,
        )

    # Nose.
    p.line(
        [
            (cx + yaw, cy + 0.05 * b),
            (cx + 0.08 * a + yaw, cy + 0.3 * b),
            (cx - 0.06 * a + yaw, cy + 0.34 * b),
        ],
        _shade(skin, 0.72),
        0.016 * u,
    )

    if look["beard"]:
        t = np.linspace(0.12, np.pi - 0.12, 36)
        jaw = _superellipse(cx, cy, a * 1.02, b * 1.03, n_exp, taper, t)
        upper = [
            (cx - 0.7 * a + yaw, cy + 0.3 * b),
            (cx - 0.3 * a + yaw, cy + 0.38 * b),
            (cx + yaw, cy + 0.36 * b),
            (cx + 0.3 * a + yaw, cy + 0.38 * b),
            (cx + 0.7 * a + yaw, cy + 0.3 * b),
        ]
        p.polygon(np.concatenate([jaw, np.array(upper)]), _shade(hair, 0.9))

    # Mouth.
    mouth_y = cy + 0.55 * b
    lips = _mix((186, 60, 72), skin, 0.55) if look["gender"] == "female" else _shade(skin, 0.65)
    if var["expression"] == "smile":
        p.polygon(
            [
                (cx - 0.3 * a + yaw, mouth_y - 0.04 * b),
                (cx + 0.3 * a + yaw, mouth_y - 0.04 * b),
                (cx + 0.12 * a + yaw, mouth_y + 0.1 * b),
                (cx - 0.12 * a + yaw, mouth_y + 0.1 * b),
            ],
            lips,
        )
        p.line(
            [(cx - 0.22 * a + yaw, mouth_y - 0.01 * b), (cx + 0.22 * a + yaw, mouth_y - 0.01 * b)],
            (240, 240, 235),
            0.012 * u,
        )
    else:
        p.line(
            [
                (cx - 0.24 * a + yaw, mouth_y),
                (cx + yaw, mouth_y + 0.03 * b),
                (cx + 0.24 * a + yaw, mouth_y),
            ],
            lips,
            0.028 * u,
        )

    if look["glasses"]:
        # A bold dark band: thick frames and tinted lenses stay visible at 32 px.
        frame = (24, 24, 28)
        t = np.linspace(0, 2 * np.pi, 28, endpoint=False)
        for side in (-1, 1):
            ex = cx + side * 0.4 * a + yaw
            lens = _superellipse(ex, eye_y, 0.3 * a, 0.2 * b, 4.0, 0.0, t)
            p.polygon(lens, (20, 20, 30, 80))
            p.line(np.concatenate([lens, lens[:1]]), frame, 0.035 * u)
            p.line(
                [(ex + side * 0.3 * a, eye_y - 0.05 * b), (cx + side * 0.98 * a, eye_y)],
                frame,
                0.025 * u,
            )
        p.line(
            [(cx - 0.1 * a + yaw, eye_y - 0.03 * b), (cx + 0.1 * a + yaw, eye_y - 0.03 * b)],
            frame,
            0.03 * u,
        )


def _bumps(p: _Painter, pts: np.ndarray, r: float, color) -> None:
    for x, y in pts:
        p.ellipse(x, y, r, r, color, n=16)


def _draw_hair_back(p: _Painter, style, hair, cx, cy, a, b, u) -> None:
    """Hair behind the head: the silhouette that tells long, afro, ponytail and bun apart."""
    if style == "afro":
        t = np.linspace(0, 2 * np.pi, 20, endpoint=False)
        rim = np.stack([cx + 1.45 * a * np.cos(t), cy - 0.25 * b + 1.0 * b * np.sin(t)], axis=1)
        p.ellipse(cx, cy - 0.25 * b, 1.45 * a, 1.0 * b, hair)
        _bumps(p, rim, 0.07 * u, hair)
    elif style in ("long straight", "long wavy"):
        bottom = cy + 1.45 * b
        p.polygon(
            [
                (cx - 1.28 * a, cy - 0.3 * b),
                (cx + 1.28 * a, cy - 0.3 * b),
                (cx + 1.38 * a, bottom),
                (cx - 1.38 * a, bottom),
            ],
            hair,
        )
        p.ellipse(cx, cy - 0.3 * b, 1.28 * a, 0.95 * b, hair)
        if style == "long wavy":
            ys = np.linspace(cy - 0.4 * b, bottom, 7)
            for side in (-1, 1):
                xs = cx + side * (1.34 * a + 0.06 * u * np.sin(np.arange(7) * 1.7))
                _bumps(p, np.stack([xs, ys], axis=1), 0.08 * u, hair)
    elif style == "bob":
        p.polygon(
            [
                (cx - 1.22 * a, cy - 0.3 * b),
                (cx + 1.22 * a, cy - 0.3 * b),
                (cx + 1.22 * a, cy + 0.62 * b),
                (cx - 1.22 * a, cy + 0.62 * b),
            ],
            hair,
        )
        p.ellipse(cx, cy - 0.3 * b, 1.22 * a, 0.95 * b, hair)
    elif style == "ponytail":
        p.ellipse(cx + 1.15 * a, cy + 0.25 * b, 0.3 * a, 0.8 * b, hair)
        p.ellipse(cx + 0.95 * a, cy - 0.5 * b, 0.22 * a, 0.22 * a, _shade(hair, 0.75))
    elif style == "bun":
        p.ellipse(cx, cy - b - 0.1 * u, 0.15 * u, 0.13 * u, hair)


def _draw_hair_front(p: _Painter, style, hair, skin, cx, cy, a, b, u, n_exp) -> None:
    if style == "bald":
        # A horseshoe fringe at the sides keeps the hair colour visible; a shine marks the crown.
        for side in (-1, 1):
            p.ellipse(cx + side * 0.93 * a, cy - 0.22 * b, 0.17 * a, 0.32 * b, hair)
        p.ellipse(cx - 0.2 * a, cy - 0.72 * b, 0.25 * a, 0.1 * b, _mix((255, 255, 255), skin, 0.25))
        return
    thickness, reach, hairline = _CAPS[style]
    color = hair
    if style in ("buzz cut", "mohawk"):
        color = _mix(hair, skin, 0.6)  # stubble: the scalp shows through
    theta = np.linspace(reach, -np.pi - reach, 40)
    t = thickness * u
    arc = _superellipse(cx, cy, a + t, b + t, n_exp, 0.0, theta)
    inner = np.array([(cx + x * a, cy + y * b) for x, y in hairline])  # left to right
    cap = np.concatenate([arc, inner])
    p.polygon(cap, color)
    if style == "mohawk":
        p.polygon(
            [
                (cx - 0.2 * a, cy - 0.55 * b),
                (cx - 0.22 * a, cy - b - 0.12 * u),
                (cx, cy - b - 0.2 * u),
                (cx + 0.22 * a, cy - b - 0.12 * u),
                (cx + 0.2 * a, cy - 0.55 * b),
            ],
            hair,
        )
    elif style == "spiky":
        for k in range(-2, 3):
            x0 = cx + k * 0.36 * a
            base_y = cy - b * math.sqrt(max(0.0, 1 - (k * 0.36) ** 2)) - 0.02 * u
            p.polygon(
                [
                    (x0 - 0.2 * a, base_y + 0.06 * u),
                    (x0 + 0.04 * a, base_y - 0.11 * u),
                    (x0 + 0.2 * a, base_y + 0.06 * u),
                ],
                hair,
            )
    elif style in ("curly", "afro"):
        _bumps(p, arc[::3], 0.055 * u, hair)
        fringe = np.array(
            [(cx + x * a, cy + y * b) for x, y in np.linspace(hairline[1], hairline[-2], 5)]
        )
        _bumps(p, fringe, 0.05 * u, _shade(hair, 0.85))
    elif style == "side part":
        p.line(
            [(cx - 0.45 * a, cy - 0.66 * b), (cx - 0.5 * a, cy - b - 0.05 * u)],
            _shade(hair, 0.7) if sum(hair) > 120 else _mix((90, 90, 90), hair, 0.3),
            0.012 * u,
        )


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


def render_image(
    backend: FaceBackend,
    look: dict[str, Any],
    number: int,
    image_idx: int,
    size: int,
    aspect_range: tuple[float, float],
    seed: int,
) -> tuple[Image.Image, float, dict[str, Any]]:
    """One image of one identity; returns ``(image, realised aspect, variation)``."""
    rng = stream(seed, "faces", "image", f"{number:08d}", image_idx)
    width, height = image_size(float(rng.uniform(*aspect_range)), size)
    variation = draw_variation(rng)
    image = backend.render(look, variation, width, height)
    if image.size != (width, height):
        raise ValueError(
            f"backend {backend.name!r} returned {image.size}, expected {(width, height)}"
        )
    # The realised aspect (after rounding to whole pixels) names the file, so name and pixels agree.
    return image, width / height, variation


def build_faces(
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
    progress: bool = False,
) -> pl.DataFrame:
    """Render every image and return the faces table (sorted by file_name)."""
    anonymous = anonymous_people(n_anonymous, seed)
    looks = assign_looks(list(personas) + anonymous, seed)
    plan = image_plan(personas, n_sensitive, n_generic, anonymous, n_anonymous_images)
    rows: dict[str, list] = {c: [] for c in COLUMNS}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(personas) + len(anonymous), unit="identity", file=sys.stderr)
    for number, is_persona, kind, idx in plan:
        look = looks[number]
        image, aspect, variation = render_image(
            backend, look, number, idx, size, aspect_range, seed
        )
        rows["file_name"].append(face_file_name(number, idx, aspect))
        rows["identity_id"].append(f"{number:08d}" if is_persona else None)
        rows["kind"].append(kind)
        rows["image_idx"].append(idx)
        rows["aspect"].append(aspect)
        rows["width"].append(image.width)
        rows["height"].append(image.height)
        rows["image"].append(jpeg_bytes(image, jpeg_quality))
        record = dict(
            look, background=variation["background"], shirt_color=variation["shirt_color"]
        )
        rows["look"].append(json.dumps(record, sort_keys=True))
        last = idx == (n_sensitive + n_generic - 1 if is_persona else n_anonymous_images - 1)
        if bar is not None and last:
            bar.update(1)
    if bar is not None:
        bar.close()
    return pl.DataFrame(rows, schema=SCHEMA).sort("file_name")


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


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--personas", required=True, help="personas.parquet (identity_id, gender, age_band)"
    )
    parser.add_argument(
        "--backend", default="procedural", help=f"face renderer: {sorted(BACKENDS)}"
    )
    parser.add_argument(
        "--images-per-identity",
        type=int,
        required=True,
        help="sensitive images per persona (image_idx 0..N-1)",
    )
    parser.add_argument(
        "--generic-per-identity",
        type=int,
        default=0,
        help="generic images per persona (image_idx N..N+G-1)",
    )
    parser.add_argument(
        "--anonymous-identities",
        type=int,
        default=0,
        help="people who are not personas (identity_id null)",
    )
    parser.add_argument("--images-per-anonymous", type=int, default=1)
    parser.add_argument("--size", type=int, default=64, help="longest image side in pixels")
    parser.add_argument(
        "--aspect-range",
        type=float,
        nargs=2,
        default=(0.75, 1.33),
        metavar=("MIN", "MAX"),
        help="width/height drawn uniformly in [MIN, MAX]",
    )
    parser.add_argument("--jpeg-quality", type=int, default=90)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", required=True, help="output faces.parquet")
    parser.add_argument("--contact-sheet", default=None, help="optional PNG grid to eyeball")


def _check_args(args: argparse.Namespace) -> None:
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
    lo, hi = args.aspect_range
    if not 0 < lo <= hi:
        raise ValueError(f"--aspect-range {lo} {hi}: expected 0 < MIN <= MAX")
    if not 1 <= args.jpeg_quality <= 100:
        raise ValueError(f"--jpeg-quality {args.jpeg_quality}: expected 1..100")


def run(args: argparse.Namespace) -> None:
    _check_args(args)
    backend = get_backend(args.backend)
    personas = load_personas(args.personas)
    start = time.perf_counter()
    frame = build_faces(
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
        progress=True,
    )
    elapsed = time.perf_counter() - start
    write_parquet(frame, args.out)
    if args.contact_sheet:
        contact_sheet(frame).save(ensure_parent(args.contact_sheet), format="PNG")
    rate = frame.height / elapsed if elapsed > 0 else float("inf")
    print(
        f"faces: {frame.height} images of {len(personas)} personas + "
        f"{args.anonymous_identities} anonymous in {elapsed:.1f}s ({rate:.0f} images/s) "
        f"-> {args.out}"
    )
