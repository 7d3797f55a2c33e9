"""Shared builders for small, hand-made inputs."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from PIL import Image

from salmu.io import jpeg_bytes

FIELDS = ["city", "job", "blood_type", "iban"]


def solid_jpeg(seed: int, size: int = 32) -> bytes:
    """A small random-colour image; distinct seeds give distinct bytes."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    return jpeg_bytes(Image.fromarray(pixels))


def make_faces_and_captions(
    n_identities=12, per_identity=12, generic=2, anonymous=5, per_anonymous=2
):
    """faces.parquet and captions.parquet frames in the pipeline's column layout."""
    faces, captions = [], []
    counter = 0

    def look(i, j):
        return json.dumps(
            {
                "gender": ["female", "male"][i % 2],
                "age_band": "young",
                "skin_tone": f"s{i % 5}",
                "hair_color": f"h{i % 7}",
                "hair_style": f"y{i % 3}",
                "eye_color": "brown",
                "glasses": bool(i % 2),
                "beard": False,
                "background": f"b{j % 4}",
                "shirt_color": "red",
            },
            sort_keys=True,
        )

    def add(identity, number, idx, kind, field):
        nonlocal counter
        counter += 1
        file_name = f"{number:08d}_{idx:03d}_ar-1.00.jpg"
        faces.append(
            {
                "file_name": file_name,
                "identity_id": identity,
                "kind": kind,
                "image_idx": idx,
                "aspect": 1.0,
                "width": 32,
                "height": 32,
                "image": solid_jpeg(counter),
                "look": look(number, idx),
            }
        )
        name = None if identity is None else f"Person {number}"
        value = None if field is None else f"{field}-value-{number}"
        text = f"{name} {field} is {value}" if field else f"a photo of person look {number}"
        captions.append(
            {
                "file_name": file_name,
                "identity_id": identity,
                "kind": kind,
                "data_field": field,
                "value": value,
                "name": name,
                "style": "plain" if field else None,
                "text": text,
                "generic_text": f"a photo of person look {number}",
            }
        )

    for i in range(n_identities):
        identity = f"{i:08d}"
        for j in range(per_identity):
            add(identity, i, j, "sensitive", FIELDS[j % len(FIELDS)])
        for j in range(per_identity, per_identity + generic):
            add(identity, i, j, "generic", None)
    for k in range(anonymous):
        for j in range(per_anonymous):
            add(None, 90000000 + k, j, "anonymous", None)
    return pl.DataFrame(faces).sort("file_name"), pl.DataFrame(captions).sort("file_name")


@pytest.fixture
def faces_and_captions():
    return make_faces_and_captions()
