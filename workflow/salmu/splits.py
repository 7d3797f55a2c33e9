"""Benchmark splits in the released Hugging Face layout (docs/protocol.md §1.3–1.4).

Semantics, all by identity and (identity, attribute type), never by image:
- holdout_identity: a seeded fraction of identities that are never in forget.
- forget: every other identity. A seeded fraction of them are *partially* forgotten: about half of
  their attribute types go to holdout_association instead, so one association never straddles two
  splits. The fully forgotten identities make up the official derived split forget_identity.
- retain_synth: non-sensitive captions of forget identities' extra images (identity_id set, the
  official retain_joint) and of anonymous people (identity_id null, retain_disjoint).
- fragile set (our interpretation, docs/protocol.md §7): the retain_disjoint rows whose person looks most like a
  forget identity (Jaccard overlap of look traits), top ``fragile_fraction`` of them; every score is
  written to fragile_set_all_similarities.json so the selection can be audited.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import polars as pl
import pyarrow as pa

from salmu.io import (
    RowGroupWriter,
    iter_parquet_in_order,
    read_json,
    read_parquet,
    require_columns,
    write_json,
)
from salmu.looks import IDENTITY_LOOK_KEYS
from salmu.released_layout import (
    CAPTIONS_JSON,
    FRAGILE_JSON,
    FRAGILE_SCORES_JSON,
    GENERIC_CAPTIONS_JSON,
    IDENTITIES_JSON,
    SENSITIVE_SPLITS,
    SUMMARY_JSON,
    split_file,
)
from salmu.sections.splits import SplitsSettings
from salmu.seeding import stream

# The Hugging Face `datasets` feature spec stored in the parquet schema, so that
# `datasets.load_dataset(<dir>)` decodes `image` as an Image feature, as in the release.
HF_FEATURES = {
    "image": {"_type": "Image"},
    "text": {"dtype": "string", "_type": "Value"},
    "identity_id": {"dtype": "string", "_type": "Value"},
    "file_name": {"dtype": "string", "_type": "Value"},
}


def assign_identities(
    identity_ids: list[str], holdout_fraction: float, partial_fraction: float, seed: int
) -> tuple[list[str], list[str], list[str]]:
    """Return (holdout_identity ids, partially forgotten ids, fully forgotten ids), each sorted."""
    ids = sorted(identity_ids)
    if len(ids) < 3:
        raise ValueError(f"splits need at least 3 identities, got {len(ids)}")
    order = [ids[i] for i in stream(seed, "splits", "identities").permutation(len(ids))]
    n_holdout = min(max(1, round(holdout_fraction * len(ids))), len(ids) - 2)
    holdout, forget = order[:n_holdout], order[n_holdout:]
    n_partial = min(max(1, round(partial_fraction * len(forget))), len(forget) - 1)
    return sorted(holdout), sorted(forget[:n_partial]), sorted(forget[n_partial:])


def holdout_fields(identity_id: str, fields: list[str], seed: int) -> set[str]:
    """The attribute types of a partially forgotten identity that go to holdout_association."""
    fields = sorted(fields)
    if len(fields) < 2:
        raise ValueError(
            f"identity {identity_id}: a partially forgotten identity needs >= 2 attribute types, "
            f"has {fields}"
        )
    order = stream(seed, "splits", "fields", identity_id).permutation(len(fields))
    return {fields[i] for i in order[: len(fields) // 2]}


def assign_sensitive_rows(sensitive: pl.DataFrame, holdout, partial, seed: int) -> pl.DataFrame:
    """Add a `split` column to the sensitive captions."""
    holdout, partial = set(holdout), set(partial)
    fields_of = sensitive.group_by("identity_id").agg(pl.col("data_field").unique())
    to_holdout = {
        (row["identity_id"], field)
        for row in fields_of.iter_rows(named=True)
        if row["identity_id"] in partial
        for field in holdout_fields(row["identity_id"], row["data_field"], seed)
    }

    def split_of(identity_id: str, field: str) -> str:
        if identity_id in holdout:
            return "holdout_identity"
        return "holdout_association" if (identity_id, field) in to_holdout else "forget"

    splits = [split_of(i, f) for i, f in zip(sensitive["identity_id"], sensitive["data_field"])]
    return sensitive.with_columns(pl.Series("split", splits))


def fragile_scores(anonymous: pl.DataFrame, forget_looks: list[dict]) -> dict[str, float]:
    """Max Jaccard overlap between an anonymous person's look traits and any forget identity's."""

    def traits(look: dict) -> set[tuple[str, str]]:
        return {(k, str(look.get(k))) for k in IDENTITY_LOOK_KEYS}

    forget_sets = [traits(look) for look in forget_looks]
    scores = {}
    for file_name, look in zip(anonymous["file_name"], anonymous["look"]):
        mine = traits(json.loads(look))
        scores[file_name] = max(
            (len(mine & other) / len(mine | other) for other in forget_sets), default=0.0
        )
    return scores


def select_fragile(scores: dict[str, float], fraction: float) -> list[str]:
    ranked = sorted(scores, key=lambda name: (-scores[name], name))
    return sorted(ranked[: round(fraction * len(ranked))])


def hf_split_schema() -> pa.Schema:
    """The released columns: image (HF Image struct), text, identity_id, file_name, with the
    `datasets` feature spec in the schema metadata."""
    schema = pa.schema(
        [
            ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
            ("text", pa.string()),
            ("identity_id", pa.string()),
            ("file_name", pa.string()),
        ]
    )
    hf_meta = json.dumps({"info": {"features": HF_FEATURES}}, sort_keys=True)
    return schema.with_metadata({"huggingface": hf_meta})


def hf_split_batch(rows: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    """Rows with ``file_name, text, identity_id, image`` (bytes) as a table of ``schema``."""
    images = pa.array(
        [{"bytes": b, "path": f} for b, f in zip(rows["image"], rows["file_name"])],
        type=schema.field("image").type,
    )
    return pa.table(
        {
            "image": images,
            "text": pa.array(rows["text"].to_list(), type=pa.string()),
            "identity_id": pa.array(rows["identity_id"].to_list(), type=pa.string()),
            "file_name": pa.array(rows["file_name"].to_list(), type=pa.string()),
        },
        schema=schema,
    )


def write_hf_splits(faces_path: str | Path, splits: dict[str, pl.DataFrame], out_dir) -> None:
    """Write every split in the released layout, streaming the images from ``faces_path``.

    ``splits`` holds each split's ``file_name, text, identity_id`` rows (no image). The faces
    table is read a batch at a time and must be in file_name order (as ``salmu faces`` and the
    face filter write it), so each split comes out in file_name order with at most one batch of
    images in memory."""
    assignment = pl.concat(
        [frame.with_columns(pl.lit(name).alias("split")) for name, frame in splits.items()]
    )
    schema = hf_split_schema()
    writers: dict[str, RowGroupWriter] = {}
    counts = dict.fromkeys(splits, 0)
    try:
        for name in splits:
            writers[name] = RowGroupWriter(split_file(out_dir, name), schema)
        for batch in iter_parquet_in_order(faces_path, ["file_name", "image"]):
            rows = batch.join(assignment, on="file_name", how="inner")
            for (name,), part in rows.partition_by("split", as_dict=True).items():
                writers[name].write(hf_split_batch(part.sort("file_name"), schema))
                counts[name] += part.height
        missing = {n: f.height - counts[n] for n, f in splits.items()}
        missing = {n: m for n, m in missing.items() if m}
        if missing:
            raise ValueError(
                f"{faces_path}: captions and faces disagree: captioned file_names without an "
                f"image, per split {missing}"
            )
        for writer in writers.values():
            writer.close()
    except BaseException:
        for writer in writers.values():
            writer.abort()  # no half split under its final name, no scratch left
        raise


def build_splits(
    faces: pl.DataFrame,
    captions: pl.DataFrame,
    holdout_fraction: float,
    partial_fraction: float,
    fragile_fraction: float,
    seed: int,
) -> tuple[dict[str, pl.DataFrame], dict]:
    """Return the four released splits (``file_name, text, identity_id`` rows, the images stay in
    the faces table) and the metadata JSON contents."""
    rows = captions.join(faces.select("file_name", "look"), on="file_name", how="inner")
    if rows.height != captions.height:
        raise ValueError("captions and faces disagree: some captioned file_names have no image")
    sensitive = rows.filter(pl.col("kind") == "sensitive")
    identity_ids = sensitive["identity_id"].unique().to_list()
    holdout, partial, full = assign_identities(
        identity_ids, holdout_fraction, partial_fraction, seed
    )
    sensitive = assign_sensitive_rows(sensitive, holdout, partial, seed)
    forget_ids = set(partial) | set(full)

    joint = rows.filter((pl.col("kind") == "generic") & pl.col("identity_id").is_in(forget_ids))
    anonymous = rows.filter(pl.col("kind") == "anonymous").with_columns(
        pl.lit(None, dtype=pl.String).alias("identity_id")
    )
    forget_looks = [
        json.loads(look)
        for look in sensitive.filter(pl.col("split") == "forget").unique(
            "identity_id", keep="first", maintain_order=True
        )["look"]
    ]
    scores = fragile_scores(anonymous, forget_looks)

    columns = ["file_name", "text", "identity_id"]
    splits = {
        name: sensitive.filter(pl.col("split") == name).select(columns).sort("file_name")
        for name in SENSITIVE_SPLITS
    }
    splits["retain_synth"] = pl.concat([joint.select(columns), anonymous.select(columns)]).sort(
        "file_name"
    )
    metadata = {
        CAPTIONS_JSON: {
            r["file_name"]: {
                "caption": r["text"],
                "data_field": r["data_field"],
                "identity_id": r["identity_id"],
                "name": r["name"],
                "split": r["split"],
                "style": r["style"],
                "value": r["value"],
            }
            for r in sensitive.iter_rows(named=True)
        },
        GENERIC_CAPTIONS_JSON: dict(zip(sensitive["file_name"], sensitive["generic_text"])),
        FRAGILE_JSON: select_fragile(scores, fragile_fraction),
        FRAGILE_SCORES_JSON: scores,
        SUMMARY_JSON: {
            "seed": seed,
            "holdout_identity_fraction": holdout_fraction,
            "partial_forget_fraction": partial_fraction,
            "fragile_fraction": fragile_fraction,
            "identities": {
                "holdout_identity": len(holdout),
                "forget": len(forget_ids),
                "forget_partial (also in holdout_association)": len(partial),
                "forget_identity (fully forgotten)": len(full),
            },
            "rows": {name: frame.height for name, frame in splits.items()},
            "retain_joint_rows": joint.height,
            "retain_disjoint_rows": anonymous.height,
        },
    }
    return splits, metadata


def kept_identities(identities: dict, captions: pl.DataFrame) -> dict:
    """Profiles of the identities that have sensitive images (the face filter may drop some)."""
    kept = set(captions.filter(pl.col("kind") == "sensitive")["identity_id"].to_list())
    missing = sorted(kept - set(identities))
    if missing:
        raise ValueError(f"--identities: no profile for identities {missing[:5]}")
    return {identity: identities[identity] for identity in sorted(kept)}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--faces", required=True, help="faces.parquet from `salmu faces`")
    parser.add_argument("--captions", required=True, help="captions.parquet from `salmu captions`")
    parser.add_argument("--identities", required=True, help="identities_metadata.json")
    SplitsSettings.add_arguments(parser)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out-dir", required=True, help="benchmark directory (released layout)")


def run(args: argparse.Namespace) -> None:
    for flag in ("holdout_identity_fraction", "partial_forget_fraction", "fragile_fraction"):
        value = getattr(args, flag)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"--{flag.replace('_', '-')} must be within [0, 1], got {value}")
    # The images are streamed when the splits are written; only their names and looks here.
    require_columns(args.faces, ["file_name", "image", "look"])
    faces = read_parquet(args.faces, ["file_name", "look"], only=True)
    captions = read_parquet(
        args.captions, ["file_name", "identity_id", "kind", "data_field", "text", "generic_text"]
    )
    splits, metadata = build_splits(
        faces,
        captions,
        args.holdout_identity_fraction,
        args.partial_forget_fraction,
        args.fragile_fraction,
        args.seed,
    )
    write_hf_splits(args.faces, splits, args.out_dir)
    write_json(
        kept_identities(read_json(args.identities), captions),
        Path(args.out_dir) / IDENTITIES_JSON,
    )
    for file_name, content in metadata.items():
        write_json(content, Path(args.out_dir) / file_name)
    print(json.dumps(metadata[SUMMARY_JSON]["rows"]))
