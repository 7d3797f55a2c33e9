import json
from pathlib import Path

import polars as pl
import pytest

from salmu import splits
from salmu.cli import main
from salmu.io import write_json, write_parquet


def build(faces, captions, **kw):
    params = dict(holdout_fraction=0.25, partial_fraction=0.5, fragile_fraction=0.4, seed=3)
    params.update(kw)
    return splits.build_splits(faces, captions, **params)


def test_split_semantics(faces_and_captions):
    faces, captions = faces_and_captions
    parts, meta = build(faces, captions)
    names = {split: set(frame["file_name"]) for split, frame in parts.items()}
    # Disjoint by file_name, and every captioned sensitive image lands in exactly one split.
    all_names = [n for s in names.values() for n in s]
    assert len(all_names) == len(set(all_names))
    sensitive = set(captions.filter(pl.col("kind") == "sensitive")["file_name"])
    assert names["forget"] | names["holdout_association"] | names["holdout_identity"] == sensitive

    ids = {s: set(parts[s]["identity_id"].drop_nulls()) for s in parts}
    assert not ids["holdout_identity"] & ids["forget"]
    assert ids["holdout_association"] and ids["holdout_association"] <= ids["forget"]
    # retain_synth: forget identities (retain_joint) or null (retain_disjoint), never holdout ones.
    assert ids["retain_synth"] <= ids["forget"]
    assert parts["retain_synth"]["identity_id"].null_count() == 10

    # An association (identity, attribute type) never straddles two splits.
    field = {
        r["file_name"]: (r["identity_id"], r["data_field"]) for r in captions.iter_rows(named=True)
    }
    owner = {}
    for split, files in names.items():
        for f in files:
            if split != "retain_synth":
                assert owner.setdefault(field[f], split) == split

    fragile = meta["fragile_set_ids.json"]
    disjoint = set(parts["retain_synth"].filter(pl.col("identity_id").is_null())["file_name"])
    assert len(fragile) == 4 and set(fragile) <= disjoint
    scores = meta["fragile_set_all_similarities.json"]
    assert min(scores[f] for f in fragile) >= max(scores[f] for f in disjoint - set(fragile))
    summary = meta["splits_summary.json"]
    assert summary["identities"]["holdout_identity"] == 3
    assert summary["rows"]["forget"] == len(names["forget"])


def test_partial_identities_split_their_attribute_types(faces_and_captions):
    faces, captions = faces_and_captions
    parts, meta = build(faces, captions, partial_fraction=1.0)
    assoc_ids = set(parts["holdout_association"]["identity_id"])
    forget_ids = set(parts["forget"]["identity_id"])
    # All but one forget identity are partial; each keeps half its 4 attribute types in forget.
    assert len(assoc_ids) == len(forget_ids) - 1
    per_identity = parts["holdout_association"].group_by("identity_id").len()["len"]
    assert set(per_identity.to_list()) == {6}  # 2 of 4 fields x 3 images each


def test_cli_writes_released_layout_byte_identically(tmp_path, faces_and_captions):
    faces, captions = faces_and_captions
    write_parquet(faces, tmp_path / "faces.parquet")
    write_parquet(captions, tmp_path / "captions.parquet")
    profiles = {f"{i:08d}": {"name": f"Person {i}"} for i in range(13)}  # 12 kept + 1 filtered out
    write_json(profiles, tmp_path / "ids.json")
    outputs = []
    for out in ("a", "b"):
        assert (
            main(
                [
                    "splits",
                    "--faces",
                    str(tmp_path / "faces.parquet"),
                    "--captions",
                    str(tmp_path / "captions.parquet"),
                    "--identities",
                    str(tmp_path / "ids.json"),
                    "--seed",
                    "1",
                    "--out-dir",
                    str(tmp_path / out),
                ]
            )
            == 0
        )
        outputs.append(
            {
                p.relative_to(tmp_path / out): p.read_bytes()
                for p in sorted((tmp_path / out).rglob("*"))
                if p.is_file()
            }
        )
    assert outputs[0] == outputs[1]
    assert Path("data/forget-00000-of-00001.parquet") in outputs[0]
    kept = json.loads((tmp_path / "a" / "identities_metadata.json").read_text())
    assert sorted(kept) == [f"{i:08d}" for i in range(12)]
    table = pl.read_parquet(tmp_path / "a" / "data" / "forget-00000-of-00001.parquet")
    assert table.columns == ["image", "text", "identity_id", "file_name"]
    assert table.schema["image"] == pl.Struct({"bytes": pl.Binary, "path": pl.String})
    import pyarrow.parquet as pq

    hf = json.loads(
        pq.read_schema(tmp_path / "a/data/forget-00000-of-00001.parquet").metadata[b"huggingface"]
    )
    assert hf["info"]["features"]["image"] == {"_type": "Image"}


def test_bad_fraction_is_a_clear_error(tmp_path, capsys):
    code = main(
        [
            "splits",
            "--faces",
            "f",
            "--captions",
            "c",
            "--identities",
            "i",
            "--seed",
            "0",
            "--fragile-fraction",
            "1.5",
            "--out-dir",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert "--fragile-fraction" in capsys.readouterr().err


def test_too_few_identities():
    with pytest.raises(ValueError, match="at least 3 identities"):
        splits.assign_identities(["a", "b"], 0.25, 0.5, 0)


def test_images_are_streamed_from_a_faces_table_in_file_name_order(tmp_path, faces_and_captions):
    """The splits read the images a batch at a time, so the faces table must be in file_name
    order (as salmu faces and the face filter write it): otherwise an error, and no split file."""
    faces, captions = faces_and_captions
    write_parquet(captions, tmp_path / "captions.parquet")
    write_json({f"{i:08d}": {"name": f"Person {i}"} for i in range(13)}, tmp_path / "ids.json")
    common = ["--captions", str(tmp_path / "captions.parquet"), "--identities"]
    common += [str(tmp_path / "ids.json"), "--seed", "1"]
    faces.reverse().write_parquet(tmp_path / "reversed.parquet", row_group_size=7)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="reversed.parquet: rows not in file_name order"):
        splits.run(
            parse(["--faces", str(tmp_path / "reversed.parquet"), *common, "--out-dir", str(out)])
        )
    assert not list(out.rglob("*.parquet*"))
    # In order, in many small row groups: the same splits as the in-memory build.
    faces.write_parquet(tmp_path / "faces.parquet", row_group_size=7)
    splits.run(parse(["--faces", str(tmp_path / "faces.parquet"), *common, "--out-dir", str(out)]))
    parts, _ = build(faces, captions, holdout_fraction=0.25, partial_fraction=0.667,
                     fragile_fraction=0.2, seed=1)  # fmt: skip
    for name, expected in parts.items():
        table = pl.read_parquet(out / "data" / f"{name}-00000-of-00001.parquet")
        assert table.select(expected.columns).equals(expected)
        by_name = dict(zip(faces["file_name"], faces["image"]))
        assert [row["bytes"] for row in table["image"]] == [by_name[f] for f in table["file_name"]]


def parse(argv):
    import argparse

    parser = argparse.ArgumentParser()
    splits.configure_parser(parser)
    return parser.parse_args(argv)
