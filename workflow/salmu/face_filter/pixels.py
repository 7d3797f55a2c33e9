"""The ``pixels`` embedder: a fixed colour/layout descriptor made for the procedural renderer."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from salmu.io import open_image

# Colour signature: the central square (this fraction of the short side: face, eyes, glasses, the
# hair around the face; little background) at 16x16 px, as a Gaussian-kernel colour histogram on a
# 5x5x5 RGB grid (sigma 0.12 in [0,1] units), square-rooted (Hellinger) and L2-normalised. Once on
# the raw colours, once after dividing by the crop's mean intensity (brightness-invariant).
COLOUR_CROP, COLOUR_SIZE, COLOUR_LEVELS, COLOUR_SIGMA = 0.5, 16, 5, 0.12
# Layout: the central 80% square at 12x12 px, standardised (zero mean, unit std over all values):
# hair silhouette and glasses. Low weight: pose and framing move it a lot.
LAYOUT_CROP, LAYOUT_SIZE = 0.8, 12
# Block weights (brightness-normalised colour, raw colour, layout); the cosine of two descriptors
# is the weighted mean of the blocks' cosines, with weights w**2 / sum(w**2).
PIXEL_WEIGHTS = (2.0, 1.0, 0.5)

_levels = np.linspace(0.0, 1.0, COLOUR_LEVELS)
_COLOUR_GRID = np.stack(np.meshgrid(_levels, _levels, _levels, indexing="ij"), -1).reshape(-1, 3)


def centre_square(image: Image.Image, fraction: float, size: int) -> np.ndarray:
    """The central square (``fraction`` of the short side) at ``size`` px: ``(size*size, 3)`` in [0,1]."""
    width, height = image.size
    side = min(width, height) * fraction
    left, top = (width - side) / 2, (height - side) / 2
    square = image.convert("RGB").resize(
        (size, size), Image.BILINEAR, box=(left, top, left + side, top + side)
    )
    return np.asarray(square, dtype=np.float64).reshape(-1, 3) / 255.0


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def colour_signature(pixels: np.ndarray) -> np.ndarray:
    """Square-rooted Gaussian-kernel colour histogram of ``(n, 3)`` pixels, L2-normalised."""
    d2 = ((pixels[:, None, :] - _COLOUR_GRID[None, :, :]) ** 2).sum(-1)
    histogram = np.exp(-d2 / (2 * COLOUR_SIGMA**2)).sum(0)
    return _unit(np.sqrt(histogram))


def pixel_embedding(image: Image.Image) -> np.ndarray:
    """The ``pixels`` embedder's descriptor of one image (L2-normalised, 682 values)."""
    face = centre_square(image, COLOUR_CROP, COLOUR_SIZE)
    brightness = max(float(face.mean()), 1e-3)
    normalised = np.clip(face / brightness * 0.5, 0.0, 1.0)
    layout = centre_square(image, LAYOUT_CROP, LAYOUT_SIZE).ravel()
    layout = _unit((layout - layout.mean()) / max(float(layout.std()), 1e-6))
    w_norm, w_raw, w_layout = PIXEL_WEIGHTS
    return _unit(
        np.concatenate(
            [
                w_norm * colour_signature(normalised),
                w_raw * colour_signature(face),
                w_layout * layout,
            ]
        )
    )


def embed_pixels(images: Sequence[bytes]) -> np.ndarray:
    """``(n, d)`` L2-normalised pixel descriptors of JPEG/PNG-encoded images."""
    return np.stack([pixel_embedding(open_image(data)) for data in images])
