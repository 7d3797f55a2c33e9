"""salmu commonpool: the real img2dataset against a loopback HTTP server (no mocks).

One download builds the module's shard directory (through the `salmu` console script, whose spawned
workers re-import it); one more resumes an interrupted shard. Every other test reads those outputs
or fails before img2dataset starts.
"""

import argparse
import hashlib
import http.server
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from salmu import commonpool, leakcheck, shards
from salmu.cli import main
from salmu.io import write_parquet
from salmu.resumable import STATE
from salmu.sections.retain import CommonPoolSettings

from conftest import solid_jpeg

SALMU = str(Path(sys.executable).parent / "salmu")
IMAGE_SIZE = 64
NOT_FOUND = "HTTP Error 404: File not found"


def noise_image(seed: int, size: int, fmt: str) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


class Server:
    """A loopback web server over a directory that records the paths it was asked for."""

    def __init__(self, root: Path):
        requests = self.requests = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):
                requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """Served images, CommonPool-style metadata, a sensitive shard dir, and one real download."""
    root = tmp_path_factory.mktemp("commonpool")
    www = root / "www"
    www.mkdir()
    sensitive_image, sensitive_other = solid_jpeg(7001), solid_jpeg(7002)
    files = {f"good{i}.jpg": noise_image(i, 40 + 10 * i, "JPEG") for i in range(6)}
    files["good1.jpg"] = noise_image(1, 90, "PNG")  # a PNG behind a .jpg name, and downscaled
    files.update(
        {
            "copy.jpg": sensitive_image,  # the sensitive image, re-hosted: dropped after download
            "face.png": noise_image(99, 80, "PNG"),
            "notes.txt": b"not an image at all\n",
            "xmeta.jpg": noise_image(50, 40, "JPEG"),
            "xsubset.jpg": noise_image(51, 40, "JPEG"),
        }
    )
    for name, data in files.items():
        (www / name).write_bytes(data)
    server = Server(www)
    dead = f"http://127.0.0.1:{refused_port()}/gone.jpg"
    whole = [[0.0, 0.0, 1.0, 1.0]]
    # (uid, file served or raw URL, face boxes, crawl-time sha256) in metadata order.
    rows = [
        ("u00", "good0.jpg", [], None),
        ("u01", "good1.jpg", [], None),
        ("x_meta", "xmeta.jpg", [], hashlib.sha256(sensitive_other).hexdigest()),
        ("u02", "missing.jpg", [], None),
        ("u03", "good2.jpg", [], None),
        ("u04", "notes.txt", [], None),
        ("u05", dead, [], None),
        ("u06", "not a url at all", [], None),
        ("x_subset", "xsubset.jpg", [], None),
        ("u07", "missing2.jpg", [], None),
        ("u08", "good3.jpg", [], None),
        ("u09", "copy.jpg", [], "0" * 64),
        ("u10", "face.png", whole, None),
        ("u11", "face.png?plain", [], None),
        ("u12", "good4.jpg", [], None),
        ("u13", "good5.jpg", [], None),
    ]
    frame = pl.DataFrame(
        {
            "uid": [r[0] for r in rows],
            "url": [r[1] if " " in r[1] or "://" in r[1] else f"{server.url}/{r[1]}" for r in rows],
            "text": [f"caption of {r[0]}" for r in rows],
            "face_bboxes": pl.Series([r[2] for r in rows], dtype=pl.List(pl.List(pl.Float64))),
            "sha256": [r[3] for r in rows],
            "original_width": [100] * len(rows),
        }
    )
    meta = root / "metadata"
    # Two files, the second without a sha256 column: both occur in CommonPool-like dumps.
    write_parquet(frame.slice(0, 8), meta / "part-0.parquet")
    write_parquet(frame.slice(8).drop("sha256"), meta / "part-1.parquet")
    uids = root / "uids.txt"
    uids.write_text("\n".join([r[0] for r in rows if r[0] != "x_subset"] + ["u99_absent"]) + "\n")
    sensitive = root / "sensitive"
    write_parquet(
        pl.DataFrame(
            {
                "file_name": ["00000001_000_ar-1.00.jpg", "00000001_001_ar-1.00.jpg"],
                "text": ["Person 1 lives in A", "Person 1 works as B"],
                "image": [sensitive_image, sensitive_other],
            }
        ),
        root / "sensitive.parquet",
    )
    shards.write_shards(
        [root / "sensitive.parquet"],
        sensitive,
        samples_per_shard=10,
        seed=0,
    )
    out = root / "retain"
    argv = [
        "commonpool",
        "--metadata",
        str(meta),
        "--out-dir",
        str(out),
        "--uids",
        str(uids),
        "--exclude-sha256",
        str(sensitive),
        "--blur-faces",
        "--image-size",
        str(IMAGE_SIZE),
        "--samples-per-shard",
        "4",
        "--processes",
        "1",
        "--threads",
        "4",
        "--timeout",
        "5",
        "--retries",
        "0",
    ]
    # The console script, as Snakemake runs it: img2dataset's spawned workers re-import it.
    result = subprocess.run(
        [SALMU, *argv], capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1")
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    yield {
        "first_requests": list(server.requests),
        "root": root,
        "out": out,
        "argv": argv,
        "server": server,
        "files": files,
        "frame": frame,
        "sensitive": sensitive,
        "stdout": result.stdout,
    }
    server.stop()


def read_tar(path):
    """key -> {ext: bytes} of a shard."""
    samples = {}
    with tarfile.open(path) as tar:
        for member in tar:
            key, _, ext = member.name.partition(".")
            samples.setdefault(key, {})[ext] = tar.extractfile(member).read()
    return samples


def published(out):
    return {name: read_tar(out / name) for name in shards.read_manifest(out)["shards"]}


def test_shards_hold_the_downloaded_samples(pool):
    out = pool["out"]
    manifest = shards.read_manifest(out)
    kept = ["u00", "u01", "u03", "u08", "u10", "u11", "u12", "u13"]
    assert sorted(s["file_name"] for s in manifest["samples"]) == kept
    # Shard 00001 held only dead URLs: not published (no empty tar for training consumers).
    assert manifest["shards"] == ["00000.tar", "00002.tar", "00003.tar"]
    assert json.loads((out / "sizes.json").read_text()) == {
        "00000.tar": 3,
        "00002.tar": 3,
        "00003.tar": 2,
    }
    assert sorted(p.name for p in out.glob("*.tar")) == manifest["shards"]
    assert shards.shard_urls(out) == [str(out / n) for n in manifest["shards"]]
    assert manifest["num_samples"] == len(manifest["samples"]) == 8

    contents = published(out)
    for sample in manifest["samples"]:
        members = contents[sample["shard"]][sample["key"]]
        assert set(members) == {"jpg", "txt", "json"}
        assert members["txt"].decode() == f"caption of {sample['file_name']}"
        meta = json.loads(members["json"])
        assert meta["uid"] == sample["file_name"] and meta["key"] == sample["key"]
        assert hashlib.sha256(members["jpg"]).hexdigest() == sample["sha256"]
        image = Image.open(io.BytesIO(members["jpg"]))
        assert image.format == "JPEG" and max(image.size) <= IMAGE_SIZE
    assert sum(len(c) for c in contents.values()) == 8
    for name, digest in manifest["shard_sha256"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    # Unfiltered shards are hard links to img2dataset's tar, not second copies.
    assert (out / "00000.tar").stat().st_ino == (out / "img2dataset" / "00000.tar").stat().st_ino


def test_report_counts_successes_failures_and_dedup(pool):
    report = json.loads((pool["out"] / "download_report.json").read_text())
    selection = report["metadata"]
    assert selection["metadata_rows"] == 16
    assert (selection["uids_requested"], selection["uids_not_in_metadata"]) == (16, 1)
    assert selection["rows_in_subset"] == 15
    assert selection["dropped_by_metadata_sha256"] == 1
    assert selection["rows_to_download"] == 14
    total = report["total"]
    assert (total["rows"], total["successes"], total["failed"]) == (14, 9, 5)
    assert total["success_rate"] == round(9 / 14, 6)
    assert total["failures"]["failed_to_download"] == {
        NOT_FOUND: 2,
        "<urlopen error [Errno 111] Connection refused>": 1,
        "unknown url type: 'not a url at all'": 1,
    }
    assert total["failures"]["failed_to_resize"] == {"Image decoding error": 1}
    assert total["failures_by_status"] == {"failed_to_download": 4, "failed_to_resize": 1}
    assert total["dropped_by_image_sha256"] == 1 and total["samples"] == 8
    assert total["empty_shards"] == ["00001.tar"]
    per_shard = report["shards"]
    assert {n: (s["rows"], s["successes"], s["samples"]) for n, s in per_shard.items()} == {
        "00000.tar": (4, 3, 3),
        "00001.tar": (4, 0, 0),
        "00002.tar": (4, 4, 3),
        "00003.tar": (2, 2, 2),
    }
    assert per_shard["00002.tar"]["dropped_by_image_sha256"] == 1
    assert "8 samples in 3 shards" in pool["stdout"]


def test_excluded_rows_are_never_requested(pool):
    requested = set(pool["server"].requests)
    assert "/copy.jpg" in requested
    # x_meta has a sensitive crawl-time hash, x_subset is not in --uids.
    assert "/xmeta.jpg" not in requested and "/xsubset.jpg" not in requested
    rows = pl.read_parquet(pool["out"] / "commonpool_rows.parquet")
    assert "x_meta" not in rows["uid"].to_list() and "x_subset" not in rows["uid"].to_list()
    assert rows.columns == ["uid", "url", "text", "face_bboxes"]


def test_retain_set_passes_leakcheck_against_sensitive_set(pool):
    report = leakcheck.find_leaks([str(pool["out"])], [str(pool["sensitive"])])
    assert report["leaks"] == [] and report["checked_samples"] == 8
    # The re-hosted sensitive image was downloaded (img2dataset kept it) but not published.
    workdir = pool["out"] / "img2dataset"
    assert (
        len(read_tar(workdir / "00002.tar")) == 4 and len(read_tar(pool["out"] / "00002.tar")) == 3
    )


def test_faces_are_blurred_only_inside_their_boxes(pool):
    manifest = shards.read_manifest(pool["out"])
    contents = published(pool["out"])
    by_uid = {s["file_name"]: contents[s["shard"]][s["key"]]["jpg"] for s in manifest["samples"]}
    blurred, plain = (np.asarray(Image.open(io.BytesIO(by_uid[u]))) for u in ("u10", "u11"))
    assert blurred.shape == plain.shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
    # The same noise image: whole-image box -> smoothed; no box -> noisy.
    assert blurred.std() < 0.5 * plain.std()


def interrupted_copy(pool, tmp_path):
    """The fixture's finished download, as a killed job would have left it: not marked finished."""
    out = tmp_path / "retain"
    shutil.copytree(pool["out"], out)
    state = json.loads((out / STATE).read_text())
    (out / STATE).write_text(json.dumps({**state, "finished": False}))
    argv = pool["argv"].copy()
    argv[argv.index("--out-dir") + 1] = str(out)
    return out, argv


def test_an_interrupted_download_resumes_only_its_unfinished_shards(pool, tmp_path):
    out, argv = interrupted_copy(pool, tmp_path)
    before = {name: (out / name).read_text() for name in ("manifest.json", "download_report.json")}
    workdir = out / "img2dataset"
    # Shard 2 "interrupted": no stats file, a truncated tar. Only it must be fetched again.
    (workdir / "00002_stats.json").unlink()
    with (workdir / "00002.tar").open("r+b") as handle:
        handle.truncate(1000)
    untouched = {p.name: p.stat().st_mtime_ns for p in workdir.iterdir() if "00002" not in p.name}
    server = pool["server"]
    server.requests.clear()
    assert main(argv) == 0
    assert sorted(server.requests) == ["/copy.jpg", "/face.png", "/face.png?plain", "/good3.jpg"]
    assert {n: (workdir / n).stat().st_mtime_ns for n in untouched} == untouched
    assert shards.read_manifest(out)["samples"] == json.loads(before["manifest.json"])["samples"]
    report = json.loads((out / "download_report.json").read_text())
    assert report["total"] == json.loads(before["download_report.json"])["total"]
    assert json.loads((out / STATE).read_text())["finished"] is True


def test_asking_again_for_a_finished_download_downloads_again(pool, tmp_path):
    """A forced rerun (Snakemake asks for the output again) redoes the download from scratch
    instead of republishing the old one; the same server gives the same samples (img2dataset's
    tars carry download times, so their bytes differ)."""
    out = tmp_path / "retain"
    shutil.copytree(pool["out"], out)
    before = shards.read_manifest(out)["samples"]
    argv = pool["argv"].copy()
    argv[argv.index("--out-dir") + 1] = str(out)
    pool["server"].requests.clear()
    assert main(argv) == 0
    assert set(pool["server"].requests) == set(pool["first_requests"])
    assert shards.read_manifest(out)["samples"] == before


def test_a_different_request_starts_the_download_over(pool, tmp_path, capsys):
    out, argv = interrupted_copy(pool, tmp_path)
    argv[argv.index("--samples-per-shard") + 1] = "5"
    pool["server"].requests.clear()
    assert main(argv) == 0
    assert "restart: made for another request" in capsys.readouterr().out
    assert set(pool["server"].requests) == set(pool["first_requests"])
    assert json.loads((out / STATE).read_text())["request"]["samples_per_shard"] == 5


def test_faces_are_blurred_unless_the_config_says_not_to():
    """DataComp blurs faces; leaving that out of a command must not download unblurred faces."""
    parser = argparse.ArgumentParser()
    commonpool.configure_parser(parser)
    assert parser.parse_args(["--out-dir", "x", "--metadata", "m"]).blur_faces is True
    flags = CommonPoolSettings(metadata="m", blur_faces=False).to_argv()
    assert parser.parse_args(["--out-dir", "x", *flags]).blur_faces is False


def test_bad_metadata_is_a_one_line_error(pool, tmp_path, capsys):
    broken = tmp_path / "broken.parquet"
    write_parquet(pool["frame"].drop("text"), broken)
    no_boxes = tmp_path / "no_boxes.parquet"
    write_parquet(pool["frame"].drop("face_bboxes"), no_boxes)
    base = ["commonpool", "--out-dir", str(tmp_path / "x"), "--metadata"]
    assert main([*base, str(broken), "--no-blur-faces"]) == 2
    err = capsys.readouterr().err
    assert str(broken) in err and "['text']" in err and "['uid', 'url', 'text']" in err
    assert main([*base, str(no_boxes), "--blur-faces"]) == 2
    assert "face_bboxes" in capsys.readouterr().err
    garbage = tmp_path / "garbage.parquet"
    garbage.write_text("uid,url,text\n")
    assert main([*base, str(garbage), "--no-blur-faces"]) == 2
    assert f"{garbage}: unreadable parquet file" in capsys.readouterr().err
    assert main([*base, str(no_boxes), "--no-blur-faces", "--uids", str(tmp_path / "none")]) == 2
    assert "uid list not found" in capsys.readouterr().err
    empty = tmp_path / "uids.txt"
    empty.write_text("nobody\n")
    assert main([*base, str(no_boxes), "--no-blur-faces", "--uids", str(empty)]) == 2
    assert "no metadata rows left" in capsys.readouterr().err


def test_hf_hub_metadata_comes_from_the_local_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "datasets--mlfoundations--datacomp_tiny"
    commit = "a" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    parquet = repo / "snapshots" / commit / "metadata" / "0000.parquet"
    write_parquet(pl.DataFrame({"uid": ["u"], "url": ["x"], "text": ["t"]}), parquet)
    found = commonpool.resolve_metadata("hf-hub:mlfoundations/datacomp_tiny")
    assert [p.resolve() for p in found] == [parquet.resolve()]
    with pytest.raises(ValueError, match="hf-hub:mlfoundations/absent: dataset not available"):
        commonpool.resolve_metadata("hf-hub:mlfoundations/absent")


def test_a_separate_work_dir_survives_deleting_the_published_dir(pool, tmp_path):
    """Snakemake deletes a failed job's output directory before rerunning it: with the download
    state in --work-dir, the shards are republished from it without downloading again."""
    copy, _ = interrupted_copy(pool, tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    for name in (STATE, "commonpool_rows.parquet", "img2dataset"):
        source = copy / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, work / name)
    out = tmp_path / "published"
    argv = pool["argv"].copy()
    argv[argv.index("--out-dir") + 1] = str(out)
    argv += ["--work-dir", str(work)]
    pool["server"].requests.clear()
    assert main(argv) == 0
    assert pool["server"].requests == []
    expected = shards.read_manifest(pool["out"])["samples"]
    assert shards.read_manifest(out)["samples"] == expected
    assert not (out / "img2dataset").exists()
