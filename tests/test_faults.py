"""Faults lose nothing: a killed training resumes, corrupt images are counted and skipped, a
truncated shard is named in a clear error."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import polars as pl
import pytest
import torch

from salmu.cli import main
from salmu.io import write_parquet
from salmu.shards import verify_shards, write_shards
from salmu.unlearn.data import Sample, SampleBank

from conftest import solid_jpeg
from helpers import ROOT

MODEL_DIR = "resources/models/tiny-clip"


def write_rows(path, n, corrupt=()):
    images = [b"\xff\xd8 not a jpeg" if i in corrupt else solid_jpeg(i) for i in range(n)]
    frame = pl.DataFrame(
        {
            "file_name": [f"img{i:04d}.jpg" for i in range(n)],
            "text": [f"caption {i}" for i in range(n)],
            "image": images,
        }
    )
    write_parquet(frame, path)


def test_shards_count_and_skip_an_image_that_does_not_decode(tmp_path, capsys):
    write_rows(tmp_path / "rows.parquet", 6, corrupt={2})
    out = tmp_path / "shards"
    command = ["shards", "--inputs", str(tmp_path / "rows.parquet"), "--out-dir", str(out)]
    assert main([*command, "--samples-per-shard", "4", "--seed", "0"]) == 0
    assert "skipped 1 samples whose image does not decode" in capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["skipped_corrupt"] == ["img0002.jpg"] and manifest["num_samples"] == 5


def test_a_truncated_shard_is_named_before_training_starts(tmp_path, capsys):
    write_rows(tmp_path / "rows.parquet", 40)
    out = tmp_path / "shards"
    write_shards([str(tmp_path / "rows.parquet")], out, 20, seed=0)
    tar = out / "00001.tar"
    tar.write_bytes(tar.read_bytes()[:5000])
    with pytest.raises(ValueError, match="00001.tar: truncated or altered shard"):
        verify_shards(out)
    # Without the byte sizes (older shard directories) the tar itself is walked.
    (out / "bytes.json").unlink()
    with pytest.raises(ValueError, match="00001.tar: unreadable tar shard"):
        verify_shards(out)
    status = main(
        [
            *("train", "--model-dir", MODEL_DIR, "--train-data", str(out)),
            *("--logs-dir", str(tmp_path / "run"), "--out", str(tmp_path / "model.pt")),
            *("--epochs", "1", "--batch-size", "8", "--lr", "1e-3", "--warmup", "1", "--seed", "0"),
        ]
    )
    assert status == 2 and "00001.tar" in capsys.readouterr().err
    assert not (tmp_path / "model.pt").exists()


def test_unlearning_batches_skip_and_count_a_corrupt_image():
    samples = [Sample(solid_jpeg(i), f"caption {i}", key=f"s{i}") for i in range(6)]
    samples[3] = Sample(b"garbage", "caption 3", key="s3")
    bank = SampleBank(
        samples, lambda image: torch.zeros(3, 4, 4), lambda t: torch.zeros(len(t), 2), 0
    )
    sizes = [len(bank.next_batch(4).images) for _ in range(4)]
    assert sizes == [4, 4, 4, 4] and bank.corrupt == {3}


def test_a_killed_training_resumes_to_the_uninterrupted_checkpoint(tmp_path):
    """Killed after its first epoch's checkpoint: no output checkpoint is left, the rerun continues
    from that epoch (open_clip --resume latest) instead of starting over, and ends with the very
    checkpoint an uninterrupted run of the same command makes (data order and RNG state are keyed
    by epoch, salmu.train_engine)."""
    write_rows(tmp_path / "rows.parquet", 200)
    write_shards([str(tmp_path / "rows.parquet")], tmp_path / "shards", 100, seed=0)

    def train_args(name):
        return [
            *("train", "--model-dir", MODEL_DIR, "--train-data", str(tmp_path / "shards")),
            *("--logs-dir", str(tmp_path / name), "--out", str(tmp_path / name / "model.pt")),
            *("--epochs", "2", "--batch-size", "4", "--lr", "1e-3", "--warmup", "1"),
            *("--seed", "0"),
        ]

    assert main(train_args("whole")) == 0
    uninterrupted = (tmp_path / "whole" / "model.pt").read_bytes()

    args = train_args("killed")
    latest = tmp_path / "killed" / "run" / "checkpoints" / "epoch_latest.pt"
    job = subprocess.Popen(
        [sys.executable, "-m", "salmu", *args],
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while not latest.exists() and job.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    assert latest.exists(), "training ended before its first checkpoint"
    killed_at = torch.load(latest, weights_only=True)["epoch"]
    assert killed_at == 1 and not (tmp_path / "killed" / "model.pt").exists()
    log_file = tmp_path / "killed" / "run" / "out.log"
    first_epoch_lines = log_file.read_text().count("Train Epoch: 0 ")

    assert main(args) == 0
    log = log_file.read_text()
    assert f"=> resuming checkpoint '{latest}' (epoch {killed_at})" in log
    assert log.count("Train Epoch: 0 ") == first_epoch_lines  # epoch 0 was not redone
    resumed = (tmp_path / "killed" / "model.pt").read_bytes()
    assert torch.load(tmp_path / "killed" / "model.pt", weights_only=True)["epoch"] == 2
    assert hashlib.sha256(resumed).hexdigest() == hashlib.sha256(uninterrupted).hexdigest()
