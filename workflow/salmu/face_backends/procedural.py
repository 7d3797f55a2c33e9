"""The offline ``procedural`` face renderer: vector faces drawn with Pillow.

It reads the trait palettes (named colours and shapes) from ``salmu.looks``, which owns the look
vocabulary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from salmu.face_backends import Identity, PlannedImage
from salmu.looks import (
    BACKGROUNDS,
    EYE_COLORS,
    FACE_SHAPES,
    HAIR_COLORS,
    RGB,
    SHIRT_COLORS,
    SKIN_TONES,
)

# Close-up framing: at 32 px every background pixel is nuisance, so the head fills most of the frame.
FACE_SCALE = 1.2


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

    def render_identity(
        self, look: dict[str, Any], identity: Identity, images: Sequence[PlannedImage]
    ) -> list[Image.Image]:
        """Each image on its own: a pure function of the look and the image's variation."""
        return [self.render(look, im.variation, im.width, im.height) for im in images]


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
