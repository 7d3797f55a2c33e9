"""The train stage drives the real open_clip_train engine on tiny shards."""

import polars as pl
import torch

from salmu.cli import main
from salmu.clip_model import load_clip
from salmu.io import read_json, write_parquet
from salmu.shards import load_sources, write_shards

from conftest import solid_jpeg

MODEL_DIR = "resources/models/tiny-clip"


def make_shards(tmp_path, caption="a caption number"):
    frame = pl.DataFrame(
        {
            "file_name": [f"img{i:03d}.jpg" for i in range(40)],
            "text": [f"{caption} {i}" for i in range(40)],
            "image": [solid_jpeg(i) for i in range(40)],
        }
    )
    write_parquet(frame, tmp_path / "data.parquet")
    write_shards(load_sources([str(tmp_path / "data.parquet")]), tmp_path / "shards", 20, seed=0)


def train(tmp_path, epochs):
    return main(
        [
            "train",
            "--model-dir",
            MODEL_DIR,
            "--train-data",
            str(tmp_path / "shards"),
            "--logs-dir",
            str(tmp_path / "run"),
            "--out",
            str(tmp_path / "model.pt"),
            "--epochs",
            str(epochs),
            "--batch-size",
            "16",
            "--lr",
            "1e-3",
            "--warmup",
            "1",
            "--seed",
            "0",
            "--threads",
            "1",
        ]
    )


def test_train_resumes_and_restarts_on_changed_arguments(tmp_path):
    make_shards(tmp_path)
    assert train(tmp_path, 1) == 0
    checkpoint = torch.load(tmp_path / "model.pt", weights_only=True)
    assert checkpoint["epoch"] == 1 and "optimizer" not in checkpoint
    load_clip(MODEL_DIR, tmp_path / "model.pt")
    log = (tmp_path / "run" / "run" / "out.log").read_text()
    assert "Train Epoch: 0" in log

    # Same command, same data: open_clip_train resumes from epoch_latest.pt and trains no more.
    first = weights(tmp_path / "model.pt")
    assert train(tmp_path, 1) == 0
    assert same_weights(weights(tmp_path / "model.pt"), first)

    # Same command and paths but new shard content: the stale run must not be resumed.
    make_shards(tmp_path, caption="another caption")
    assert train(tmp_path, 1) == 0
    assert not same_weights(weights(tmp_path / "model.pt"), first)

    # A changed command line must not resume the old run either.
    assert train(tmp_path, 2) == 0
    assert torch.load(tmp_path / "model.pt", weights_only=True)["epoch"] == 2
    command = read_json(tmp_path / "run" / "salmu_run_args.json")["command"]
    assert command[command.index("--epochs") + 1] == "2"


def weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
