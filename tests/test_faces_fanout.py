"""The faces and face-filter stages as N jobs over identity ranges (config faces.jobs): parts that
cover everyone once, merges byte-identical to one job, and a lost part redone alone."""

from __future__ import annotations

import hashlib
import shutil

import polars as pl
import pytest
from test_faces import faces_args, make_personas

from salmu import cli, faces
from salmu.faces_merge import merge_parts

from helpers import ROOT, job_counts, snakemake


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("parts", [1, 2, 3, 7])
def test_parts_cover_every_person_once_in_order(parts):
    counts = [5] * 6 + [2] * 9  # personas, then anonymous people with fewer images
    bounds = [faces.part_bounds(counts, k, parts) for k in range(parts)]
    assert bounds[0][0] == 0 and bounds[-1][1] == len(counts)
    for (_, stop), (start, _) in zip(bounds, bounds[1:]):
        assert stop == start  # contiguous, no gap, no overlap
    images = [sum(counts[a:b]) for a, b in bounds]
    # Balanced by images: a part is off the even share by less than one person's images.
    assert all(abs(n - sum(counts) / parts) < max(counts) for n in images)


def test_a_part_can_be_empty_and_the_merge_still_matches():
    # One person with most of the images: with 3 parts the middle range has nobody.
    bounds = [faces.part_bounds([10, 1, 1], k, 3) for k in range(3)]
    assert bounds == [(0, 1), (1, 1), (1, 3)]


def test_part_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="--part 3 --parts 3"):
        faces.part_bounds([1, 1], 3, 3)


def render_parts(tmp_path, parts: int) -> list:
    paths = []
    for k in range(parts):
        out = f"part{k}-of-{parts}.parquet"
        faces.run(faces_args(tmp_path, out=out, part=k, parts=parts, contact_sheet=None))
        paths.append(tmp_path / out)
    return paths


def test_merged_parts_are_byte_identical_to_one_job(tmp_path):
    make_personas(tmp_path / "personas.parquet", 5)
    one = render_parts(tmp_path, 1)
    for parts in (3, 4):
        merged = tmp_path / f"merged{parts}.parquet"
        merge_parts(render_parts(tmp_path, parts), merged, faces.SCHEMA)
        assert sha256(merged) == sha256(one[0])
    # The table is what one job renders in memory, row for row.
    whole = pl.read_parquet(one[0])
    assert whole["file_name"].to_list() == sorted(whole["file_name"].to_list())
    assert whole.height == 5 * (3 + 2) + 2 * 2


def test_merge_refuses_parts_out_of_order_and_writes_nothing(tmp_path):
    make_personas(tmp_path / "personas.parquet", 5)
    first, second = render_parts(tmp_path, 2)
    out = tmp_path / "faces.parquet"
    with pytest.raises(ValueError, match="not in file_name order"):
        merge_parts([second, first], out, faces.SCHEMA)
    assert not out.exists() and not list(tmp_path.glob("faces.parquet*"))


def test_face_filter_parts_merge_to_the_whole_stage(tmp_path, capsys):
    make_personas(tmp_path / "personas.parquet", 5)
    (whole,) = render_parts(tmp_path, 1)
    parts = render_parts(tmp_path, 3)
    common = ["--personas", str(tmp_path / "personas.parquet"), "--min-images", "1"]
    assert cli.main(["face-filter", "--faces", str(whole), *common,
              "--out-faces", str(tmp_path / "kept1.parquet"),
              "--out-report", str(tmp_path / "report1.json")]) == 0  # fmt: skip
    checks = []
    for k, part in enumerate(parts):
        checks.append(tmp_path / f"checks{k}.parquet")
        argv = ["face-filter", "--faces", str(part), *common, "--out-checks", str(checks[-1])]
        assert cli.main(argv) == 0
    assert cli.main(["face-filter-merge", "--checks", *map(str, checks), "--faces", *map(str, parts),
              *common, "--out-faces", str(tmp_path / "kept3.parquet"),
              "--out-report", str(tmp_path / "report3.json")]) == 0  # fmt: skip
    assert sha256(tmp_path / "kept3.parquet") == sha256(tmp_path / "kept1.parquet")
    assert sha256(tmp_path / "report3.json") == sha256(tmp_path / "report1.json")
    # Checks and faces parts that do not line up are refused, naming the part.
    capsys.readouterr()
    assert cli.main(["face-filter-merge", "--checks", *map(str, checks),
                          "--faces", *map(str, reversed(parts)), *common,
                          "--out-faces", str(tmp_path / "bad.parquet"),
                          "--out-report", str(tmp_path / "bad.json")]) == 2  # fmt: skip
    assert "part2-of-3.parquet: its rows do not match the checks" in capsys.readouterr().err
    assert not (tmp_path / "bad.parquet").exists()


RUN = "pytest-faces-fanout"
SMALL = (
    "personas:\n  n_identities: 6\n"
    "evaluate:\n  distractors: 4\n"
    "faces:\n  images_per_identity: 4\n  generic_per_identity: 1\n  anonymous_identities: 4\n"
    "  images_per_anonymous: 2\n  size: 32\n  filter:\n    min_images: 1\n"
)


@pytest.mark.e2e
def test_snakemake_runs_three_faces_jobs_and_a_failed_one_alone_again(tmp_path):
    shutil.rmtree(ROOT / "results" / RUN, ignore_errors=True)
    data = ROOT / "results" / RUN / "data"
    outputs = {}
    for jobs in (1, 3):
        overlay = tmp_path / f"jobs{jobs}.yaml"
        overlay.write_text(SMALL + f"  jobs: {jobs}\n")
        config = ("--cores", "2", "--configfile", str(overlay), "--config", f"run={RUN}")
        targets = [f"results/{RUN}/data/faces_kept.parquet"]
        targets.append(f"results/{RUN}/data/faces_contact_sheet.png")
        expected = {"faces": jobs, "face_filter": jobs}
        if jobs == 3:
            # Parts 0 and 2 made, part 1 killed: the run that follows redoes part 1 alone.
            done = [f"results/{RUN}/data/{d}/{k:03d}-of-003.parquet" for k in (0, 2)
                    for d in ("faces_parts", "face_filter_parts")]  # fmt: skip
            snakemake(*done, *config)
            expected = {"faces": 1, "face_filter": 1}
        result = snakemake(*targets, *config)
        counts = job_counts(result.stdout + result.stderr)
        assert {rule: counts.get(rule) for rule in expected} == expected
        assert counts["merge_faces"] == counts["merge_face_filter"] == 1
        outputs[jobs] = {p: sha256(data / p) for p in ("faces.parquet", "faces_kept.parquet")}
        outputs[jobs]["report"] = sha256(data / "face_filter_report.json")
    assert outputs[1] == outputs[3]
    shutil.rmtree(ROOT / "results" / RUN)
