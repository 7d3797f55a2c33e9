"""``salmu face-filter``: the flags, their checks, and the stage run end to end."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import polars as pl

from salmu.face_filter.checks import (
    META_COLUMNS,
    checks_table,
    embed_file,
    write_checks,
    write_kept,
)
from salmu.face_filter.clip import class_embeddings, embed_clip, load_clip_embedder
from salmu.face_filter.decisions import Decisions, Demographic, apply_min_images, check_rows
from salmu.face_filter.inputs import (
    DEMOGRAPHIC_CLASSES,
    expected_demographics,
    load_faces,
    load_prompts,
)
from salmu.face_filter.pixels import (
    COLOUR_CROP,
    COLOUR_LEVELS,
    COLOUR_SIGMA,
    COLOUR_SIZE,
    LAYOUT_CROP,
    LAYOUT_SIZE,
    PIXEL_WEIGHTS,
    embed_pixels,
)
from salmu.face_filter.report import build_report
from salmu.io import write_json
from salmu.sections.faces import EMBEDDERS, FaceFilterSettings

# Identity threshold per embedder when --identity-threshold is not given. The pixels value is
# measured on the procedural renderer (40 personas + 40 anonymous people, seeds 0-3, 30-300 images
# per persona; 19,200 same-identity pairs): every image's cosine to its own reference was >= 0.753
# (0.1% quantile ~0.80, median 0.95), so 0.72 keeps them all with a margin. An image of another
# identity has median cosine ~0.70 to a reference (99th percentile 0.92): 0.72 catches about half
# of random swaps (51-56% of image/other-reference pairs); look-alikes sharing skin and hair
# colours get through. There is no measured value
# for CLIP, so --identity-threshold is required with --embedder clip.
DEFAULT_THRESHOLDS = {"pixels": 0.72}

CONFIG = FaceFilterSettings.section


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
    FaceFilterSettings.add_arguments(parser)
    add_outputs(parser)


def add_outputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out-faces", default=None, help="kept rows (same columns as --faces)")
    parser.add_argument("--out-report", default=None, help="JSON report")
    parser.add_argument(
        "--out-checks",
        default=None,
        help="instead of the two: this part's per-row checks (salmu face-filter-merge joins them)",
    )


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
    demographics = list(args.demographics)
    for attribute in demographics:
        if attribute not in DEMOGRAPHIC_CLASSES:
            raise ValueError(
                f"--demographics {attribute!r}: expected any of {list(DEMOGRAPHIC_CLASSES)} "
                f"(config {CONFIG}.demographics)"
            )
    if len(set(demographics)) != len(demographics):
        raise ValueError(f"--demographics {demographics}: repeated attribute")
    if demographics and not clip:
        raise ValueError(
            f"--demographics {' '.join(demographics)} needs --embedder clip "
            f"(config {CONFIG}.demographics / {CONFIG}.embedder); leave it empty with pixels"
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


def check_faces(args: argparse.Namespace, settings: dict[str, Any]):
    """Steps 1 and 2 on one faces file (a part, or the whole table), images read in batches:
    ``(meta, decisions, expected classes)``."""
    faces = load_faces(args.faces, allow_empty=args.out_checks is not None)
    expected = {}
    if settings["demographics"]:
        expected = expected_demographics(
            faces, args.personas, settings["demographics"], str(args.faces)
        )
    demographics: dict[str, Demographic] = {}
    if args.embedder == "clip":
        model, preprocess, tokenizer = load_clip_embedder(
            args.clip_model, args.clip_checkpoint, args.device
        )
        embeddings = embed_file(
            args.faces,
            lambda images: embed_clip(images, model, preprocess, args.batch_size, args.device),
        )
        for attribute in settings["demographics"]:
            prompts = settings["prompts"][attribute]
            order = {c: prompts[c] for c in DEMOGRAPHIC_CLASSES[attribute]}
            demographics[attribute] = Demographic(
                expected[attribute],
                DEMOGRAPHIC_CLASSES[attribute],
                class_embeddings(model, tokenizer, order, args.device),
            )
    else:
        embeddings = embed_file(args.faces, embed_pixels)
    meta = faces.select(META_COLUMNS)
    decisions = check_rows(
        meta,
        embeddings,
        threshold=settings["identity_threshold"],
        demographics=demographics,
        margin=args.demographic_margin,
    )
    return meta, decisions, expected


def finish(
    meta: pl.DataFrame,
    decisions: Decisions,
    expected: dict[str, list[str]],
    settings: dict[str, Any],
    faces_parts: list[Path],
    out_faces: str,
    out_report: str,
) -> dict[str, Any]:
    """Step 3 over every checked row, then the kept rows (streamed from the faces) and the report."""
    apply_min_images(meta, decisions, settings["min_images"])
    report = build_report(meta, decisions, settings, expected)
    write_kept(faces_parts, meta["file_name"].to_list(), decisions.keep, out_faces)
    write_json(report, out_report)
    before, after, by_reason = report["before"], report["after"], report["dropped"]["by_reason"]
    reasons = ", ".join(f"{r} {n}" for r, n in by_reason.items() if n) or "none"
    print(
        f"face-filter ({report['settings']['embedder']}): kept {after['images']}/{before['images']} "
        f"images, {after['identities']}/{before['identities']} identities, "
        f"{after['anonymous_people']}/{before['anonymous_people']} anonymous people "
        f"(drops: {reasons}) -> {out_faces}"
    )
    return report


def run(args: argparse.Namespace) -> None:
    whole = args.out_faces is not None or args.out_report is not None
    if whole == (args.out_checks is not None) or (
        whole and None in (args.out_faces, args.out_report)
    ):
        raise ValueError(
            "face-filter: give --out-faces and --out-report (the whole stage), or --out-checks "
            "(one part's checks, joined by salmu face-filter-merge)"
        )
    settings = resolve_settings(args)
    meta, decisions, expected = check_faces(args, settings)
    if whole:
        finish(
            meta, decisions, expected, settings, [Path(args.faces)], args.out_faces, args.out_report
        )
    else:
        write_checks(checks_table(meta, decisions, expected), args.out_checks)
        print(f"face-filter: checked {meta.height} images of {args.faces} -> {args.out_checks}")
