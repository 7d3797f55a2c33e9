"""Curate the faces table: ``salmu face-filter``.

The paper generates ~100 identity-preserving images for each of 1,000 candidate identities and keeps
774 "coherent" ones after "CLIP zero-shot annotation plus consistency/demographic checks (FairFace +
CLIP)" (docs/protocol.md §1.1). Its exact rules are unknown; this stage is our interpretation, in three steps:

1. **Identity consistency.** Every image is embedded and compared (cosine) with its person's
   *reference image*: the person's first image, i.e. the lowest ``image_idx`` of kind ``sensitive``
   for a persona (``image_idx`` 0 in any table ``salmu faces`` writes) and of kind ``anonymous``
   for an anonymous person, whose identity is the 8-digit number that starts the file name. An
   image below ``--identity-threshold`` is dropped (reason ``identity``); the reference itself is
   always kept by this check. With the ``diffusers`` backend the anchor portrait is conditioning
   only and is not in the table, so the reference is the first IP-Adapter variant of it.
2. **Demographic agreement** (``clip`` embedder only; FairFace is replaced by CLIP zero-shot).
   Each attribute of ``--demographics`` (``gender``, ``age_band``) is read zero-shot: a class's text
   embedding is the mean of its prompts' normalised embeddings (``DEFAULT_PROMPTS``, replaceable
   with ``--prompts``). An image is dropped (reason = the attribute) when some other class scores
   more than ``--demographic-margin`` (cosine units) above the expected class, i.e. plain argmax
   disagreement at the default margin 0 (exact ties are kept). The expected class is the persona's
   (``personas.parquet``) for sensitive and generic images, and the ``look`` JSON's for anonymous
   images.
3. **Minimum size.** A persona left with fewer than ``--min-images`` sensitive images is dropped
   whole (reason ``min_images``): all its rows go, sensitive and generic. Anonymous people have no
   sensitive images; this step does not apply to them.

Embedders. ``clip``: open_clip image embeddings from a model directory (``salmu.clip_model``'s
``local-dir`` convention, optional ``--clip-checkpoint``) or an ``hf-hub:`` id already in the local
cache. ``pixels``: a cheap, non-learned descriptor made for the procedural renderer (see
``pixel_embedding``); plain standardised pixels do not separate identities there (same-identity
cosines go below 0 under the renderer's pose, framing and background changes while look-alike
identities reach 0.9), so the descriptor is dominated by the colour signature of the face region.

Outputs: the kept rows, with the input's columns, column order and row order, and a JSON report
(counts before/after, drops per reason, dropped identities, per-identity kept counts, the similarity
distribution, demographic confusion counts, every dropped image with its reasons, the settings).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from PIL import Image

from salmu.io import open_image, read_parquet, read_yaml, write_json, write_parquet

KINDS = ("sensitive", "generic", "anonymous")
REQUIRED_COLUMNS = ("file_name", "identity_id", "kind", "image_idx", "image", "look")
EMBEDDERS = ("pixels", "clip")

DEMOGRAPHIC_CLASSES: dict[str, tuple[str, ...]] = {
    "gender": ("female", "male"),
    "age_band": ("young", "middle-aged", "older"),
}
DEFAULT_PROMPTS: dict[str, dict[str, list[str]]] = {
    "gender": {"female": ["a photo of a woman."], "male": ["a photo of a man."]},
    "age_band": {
        "young": ["a photo of a young person."],
        "middle-aged": ["a photo of a middle-aged person."],
        "older": ["a photo of an old person."],
    },
}
REASONS = ("identity", "gender", "age_band", "min_images")

# Identity threshold per embedder when --identity-threshold is not given. The pixels value is
# measured on the procedural renderer (40 personas + 40 anonymous people, seeds 0-3, 30-300 images
# per persona; 19,200 same-identity pairs): every image's cosine to its own reference was >= 0.753
# (0.1% quantile ~0.80, median 0.95), so 0.72 keeps them all with a margin. An image of another
# identity has median cosine ~0.70 to a reference (99th percentile 0.92): 0.72 catches about half
# of random swaps (51-56% of image/other-reference pairs); look-alikes sharing skin and hair
# colours get through. There is no measured value
# for CLIP, so --identity-threshold is required with --embedder clip.
DEFAULT_THRESHOLDS = {"pixels": 0.72}

CONFIG = "faces.filter"

# ---------------------------------------------------------------------------------------------
# The pixels embedder
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# The clip embedder
# ---------------------------------------------------------------------------------------------


def load_clip_embedder(model: str, checkpoint: str | None, device: str):
    """``(model, preprocess, tokenizer)``: any model form ``salmu.clip_model.load_clip`` takes."""
    from salmu.clip_model import load_clip

    try:
        return load_clip(model, checkpoint, device)
    except (ValueError, FileNotFoundError) as err:
        # Name this stage's flag; load_clip's message says what was wrong with the path or id.
        raise type(err)(f"--clip-model/--clip-checkpoint: {err}") from None


def embed_clip(
    images: Sequence[bytes], model, preprocess, batch_size: int, device: str
) -> np.ndarray:
    """``(n, d)`` L2-normalised open_clip image embeddings (float64)."""
    import torch
    import torch.nn.functional as F

    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = torch.stack(
                [preprocess(open_image(data)) for data in images[start : start + batch_size]]
            )
            features = model.encode_image(batch.to(device)).float()
            out.append(F.normalize(features, dim=-1).cpu().numpy().astype(np.float64))
    if not out:
        return np.zeros((0, 0))
    return np.concatenate(out)


def class_embeddings(model, tokenizer, prompts: dict[str, list[str]], device: str) -> np.ndarray:
    """One row per class (in ``prompts`` order): the renormalised mean of its prompt embeddings."""
    import torch
    import torch.nn.functional as F

    rows = []
    with torch.inference_mode():
        for texts in prompts.values():
            features = model.encode_text(tokenizer(list(texts)).to(device)).float()
            mean = F.normalize(features, dim=-1).mean(0)
            rows.append(F.normalize(mean, dim=0).cpu().numpy().astype(np.float64))
    return np.stack(rows)


# ---------------------------------------------------------------------------------------------
# Decisions
# ---------------------------------------------------------------------------------------------


@dataclass
class Demographic:
    """Zero-shot check of one attribute: per-row expected class, class names and text embeddings."""

    expected: list[str]
    classes: tuple[str, ...]
    embeddings: np.ndarray  # (len(classes), d), L2-normalised


@dataclass
class Decisions:
    similarity: np.ndarray  # cosine of each row to its person's reference image
    is_reference: np.ndarray  # bool per row
    reasons: list[list[str]]  # why each row is dropped (empty: kept)
    readings: dict[str, list[str]] = field(default_factory=dict)
    dropped_identities: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def keep(self) -> np.ndarray:
        return np.array([not r for r in self.reasons], dtype=bool)


def add_person(frame: pl.DataFrame, source: str = "faces") -> pl.DataFrame:
    """Add ``person``: the 8-digit number starting each file name (identity_id for personas)."""
    person = frame["file_name"].str.slice(0, 8)
    bad = [
        name
        for name, p in zip(frame["file_name"].to_list(), person.to_list())
        if p is None or len(p) != 8 or not p.isdigit()
    ]
    if bad:
        raise ValueError(f"{source}: file_name {bad[0]!r} does not start with an 8-digit number")
    frame = frame.with_columns(person.alias("person"))
    mismatch = frame.filter(
        pl.col("identity_id").is_not_null() & (pl.col("identity_id") != pl.col("person"))
    )
    if mismatch.height:
        row = mismatch.row(0, named=True)
        raise ValueError(
            f"{source}: {row['file_name']} has identity_id {row['identity_id']}, "
            "not the number its file name starts with"
        )
    return frame


def reference_rows(frame: pl.DataFrame, source: str = "faces") -> np.ndarray:
    """For each row, the row index of its person's reference image (see the module docstring).

    ``frame`` needs ``person``, ``identity_id``, ``kind`` and ``image_idx``.
    """
    persons = frame["person"].to_list()
    identity_ids = frame["identity_id"].to_list()
    kinds = frame["kind"].to_list()
    indices = frame["image_idx"].to_list()
    best: dict[str, tuple[int, int]] = {}  # person -> (image_idx, row)
    for row, (person, ident, kind, idx) in enumerate(zip(persons, identity_ids, kinds, indices)):
        if kind != ("sensitive" if ident is not None else "anonymous"):
            continue
        if person in best and best[person][0] == idx:
            raise ValueError(
                f"{source}: person {person} has two {kind} images with image_idx {idx}"
            )
        if person not in best or idx < best[person][0]:
            best[person] = (idx, row)
    missing = sorted(set(persons) - set(best))
    if missing:
        raise ValueError(
            f"{source}: identity {missing[0]} has no sensitive image to use as its reference "
            f"({len(missing)} such identities)"
        )
    return np.array([best[p][1] for p in persons], dtype=np.int64)


def demographic_readings(
    embeddings: np.ndarray, check: Demographic, margin: float
) -> tuple[list[str], np.ndarray]:
    """``(reading per row, disagreement mask)``: drop when another class beats the expected one
    by more than ``margin``."""
    unknown = sorted(set(check.expected) - set(check.classes))
    if unknown:
        raise ValueError(f"expected class {unknown[0]!r} not among {list(check.classes)}")
    if len(embeddings) == 0:
        return [], np.zeros(0, dtype=bool)
    scores = embeddings @ check.embeddings.T
    readings = [check.classes[k] for k in scores.argmax(1)]
    position = {name: k for k, name in enumerate(check.classes)}
    expected = np.array([position[e] for e in check.expected], dtype=np.int64)
    rows = np.arange(len(embeddings))
    expected_score = scores[rows, expected]
    others = scores.copy()
    others[rows, expected] = -np.inf
    return readings, others.max(1) - expected_score > margin


def decide(
    meta: pl.DataFrame,
    embeddings: np.ndarray,
    *,
    threshold: float,
    min_images: int,
    demographics: dict[str, Demographic] | None = None,
    margin: float = 0.0,
) -> Decisions:
    """Apply the three steps to rows ``meta`` (person, identity_id, kind, image_idx).

    ``embeddings`` are L2-normalised, one row per ``meta`` row.
    """
    if len(embeddings) != meta.height:
        raise ValueError(f"{len(embeddings)} embeddings for {meta.height} rows")
    references = reference_rows(meta)
    similarity = np.einsum("ij,ij->i", embeddings, embeddings[references])
    is_reference = references == np.arange(meta.height)
    reasons: list[list[str]] = [[] for _ in range(meta.height)]
    for row in np.flatnonzero((similarity < threshold) & ~is_reference):
        reasons[row].append("identity")

    readings: dict[str, list[str]] = {}
    for attribute, check in (demographics or {}).items():
        if len(check.expected) != meta.height:
            raise ValueError(
                f"{attribute}: {len(check.expected)} expected values for {meta.height} rows"
            )
        readings[attribute], disagree = demographic_readings(embeddings, check, margin)
        for row in np.flatnonzero(disagree):
            reasons[row].append(attribute)

    identity_ids = meta["identity_id"].to_list()
    kinds = meta["kind"].to_list()
    before: Counter[str] = Counter()
    left: Counter[str] = Counter()
    for ident, kind, why in zip(identity_ids, kinds, reasons):
        if ident is not None and kind == "sensitive":
            before[ident] += 1
            left[ident] += not why
    dropped = {
        ident: {
            "reason": "min_images",
            "sensitive_before": before[ident],
            "sensitive_left": left[ident],
        }
        for ident in sorted(before)
        if left[ident] < min_images
    }
    for row, ident in enumerate(identity_ids):
        if ident in dropped and not reasons[row]:
            reasons[row].append("min_images")
    return Decisions(similarity, is_reference, reasons, readings, dropped)


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------


def load_faces(path: str | Path) -> pl.DataFrame:
    """The faces table, validated, with the derived ``person`` column appended last."""
    frame = read_parquet(path, columns=list(REQUIRED_COLUMNS))
    if frame.height == 0:
        raise ValueError(f"{path}: no images")
    bad_kind = sorted(set(frame["kind"].to_list()) - set(KINDS), key=str)
    if bad_kind:
        raise ValueError(f"{path}: kind {bad_kind[0]!r} not in {list(KINDS)}")
    inconsistent = frame.filter((pl.col("kind") == "anonymous") != pl.col("identity_id").is_null())
    if inconsistent.height:
        raise ValueError(
            f"{path}: {inconsistent['file_name'][0]}: identity_id must be null exactly for "
            "kind 'anonymous'"
        )
    if frame["file_name"].n_unique() != frame.height:
        raise ValueError(f"{path}: file_name values are not unique")
    if frame["image_idx"].null_count():
        raise ValueError(f"{path}: image_idx has nulls")
    return add_person(frame, str(path))


def load_prompts(path: str | Path | None) -> dict[str, dict[str, list[str]]]:
    """``DEFAULT_PROMPTS``, with the attributes a YAML/JSON file names replaced by its prompts.

    File layout: ``{attribute: {class: prompt or [prompts]}}``; every class of an attribute it
    names must be present (gender: female, male; age_band: young, middle-aged, older).
    """
    prompts = {
        attr: {c: list(p) for c, p in classes.items()} for attr, classes in DEFAULT_PROMPTS.items()
    }
    if path is None:
        return prompts
    data = read_yaml(path, "prompts file")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping attribute -> class -> prompts")
    for attribute, classes in data.items():
        if attribute not in DEMOGRAPHIC_CLASSES:
            raise ValueError(f"{path}: attribute {attribute!r} not in {list(DEMOGRAPHIC_CLASSES)}")
        expected = DEMOGRAPHIC_CLASSES[attribute]
        if not isinstance(classes, dict) or set(classes) != set(expected):
            raise ValueError(f"{path}: {attribute}: expected the classes {list(expected)}")
        parsed = {}
        for name in expected:
            texts = classes[name]
            texts = [texts] if isinstance(texts, str) else texts
            if (
                not isinstance(texts, list)
                or not texts
                or not all(isinstance(t, str) and t.strip() for t in texts)
            ):
                raise ValueError(f"{path}: {attribute}.{name}: expected a non-empty prompt list")
            parsed[name] = texts
        prompts[attribute] = parsed
    return prompts


def expected_demographics(
    faces: pl.DataFrame, personas_path: str | Path, attributes: Sequence[str], faces_path: str
) -> dict[str, list[str]]:
    """Per attribute, each row's expected class: the persona's, or the anonymous look's."""
    personas = read_parquet(personas_path, columns=["identity_id", *attributes])
    table = {row["identity_id"]: row for row in personas.iter_rows(named=True)}
    out: dict[str, list[str]] = {a: [] for a in attributes}
    for file_name, ident, look in faces.select("file_name", "identity_id", "look").iter_rows():
        if ident is not None:
            if ident not in table:
                raise ValueError(f"{personas_path}: no persona {ident} (needed by {faces_path})")
            source, values = str(personas_path), table[ident]
        else:
            source = f"{faces_path}: {file_name}: look"
            try:
                values = json.loads(look)
            except (TypeError, json.JSONDecodeError):
                raise ValueError(f"{source}: not valid JSON") from None
        for attribute in attributes:
            value = values.get(attribute) if isinstance(values, dict) else None
            if value not in DEMOGRAPHIC_CLASSES[attribute]:
                raise ValueError(
                    f"{source}: {attribute} {value!r} not in {list(DEMOGRAPHIC_CLASSES[attribute])}"
                )
            out[attribute].append(value)
    return out


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def _counts(meta: pl.DataFrame, keep: np.ndarray) -> dict[str, Any]:
    kept = meta.filter(pl.Series(keep))
    per_kind = Counter(kept["kind"].to_list())
    return {
        "images": kept.height,
        "images_per_kind": {k: per_kind.get(k, 0) for k in KINDS},
        "identities": kept["identity_id"].drop_nulls().n_unique(),
        "anonymous_people": kept.filter(pl.col("identity_id").is_null())["person"].n_unique(),
    }


def _summary(values: np.ndarray) -> dict[str, Any]:
    if len(values) == 0:
        return {"n": 0}
    qs = np.quantile(values, [0.0, 0.001, 0.01, 0.05, 0.5, 1.0])
    names = ("min", "p0.1", "p1", "p5", "median", "max")
    return {"n": int(len(values)), **{n: round(float(q), 6) for n, q in zip(names, qs)}}


def build_report(
    meta: pl.DataFrame,
    decisions: Decisions,
    settings: dict[str, Any],
    expected: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """The JSON report; ``expected`` holds the demographic classes each row should read as."""
    keep = decisions.keep
    kinds = meta["kind"].to_list()
    by_reason = Counter(r for why in decisions.reasons for r in why)
    non_reference = ~decisions.is_reference
    kind_array = np.array(kinds, dtype=object)
    similarity = {
        "all": _summary(decisions.similarity[non_reference]),
        **{k: _summary(decisions.similarity[non_reference & (kind_array == k)]) for k in KINDS},
    }
    confusion = {}
    for attribute, readings in decisions.readings.items():
        pairs = Counter(zip((expected or {})[attribute], readings))
        confusion[attribute] = {
            e: {r: pairs.get((e, r), 0) for r in DEMOGRAPHIC_CLASSES[attribute]}
            for e in DEMOGRAPHIC_CLASSES[attribute]
        }
    per_identity: dict[str, dict[str, int]] = {}
    for ident, kind, kept in zip(meta["identity_id"].to_list(), kinds, keep):
        if ident is None:
            continue
        entry = per_identity.setdefault(ident, {"sensitive": 0, "generic": 0})
        entry[kind] += int(kept)
    dropped_images = []
    for row in np.flatnonzero(~keep):
        item = {
            "file_name": meta["file_name"][int(row)],
            "reasons": decisions.reasons[row],
            "similarity": round(float(decisions.similarity[row]), 6),
        }
        for attribute, readings in decisions.readings.items():
            item[attribute] = readings[row]
        dropped_images.append(item)
    return {
        "settings": settings,
        "before": _counts(meta, np.ones(meta.height, dtype=bool)),
        "after": _counts(meta, keep),
        "dropped": {
            "images": int((~keep).sum()),
            "images_per_kind": {
                k: int(sum(1 for kind, kp in zip(kinds, keep) if kind == k and not kp))
                for k in KINDS
            },
            # An image failing several checks counts under each of them; ``min_images`` counts the
            # rows of dropped identities that no check had dropped.
            "by_reason": {r: by_reason.get(r, 0) for r in REASONS},
        },
        "dropped_identities": decisions.dropped_identities,
        "kept_per_identity": per_identity,
        "similarity_to_reference": similarity,
        "demographic_confusion": confusion,
        "dropped_images": dropped_images,
    }


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Drop off-identity and demographically inconsistent face images, then identities left "
        f"with too few images. Each option X is fed from the config key {CONFIG}.X."
    )
    parser.add_argument("--faces", required=True, help="faces.parquet from salmu faces")
    parser.add_argument(
        "--personas",
        default=None,
        help="personas.parquet (identity_id, gender, age_band); required for demographic checks",
    )
    parser.add_argument(
        "--embedder",
        choices=EMBEDDERS,
        default="pixels",
        help="pixels: non-learned descriptor for the procedural renderer; clip: open_clip model",
    )
    parser.add_argument(
        "--clip-model",
        default=None,
        help="open_clip model directory (open_clip_config.json) or hf-hub:<id> in the local cache",
    )
    parser.add_argument(
        "--clip-checkpoint", default=None, help="weights for --clip-model (epoch_K.pt / state dict)"
    )
    parser.add_argument(
        "--identity-threshold",
        type=float,
        default=None,
        help="drop an image whose cosine to its reference image is below this "
        f"(default: {DEFAULT_THRESHOLDS['pixels']} for pixels; required for clip)",
    )
    parser.add_argument(
        "--demographics",
        nargs="+",
        default=None,
        metavar="ATTR",
        help="zero-shot checks: gender and/or age_band, or none "
        "(default: gender age_band with clip, none with pixels)",
    )
    parser.add_argument(
        "--demographic-margin",
        type=float,
        default=0.0,
        help="drop only when another class's cosine beats the expected one by more than this",
    )
    parser.add_argument(
        "--prompts",
        default=None,
        help="YAML/JSON {attribute: {class: [prompts]}} overriding defaults",
    )
    parser.add_argument(
        "--min-images",
        type=int,
        default=1,
        help="drop an identity (all its rows) left with fewer sensitive images than this",
    )
    parser.add_argument("--device", default="cpu", help="torch device for the clip embedder")
    parser.add_argument("--batch-size", type=int, default=64, help="images per clip forward pass")
    parser.add_argument("--out-faces", required=True, help="kept rows (same columns as --faces)")
    parser.add_argument("--out-report", required=True, help="JSON report")


def resolve_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Validate the flags; returns the effective settings (defaults filled in)."""
    if args.embedder not in EMBEDDERS:
        raise ValueError(f"--embedder {args.embedder!r}: expected one of {list(EMBEDDERS)}")
    clip = args.embedder == "clip"
    if clip and not args.clip_model:
        raise ValueError(
            f"--embedder clip needs --clip-model (config {CONFIG}.clip_model): an open_clip model "
            "directory or an hf-hub: id"
        )
    threshold = args.identity_threshold
    if threshold is None:
        if clip:
            raise ValueError(
                f"--embedder clip needs --identity-threshold (config {CONFIG}.identity_threshold); "
                "there is no default for CLIP embeddings"
            )
        threshold = DEFAULT_THRESHOLDS[args.embedder]
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"--identity-threshold {threshold}: expected a cosine in [-1, 1]")
    if args.demographics is None:
        demographics = list(DEMOGRAPHIC_CLASSES) if clip else []
    elif args.demographics == ["none"]:
        demographics = []
    else:
        demographics = list(args.demographics)
        for attribute in demographics:
            if attribute not in DEMOGRAPHIC_CLASSES:
                raise ValueError(
                    f"--demographics {attribute!r}: expected {list(DEMOGRAPHIC_CLASSES)} or none "
                    f"(config {CONFIG}.demographics)"
                )
        if len(set(demographics)) != len(demographics):
            raise ValueError(f"--demographics {demographics}: repeated attribute")
    if demographics and not clip:
        raise ValueError(
            f"--demographics {' '.join(demographics)} needs --embedder clip "
            f"(config {CONFIG}.demographics / {CONFIG}.embedder); use none with pixels"
        )
    if demographics and not args.personas:
        raise ValueError(f"--demographics {' '.join(demographics)} needs --personas")
    if args.min_images < 0:
        raise ValueError(f"--min-images {args.min_images}: expected >= 0")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size {args.batch_size}: expected >= 1")
    if args.demographic_margin < 0:
        raise ValueError(f"--demographic-margin {args.demographic_margin}: expected >= 0")
    prompts = load_prompts(args.prompts)
    # Input paths are left out on purpose: the report must not change with the run directory
    # (byte-identical regeneration); Snakemake's metadata records which files went in.
    settings: dict[str, Any] = {
        "embedder": args.embedder,
        "identity_threshold": threshold,
        "demographics": demographics,
        "min_images": args.min_images,
        "reference": "lowest image_idx of kind sensitive (personas) / anonymous (anonymous people)",
    }
    if clip:
        settings.update(
            clip_model=str(args.clip_model),
            clip_checkpoint=None if args.clip_checkpoint is None else str(args.clip_checkpoint),
            device=args.device,
            batch_size=args.batch_size,
        )
    else:
        settings["pixel_descriptor"] = {
            "colour_crop": COLOUR_CROP,
            "colour_size": COLOUR_SIZE,
            "colour_levels": COLOUR_LEVELS,
            "colour_sigma": COLOUR_SIGMA,
            "layout_crop": LAYOUT_CROP,
            "layout_size": LAYOUT_SIZE,
            "weights": list(PIXEL_WEIGHTS),
        }
    if demographics:
        settings["demographic_margin"] = args.demographic_margin
        settings["prompts"] = {a: prompts[a] for a in demographics}
    return settings


def filter_faces(args: argparse.Namespace) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Run the whole stage in memory: ``(kept rows, report)``."""
    settings = resolve_settings(args)
    faces = load_faces(args.faces)
    expected = {}
    if settings["demographics"]:
        expected = expected_demographics(
            faces, args.personas, settings["demographics"], str(args.faces)
        )
    images = faces["image"].to_list()
    demographics: dict[str, Demographic] = {}
    if args.embedder == "clip":
        model, preprocess, tokenizer = load_clip_embedder(
            args.clip_model, args.clip_checkpoint, args.device
        )
        embeddings = embed_clip(images, model, preprocess, args.batch_size, args.device)
        for attribute in settings["demographics"]:
            prompts = settings["prompts"][attribute]
            order = {c: prompts[c] for c in DEMOGRAPHIC_CLASSES[attribute]}
            demographics[attribute] = Demographic(
                expected[attribute],
                DEMOGRAPHIC_CLASSES[attribute],
                class_embeddings(model, tokenizer, order, args.device),
            )
    else:
        embeddings = embed_pixels(images)
    meta = faces.select("file_name", "person", "identity_id", "kind", "image_idx")
    decisions = decide(
        meta,
        embeddings,
        threshold=settings["identity_threshold"],
        min_images=settings["min_images"],
        demographics=demographics,
        margin=args.demographic_margin,
    )
    report = build_report(meta, decisions, settings, expected)
    kept = faces.filter(pl.Series(decisions.keep)).drop("person")
    return kept, report


def run(args: argparse.Namespace) -> None:
    kept, report = filter_faces(args)
    write_parquet(kept, args.out_faces)
    write_json(report, args.out_report)
    before, after, by_reason = report["before"], report["after"], report["dropped"]["by_reason"]
    reasons = ", ".join(f"{r} {n}" for r, n in by_reason.items() if n) or "none"
    print(
        f"face-filter ({report['settings']['embedder']}): kept {after['images']}/{before['images']} "
        f"images, {after['identities']}/{before['identities']} identities, "
        f"{after['anonymous_people']}/{before['anonymous_people']} anonymous people "
        f"(drops: {reasons}) -> {args.out_faces}"
    )
