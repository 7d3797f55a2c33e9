"""salmu commonpool: the real img2dataset against a loopback HTTP server (no mocks).

One download builds the module's shard directory (through the `salmu` console script, whose spawned
workers re-import it); one more resumes an interrupted shard. Every other test reads those outputs
or fails before img2dataset starts.
"""

import argparse
import contextlib
import hashlib
import http.server
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
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
        # Paths whose answer waits until their event is set (a download to kill mid-way).
        held = self.held = {}

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):
                requests.append(self.path)
                if self.path in held:
                    held[self.path].wait(60)
                # A killed client leaves a broken pipe behind.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
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


# -- the download as several jobs (retain.commonpool.jobs) --------------------------------------


def part_label(k: int, parts: int = 3) -> str:
    return f"{k:03d}-of-{parts:03d}"


@pytest.fixture(scope="module")
def pool_parts(pool, tmp_path_factory):
    """The fixture's request as 3 jobs, as the workflow runs them: each part into a directory of
    its own, with its own state. Part 2 is killed (SIGKILL) while its second shard downloads,
    then run again; the merge joins the three."""
    root = tmp_path_factory.mktemp("commonpool_parts")
    server = pool["server"]

    def argv(k):
        args = pool["argv"].copy()
        args[args.index("--out-dir") + 1] = str(root / "parts" / part_label(k))
        return (
            args
            + ["--work-dir", str(root / "state" / part_label(k))]
            + [*("--part", str(k), "--parts", "3")]
        )

    requests = {}
    for k in (0, 1):
        server.requests.clear()
        assert main(argv(k)) == 0
        requests[k] = sorted(server.requests)
    # Part 2's rows are u08..u13: shard 0 = u08..u11, shard 1 = u12, u13 (4 per shard).
    server.requests.clear()
    server.held["/good4.jpg"] = threading.Event()
    job = subprocess.Popen(
        [SALMU, *argv(2)],
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its img2dataset workers go with it
    )
    deadline = time.monotonic() + 120
    while "/good4.jpg" not in server.requests and job.poll() is None:
        assert time.monotonic() < deadline, "part 2 never reached its second shard"
        time.sleep(0.02)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    server.held.pop("/good4.jpg").set()
    killed = sorted(server.requests)
    server.requests.clear()
    assert main(argv(2)) == 0  # the same job again: it resumes
    requests[2] = sorted(server.requests)
    parts = [root / "parts" / part_label(k) for k in range(3)]
    merged = root / "merged"
    assert main(["commonpool-merge", "--parts", *map(str, parts), "--out-dir", str(merged)]) == 0
    return {"parts": parts, "state": root / "state", "merged": merged, "requests": requests,
            "killed": killed, "job_status": job.returncode}  # fmt: skip


def test_each_part_downloads_only_its_own_rows(pool, pool_parts):
    requests = pool_parts["requests"]
    assert requests[0] == ["/good0.jpg", "/good1.jpg", "/good2.jpg", "/missing.jpg"]
    assert set(requests[1]) == {"/missing2.jpg", "/notes.txt"}  # dead or not images
    every = [r for k in (0, 1) for r in requests[k]] + pool_parts["killed"]
    assert sorted(set(every) | set(requests[2])) == sorted(set(pool["first_requests"]))
    # Each part reports its rows and what it read, and only the merge counts absent uids.
    reports = [json.loads((p / "download_report.json").read_text()) for p in pool_parts["parts"]]
    assert [r["metadata"]["rows"] for r in reports] == [[0, 5], [5, 10], [10, 16]]
    assert [r["metadata"]["uids_not_in_metadata"] for r in reports] == [None, None, None]
    # Part 1 got no sample (every URL dead): an empty part, not a failed job.
    assert (
        reports[1]["total"]["samples"] == 0
        and shards.read_manifest(pool_parts["parts"][1])["shards"] == []
    )


def test_a_killed_part_resumes_only_its_unfinished_shard(pool_parts):
    assert pool_parts["job_status"] == -signal.SIGKILL
    # Killed in its second shard: the first was finished and is not fetched again.
    assert "/good3.jpg" in pool_parts["killed"]
    assert pool_parts["requests"][2] == ["/good4.jpg", "/good5.jpg"]
    state = json.loads((pool_parts["state"] / part_label(2) / STATE).read_text())
    assert state["finished"] is True


def test_the_merge_equals_one_job_over_the_whole_pool(pool, pool_parts):
    merged, whole = pool_parts["merged"], pool["out"]
    manifest = shards.read_manifest(merged)

    def contents(manifest):
        return sorted((s["file_name"], s["sha256"]) for s in manifest["samples"])

    assert contents(manifest) == contents(shards.read_manifest(whole))
    # One numbering over the parts, in part order; part 1 published nothing.
    assert manifest["shards"] == ["00000.tar", "00001.tar", "00002.tar"]
    assert json.loads((merged / "sizes.json").read_text()) == {
        "00000.tar": 3,
        "00001.tar": 3,
        "00002.tar": 2,
    }
    for name in manifest["shards"]:
        assert (
            hashlib.sha256((merged / name).read_bytes()).hexdigest()
            == manifest["shard_sha256"][name]
        )
    # Hard links to the parts' tars (themselves links to img2dataset's): no second copy.
    part2 = pool_parts["parts"][2]
    assert (merged / "00002.tar").stat().st_ino == (part2 / "00001.tar").stat().st_ino
    report = json.loads((merged / "download_report.json").read_text())
    one = json.loads((whole / "download_report.json").read_text())
    for key in ("rows", "successes", "failed", "samples", "dropped_by_image_sha256", "failures"):
        assert report["total"][key] == one["total"][key]
    assert {k: v for k, v in report["metadata"].items() if k != "files"} == {
        k: v for k, v in one["metadata"].items() if k not in ("files", "part", "parts", "rows")
    }
    assert report["metadata"]["uids_not_in_metadata"] == 1
    assert sorted(report["parts"]) == [part_label(k) for k in range(3)]
    assert report["total"]["empty_shards"] == ["001-of-003/00000.tar"]
    assert leakcheck.find_leaks([str(merged)], [str(pool["sensitive"])])["leaks"] == []


def test_the_merge_refuses_parts_of_two_requests_and_an_empty_pool(pool_parts, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(pool_parts["parts"][0], other)
    report = json.loads((other / "download_report.json").read_text())
    report["settings"]["samples_per_shard"] = 5
    (other / "download_report.json").write_text(json.dumps(report))
    argv = ["commonpool-merge", "--out-dir", str(tmp_path / "out"), "--parts"]
    assert main([*argv, str(other), str(pool_parts["parts"][2])]) == 2
    assert "different settings" in capsys.readouterr().err
    assert main([*argv, str(pool_parts["parts"][1])]) == 2
    assert "no sample was downloaded by any of the 1 parts" in capsys.readouterr().err
