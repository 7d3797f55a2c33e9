"""Tests for ``salmu face-filter``: decisions on hand-built embeddings, then real CLI runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from salmu import cli
from salmu.face_filter import cli as ff
from salmu.face_filter import decisions, inputs, pixels
from salmu.io import read_parquet

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "resources" / "models" / "tiny-clip"
GENDERS = ["female", "male"]
AGES = ["young", "middle-aged", "older"]


# ---------------------------------------------------------------------------------------------
# Decision logic on hand-built embeddings
# ---------------------------------------------------------------------------------------------


def make_meta(people: dict[str, tuple[int, int]], anonymous: dict[str, int] | None = None):
    """Rows for personas {id: (n_sensitive, n_generic)} and anonymous people {number: n_images}."""
    rows = []
    for ident, (n_sensitive, n_generic) in people.items():
        for idx in range(n_sensitive + n_generic):
            kind = "sensitive" if idx < n_sensitive else "generic"
            rows.append((f"{ident}_{idx:03d}_ar-1.00.jpg", ident, ident, kind, idx))
    for number, n in (anonymous or {}).items():
        for idx in range(n):
            rows.append((f"{number}_{idx:03d}_ar-1.00.jpg", number, None, "anonymous", idx))
    return pl.DataFrame(
        rows,
        schema=["file_name", "person", "identity_id", "kind", "image_idx"],
        orient="row",
    )


def unit(*values: float) -> np.ndarray:
    v = np.array(values, dtype=np.float64)
    return v / np.linalg.norm(v)


def embeddings_for(meta: pl.DataFrame, directions: dict[str, np.ndarray], jitter: float = 0.05):
    """Each row near its person's direction (small deterministic jitter)."""
    rng = np.random.default_rng(0)
    out = []
    for person in meta["person"].to_list():
        v = directions[person] + jitter * rng.standard_normal(len(directions[person]))
        out.append(v / np.linalg.norm(v))
    return np.stack(out)


A, B, C = "00000001", "00000002", "90000000"
DIRECTIONS = {A: unit(1, 0, 0, 0), B: unit(0, 1, 0, 0), C: unit(0, 0, 1, 0)}


def test_off_identity_image_dropped_consistent_identity_untouched():
    meta = make_meta({A: (5, 1), B: (5, 1)}, {C: 2})
    emb = embeddings_for(meta, DIRECTIONS)
    swapped = meta["file_name"].to_list().index(f"{A}_003_ar-1.00.jpg")
    emb[swapped] = DIRECTIONS[B]  # an image of B filed under A
    out = decisions.decide(meta, emb, threshold=0.7, min_images=1)
    assert [i for i, why in enumerate(out.reasons) if why] == [swapped]
    assert out.reasons[swapped] == ["identity"]
    assert out.keep.sum() == meta.height - 1 and out.dropped_identities == {}
    # References are A_000, B_000 and C_000, and are flagged as such.
    refs = meta.filter(pl.Series(out.is_reference))["file_name"].to_list()
    assert refs == [f"{A}_000_ar-1.00.jpg", f"{B}_000_ar-1.00.jpg", f"{C}_000_ar-1.00.jpg"]


def test_reference_is_the_lowest_sensitive_index_not_a_generic_one():
    meta = make_meta({A: (3, 2)}).filter(pl.col("image_idx") != 0)  # no image_idx 0 left
    emb = embeddings_for(meta, DIRECTIONS)
    ref = decisions.reference_rows(meta)
    assert {meta["file_name"][int(r)] for r in ref} == {f"{A}_001_ar-1.00.jpg"}
    only_generic = make_meta({A: (3, 2)}).filter(pl.col("kind") == "generic")
    with pytest.raises(ValueError, match=f"identity {A} has no sensitive image"):
        decisions.decide(only_generic, emb[:2], threshold=0.5, min_images=1)


def test_anonymous_person_checked_against_its_own_reference():
    meta = make_meta({A: (3, 0)}, {C: 3})
    emb = embeddings_for(meta, DIRECTIONS)
    emb[-1] = DIRECTIONS[A]  # C's last image looks like A
    out = decisions.decide(meta, emb, threshold=0.7, min_images=1)
    assert [meta["file_name"][i] for i, why in enumerate(out.reasons) if why] == [
        f"{C}_002_ar-1.00.jpg"
    ]


def test_identity_below_min_images_dropped_with_its_generic_images():
    meta = make_meta({A: (4, 2), B: (4, 2)})
    emb = embeddings_for(meta, DIRECTIONS)
    names = meta["file_name"].to_list()
    for idx in (1, 2):  # two of A's four sensitive images are off-identity
        emb[names.index(f"{A}_{idx:03d}_ar-1.00.jpg")] = DIRECTIONS[C]
    out = decisions.decide(meta, emb, threshold=0.7, min_images=3)
    a_rows = [i for i, n in enumerate(names) if n.startswith(A)]
    assert (
        not out.keep[a_rows].any()
        and out.keep[[i for i in range(len(names)) if i not in a_rows]].all()
    )
    assert out.dropped_identities == {
        A: {"reason": "min_images", "sensitive_before": 4, "sensitive_left": 2}
    }
    reasons = {names[i]: out.reasons[i] for i in a_rows}
    assert reasons[f"{A}_001_ar-1.00.jpg"] == ["identity"]
    assert reasons[f"{A}_004_ar-1.00.jpg"] == ["min_images"]  # generic image goes too
    # With min_images 2 the identity survives, minus its two off-identity images.
    out2 = decisions.decide(meta, emb, threshold=0.7, min_images=2)
    assert out2.dropped_identities == {} and out2.keep.sum() == meta.height - 2


def test_demographic_disagreement_dropped():
    meta = make_meta({A: (3, 1), B: (3, 0)})
    # 2-d "image" space: gender reads off the first coordinate.
    classes = np.stack([unit(1, 0), unit(-1, 0)])  # female, male
    emb = np.stack([unit(1, 0.2)] * meta.height)
    emb[2] = unit(-1, 0.2)  # A_002 reads as male; A is female
    expected = ["female"] * 4 + ["male"] * 3  # B is male, and all of B reads female
    check = decisions.Demographic(expected, ("female", "male"), classes)
    out = decisions.decide(
        meta, emb, threshold=0.5, min_images=1, demographics={"gender": check}, margin=0.0
    )
    dropped = {meta["file_name"][i]: why for i, why in enumerate(out.reasons) if why}
    assert dropped[f"{A}_002_ar-1.00.jpg"] == ["identity", "gender"]
    assert all(dropped[f"{B}_{i:03d}_ar-1.00.jpg"] == ["gender"] for i in (1, 2))
    # B's reference disagrees too, so B loses everything and goes as an identity.
    assert dropped[f"{B}_000_ar-1.00.jpg"] == ["gender"]
    assert B in out.dropped_identities and A not in out.dropped_identities
    assert out.readings["gender"][2] == "male" and out.readings["gender"][0] == "female"
    # A margin larger than the score gap keeps every image (identity aside).
    lenient = decisions.decide(
        meta, emb, threshold=-1.0, min_images=1, demographics={"gender": check}, margin=2.5
    )
    assert lenient.keep.all()


# ---------------------------------------------------------------------------------------------
# CLI runs
# ---------------------------------------------------------------------------------------------


def write_personas(path: Path, n: int) -> list[str]:
    ids = [f"{188 + 7 * i:08d}" for i in range(n)]
    pl.DataFrame(
        {
            "identity_id": ids,
            "name": [f"Person {i}" for i in range(n)],
            "gender": [GENDERS[i % 2] for i in range(n)],
            "age_band": [AGES[(i // 2) % 3] for i in range(n)],
        }
    ).write_parquet(path)
    return ids


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """A small procedural faces table: 5 personas x (6 sensitive + 1 generic), 2 anonymous x 2."""
    root = tmp_path_factory.mktemp("faces")
    ids = write_personas(root / "personas.parquet", 5)
    argv = ["faces", "--personas", str(root / "personas.parquet"), "--backend", "procedural"]
    argv += ["--images-per-identity", "6", "--generic-per-identity", "1"]
    argv += ["--anonymous-identities", "2", "--images-per-anonymous", "2", "--size", "64"]
    argv += ["--seed", "7", "--out", str(root / "faces.parquet")]
    assert cli.main(argv) == 0
    return root, ids


def filter_argv(root: Path, faces: Path, out: str, *extra: str) -> list[str]:
    return [
        "face-filter",
        "--faces",
        str(faces),
        "--personas",
        str(root / "personas.parquet"),
        "--out-faces",
        str(root / f"{out}.parquet"),
        "--out-report",
        str(root / f"{out}.json"),
        # The tests' identities are small; the config default (20) is the tiny tier's.
        "--min-images",
        "1",
        *extra,
    ]


def test_consistent_procedural_faces_all_kept(rendered):
    root, ids = rendered
    assert cli.main(filter_argv(root, root / "faces.parquet", "clean")) == 0
    faces = read_parquet(root / "faces.parquet")
    kept = read_parquet(root / "clean.parquet")
    assert kept.equals(faces)
    report = json.loads((root / "clean.json").read_text())
    assert report["before"] == report["after"]
    assert report["after"]["identities"] == 5 and report["after"]["anonymous_people"] == 2
    assert report["settings"]["identity_threshold"] == ff.DEFAULT_THRESHOLDS["pixels"]
    assert report["settings"]["demographics"] == []
    assert report["similarity_to_reference"]["all"]["min"] >= ff.DEFAULT_THRESHOLDS["pixels"]
    assert report["kept_per_identity"] == {i: {"sensitive": 6, "generic": 1} for i in ids}


def test_swapped_image_dropped_by_pixels_embedder_deterministically(rendered):
    root, ids = rendered
    faces = read_parquet(root / "faces.parquet")
    names = faces["file_name"].to_list()
    # Swap in the other persona whose reference looks least like the first persona's.
    refs = {i: names.index(next(n for n in names if n.startswith(f"{i}_000_"))) for i in ids}
    emb = pixels.embed_pixels([faces["image"][refs[i]] for i in ids])
    other = ids[1 + int(np.argmin(emb[1:] @ emb[0]))]
    target = names.index(next(n for n in names if n.startswith(f"{ids[0]}_003_")))
    donor = names.index(next(n for n in names if n.startswith(f"{other}_003_")))
    images = faces["image"].to_list()
    images[target] = images[donor]
    swapped = faces.with_columns(pl.Series("image", images, dtype=pl.Binary))
    swapped.write_parquet(root / "swapped.parquet")

    assert cli.main(filter_argv(root, root / "swapped.parquet", "run1")) == 0
    kept = read_parquet(root / "run1.parquet")
    assert kept.columns == faces.columns and kept.schema == faces.schema
    assert set(names) - set(kept["file_name"].to_list()) == {names[target]}
    assert kept["file_name"].to_list() == [n for n in names if n != names[target]]
    report = json.loads((root / "run1.json").read_text())
    assert report["dropped"]["by_reason"] == {
        "identity": 1,
        "gender": 0,
        "age_band": 0,
        "min_images": 0,
    }
    assert report["dropped"]["images_per_kind"]["sensitive"] == 1
    assert [d["file_name"] for d in report["dropped_images"]] == [names[target]]
    assert report["kept_per_identity"][ids[0]] == {"sensitive": 5, "generic": 1}

    # min-images 6: the swapped identity (5 left) is dropped whole, generic image included.
    assert cli.main(filter_argv(root, root / "swapped.parquet", "strict", "--min-images", "6")) == 0
    strict = json.loads((root / "strict.json").read_text())
    assert strict["dropped_identities"] == {
        ids[0]: {"reason": "min_images", "sensitive_before": 6, "sensitive_left": 5}
    }
    assert strict["dropped"]["by_reason"]["min_images"] == 6
    assert strict["after"]["identities"] == 4
    assert strict["kept_per_identity"][ids[0]] == {"sensitive": 0, "generic": 0}

    # Byte-identical on rerun.
    assert cli.main(filter_argv(root, root / "swapped.parquet", "run2")) == 0
    for ext in ("parquet", "json"):
        assert (root / f"run1.{ext}").read_bytes() == (root / f"run2.{ext}").read_bytes()


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    import torch

    from salmu.clip_model import load_clip, save_checkpoint

    torch.manual_seed(0)
    model, _, _ = load_clip(MODEL_DIR)
    path = tmp_path_factory.mktemp("clip") / "tiny.pt"
    save_checkpoint(model, path, "tiny")
    return path


def test_clip_embedder_runs_and_reports(rendered, tiny_clip, tmp_path):
    root, ids = rendered
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text(
        "gender:\n  female: [a photo of a woman., a portrait of a woman.]\n  male: a photo of a man.\n"
    )
    extra = ["--embedder", "clip", "--clip-model", str(MODEL_DIR)]
    extra += ["--clip-checkpoint", str(tiny_clip), "--identity-threshold", "0.0"]
    extra += [
        "--prompts",
        str(prompts),
        "--batch-size",
        "8",
        "--demographics",
        "gender",
        "age_band",
    ]
    assert cli.main(filter_argv(root, root / "faces.parquet", "clip1", *extra)) == 0
    report = json.loads((root / "clip1.json").read_text())
    settings = report["settings"]
    assert settings["embedder"] == "clip" and settings["demographics"] == ["gender", "age_band"]
    assert settings["prompts"]["gender"]["male"] == ["a photo of a man."]
    assert settings["prompts"]["age_band"] == inputs.DEFAULT_PROMPTS["age_band"]
    n = report["before"]["images"]
    for attribute, classes in inputs.DEMOGRAPHIC_CLASSES.items():
        confusion = report["demographic_confusion"][attribute]
        assert set(confusion) == set(classes)
        assert sum(sum(row.values()) for row in confusion.values()) == n
    kept = read_parquet(root / "clip1.parquet")
    assert kept.height == report["after"]["images"] == n - report["dropped"]["images"]
    assert kept.columns == read_parquet(root / "faces.parquet").columns
    for item in report["dropped_images"]:
        assert set(item) == {"file_name", "reasons", "similarity", "gender", "age_band"}
    # Deterministic too, and demographics can be switched off.
    assert cli.main(filter_argv(root, root / "faces.parquet", "clip2", *extra)) == 0
    assert (root / "clip1.json").read_bytes() == (root / "clip2.json").read_bytes()
    assert (root / "clip1.parquet").read_bytes() == (root / "clip2.parquet").read_bytes()
    off = [*extra, "--demographics", "--identity-threshold", "-1"]
    assert cli.main(filter_argv(root, root / "faces.parquet", "clip3", *off)) == 0
    assert json.loads((root / "clip3.json").read_text())["after"]["images"] == n


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def test_clip_without_model_names_flag_and_config_key(rendered, capsys):
    root, _ = rendered
    argv = filter_argv(root, root / "faces.parquet", "err", "--embedder", "clip")
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "--clip-model" in err and "faces.filter.clip_model" in err
    assert not (root / "err.parquet").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--demographics", "gender"], "needs --embedder clip"),
        (["--demographics", "eye_color"], "--demographics 'eye_color'"),
        (["--identity-threshold", "1.5"], "--identity-threshold 1.5"),
        (["--min-images", "-1"], "--min-images -1"),
        (
            ["--embedder", "clip", "--clip-model", "/nonexistent/model"],
            "--identity-threshold",
        ),
    ],
)
def test_bad_flags(rendered, extra, message):
    root, _ = rendered
    import argparse

    parser = argparse.ArgumentParser()
    ff.configure_parser(parser)
    args = parser.parse_args(filter_argv(root, root / "faces.parquet", "bad", *extra)[1:])
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        ff.run(args)


def test_missing_inputs_name_the_file(rendered, tmp_path):
    root, _ = rendered
    import argparse

    parser = argparse.ArgumentParser()
    ff.configure_parser(parser)
    args = parser.parse_args(filter_argv(root, tmp_path / "nope.parquet", "x")[1:])
    with pytest.raises(FileNotFoundError, match="nope.parquet"):
        ff.run(args)
    missing_model = filter_argv(root, root / "faces.parquet", "x", "--embedder", "clip")
    missing_model += ["--clip-model", str(tmp_path / "no-model"), "--identity-threshold", "0.5"]
    args = parser.parse_args(missing_model[1:])
    with pytest.raises(FileNotFoundError, match="no-model"):
        ff.run(args)
    bad_prompts = tmp_path / "prompts.yaml"
    bad_prompts.write_text("gender:\n  woman: [a photo of a woman.]\n")
    with pytest.raises(ValueError, match="prompts.yaml: gender: expected the classes"):
        inputs.load_prompts(bad_prompts)
