import tarfile

import polars as pl
import pytest

from salmu import leakcheck, shards
from salmu.cli import main
from salmu.io import write_parquet

from conftest import solid_jpeg


def frame(prefix, n, offset=0):
    return pl.DataFrame(
        {
            "file_name": [f"{prefix}{i:03d}_ar-0.75.jpg" for i in range(n)],
            "text": [f"caption {prefix} {i}" for i in range(n)],
            "image": [solid_jpeg(offset + i) for i in range(n)],
        }
    )


def test_shards_are_deterministic_and_complete(tmp_path):
    write_parquet(frame("a", 25), tmp_path / "a.parquet")
    write_parquet(frame("b", 10, offset=100), tmp_path / "b.parquet")
    for out in ("x", "y"):
        assert (
            main(
                [
                    "shards",
                    "--inputs",
                    str(tmp_path / "a.parquet"),
                    str(tmp_path / "b.parquet"),
                    "--out-dir",
                    str(tmp_path / out),
                    "--samples-per-shard",
                    "10",
                    "--seed",
                    "0",
                ]
            )
            == 0
        )
    for name in ("00000.tar", "00003.tar", "manifest.json", "sizes.json"):
        assert (tmp_path / "x" / name).read_bytes() == (tmp_path / "y" / name).read_bytes()
    manifest = shards.read_manifest(tmp_path / "x")
    assert manifest["num_samples"] == 35 and len(manifest["shards"]) == 4
    with tarfile.open(tmp_path / "x" / "00000.tar") as tar:
        names = tar.getnames()
    # Keys carry no dot, so webdataset groups .jpg/.txt/.json of one sample together.
    assert all(name.count(".") == 1 for name in names)
    assert len(names) == 30


def test_shards_do_not_depend_on_how_the_rows_are_split_into_files(tmp_path):
    """The shuffle is over every row: the rows in one file or spread over three (written in
    several row groups) give the same bytes, and the images' scratch copy is gone after."""
    rows = pl.concat([frame("a", 25), frame("b", 10, offset=100)])
    write_parquet(rows, tmp_path / "one.parquet")
    parts = [rows.slice(0, 7), rows.slice(7, 20), rows.slice(27)]
    for k, part in enumerate(parts):
        part.write_parquet(tmp_path / f"part{k}.parquet", row_group_size=3)
    shards.write_shards([tmp_path / "one.parquet"], tmp_path / "x", 10, seed=4)
    shards.write_shards([tmp_path / f"part{k}.parquet" for k in (2, 0, 1)], tmp_path / "y", 10, 4)
    names = sorted(p.name for p in (tmp_path / "x").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "y").iterdir())
    assert names == ["00000.tar", "00001.tar", "00002.tar", "00003.tar"] + [
        "bytes.json",
        "manifest.json",
        "sizes.json",
    ]
    for name in names:
        assert (tmp_path / "x" / name).read_bytes() == (tmp_path / "y" / name).read_bytes()


def test_duplicate_file_names_are_rejected(tmp_path):
    write_parquet(frame("a", 3), tmp_path / "a.parquet")
    with pytest.raises(ValueError, match="share file_names"):
        shards.write_shards([tmp_path / "a.parquet", tmp_path / "a.parquet"], tmp_path / "x", 4, 0)


def test_leakcheck_finds_renamed_copies_by_hash(tmp_path):
    sensitive = frame("s", 5, offset=500)
    write_parquet(frame("r", 8), tmp_path / "retain.parquet")
    write_parquet(sensitive, tmp_path / "sensitive.parquet")
    renamed = sensitive.head(1).with_columns(pl.lit("innocent_ar-1.00.jpg").alias("file_name"))
    write_parquet(pl.concat([frame("r", 8), renamed]), tmp_path / "leaky.parquet")
    for name in ("retain", "sensitive", "leaky"):
        shards.write_shards([str(tmp_path / f"{name}.parquet")], tmp_path / name, 4, seed=0)
    clean = leakcheck.find_leaks([str(tmp_path / "retain")], [str(tmp_path / "sensitive")])
    assert clean["leaks"] == [] and clean["checked_samples"] == 8
    leaky = leakcheck.find_leaks([str(tmp_path / "leaky")], [str(tmp_path / "sensitive")])
    assert [leak["file_name"] for leak in leaky["leaks"]] == ["innocent_ar-1.00.jpg"]
    out = tmp_path / "report.json"
    assert (
        main(
            [
                "leakcheck",
                "--train",
                str(tmp_path / "leaky"),
                "--forbidden",
                str(tmp_path / "sensitive"),
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert not out.exists()


def test_leakcheck_reads_a_split_parquet_as_the_forbidden_set(tmp_path):
    """The unlearning audit's forbidden sets are the released holdout parquets, not shards."""
    holdout = frame("h", 4, offset=900)
    write_parquet(holdout, tmp_path / "holdout.parquet")
    write_parquet(pl.concat([frame("f", 6), holdout.tail(1)]), tmp_path / "forget.parquet")
    shards.write_shards([str(tmp_path / "forget.parquet")], tmp_path / "forget", 4, seed=0)
    report = leakcheck.find_leaks([str(tmp_path / "forget")], [str(tmp_path / "holdout.parquet")])
    assert report["forbidden_samples"] == 4 and report["checked_samples"] == 7
    assert [leak["file_name"] for leak in report["leaks"]] == [holdout["file_name"][-1]]


def test_a_bad_image_column_or_a_damaged_file_is_named_and_leaves_no_scratch(tmp_path):
    write_parquet(frame("a", 5), tmp_path / "a.parquet")
    text_images = frame("b", 3, offset=50).with_columns(pl.lit("not bytes").alias("image"))
    write_parquet(text_images, tmp_path / "b.parquet")
    with pytest.raises(ValueError, match=r"b.parquet: column 'image' is String; expected JPEG"):
        shards.write_shards([tmp_path / "a.parquet", tmp_path / "b.parquet"], tmp_path / "x", 4, 0)
    # A damaged image page header (the footer intact): found while the images are copied to the
    # scratch file, which goes with the error.
    import pyarrow.parquet as pq

    frame("c", 40, offset=80).write_parquet(tmp_path / "c.parquet", row_group_size=8)
    group = pq.ParquetFile(tmp_path / "c.parquet").metadata.row_group(2)
    image = next(group.column(i) for i in range(3) if group.column(i).path_in_schema == "image")
    data = bytearray((tmp_path / "c.parquet").read_bytes())
    data[image.data_page_offset : image.data_page_offset + 16] = b"\xff" * 16
    (tmp_path / "c.parquet").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="c.parquet: unreadable parquet file"):
        shards.write_shards([tmp_path / "a.parquet", tmp_path / "c.parquet"], tmp_path / "y", 4, 0)
    assert not list((tmp_path / "y").glob("*spool*"))
