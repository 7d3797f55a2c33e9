"""The train stage drives the real open_clip_train engine on tiny shards."""

import polars as pl
import pytest
import torch

from salmu.cli import main
from salmu.clip_model import load_clip
from salmu.io import read_json, write_parquet
from salmu.shards import write_shards

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
    write_shards([str(tmp_path / "data.parquet")], tmp_path / "shards", 20, seed=0)


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


def test_train_restarts_on_changed_data_or_arguments(tmp_path):
    make_shards(tmp_path)
    assert train(tmp_path, 1) == 0
    checkpoint = torch.load(tmp_path / "model.pt", weights_only=True)
    assert checkpoint["epoch"] == 1 and "optimizer" not in checkpoint
    load_clip(MODEL_DIR, tmp_path / "model.pt")
    log = (tmp_path / "run" / "run" / "out.log").read_text()
    assert "Train Epoch: 0" in log

    # Same command and paths but new shard content: the stale run must not be resumed.
    # (An unfinished run of the same command and data is: tests/test_faults.py kills one.)
    first = weights(tmp_path / "model.pt")
    make_shards(tmp_path, caption="another caption")
    assert train(tmp_path, 1) == 0
    assert not same_weights(weights(tmp_path / "model.pt"), first)

    # A changed command line must not resume the old run either.
    assert train(tmp_path, 2) == 0
    assert torch.load(tmp_path / "model.pt", weights_only=True)["epoch"] == 2
    command = read_json(tmp_path / "run" / "salmu_state.json")["request"]["command"]
    assert command[command.index("--epochs") + 1] == "2"


def test_asking_again_for_a_finished_training_retrains_from_epoch_0(tmp_path):
    """What Snakemake's --forcerun asks for: the same command on the same data, after the run
    finished, trains again from scratch (and, being deterministic, gives the same weights)."""
    make_shards(tmp_path)
    assert train(tmp_path, 1) == 0
    first = (tmp_path / "model.pt").read_bytes()
    (tmp_path / "model.pt").unlink()
    assert train(tmp_path, 1) == 0
    log = (tmp_path / "run" / "run" / "out.log").read_text()
    assert "Train Epoch: 0" in log and "resuming checkpoint" not in log
    assert read_json(tmp_path / "run" / "salmu_state.json")["finished"] is True
    assert (tmp_path / "model.pt").read_bytes() == first


def weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def shard_dir(tmp_path, name, n, per_shard, offset):
    frame = pl.DataFrame(
        {
            "file_name": [f"{name}{i:03d}.jpg" for i in range(n)],
            "text": [f"{name} caption {i}" for i in range(n)],
            "image": [solid_jpeg(offset + i) for i in range(n)],
        }
    )
    write_parquet(frame, tmp_path / f"{name}.parquet")
    write_shards([str(tmp_path / f"{name}.parquet")], tmp_path / name, per_shard, 0)
    return str(tmp_path / name)


def test_upsampling_weights_shards_by_factor_times_size(tmp_path):
    from argparse import Namespace

    from salmu.train import data_arguments

    retain = shard_dir(tmp_path, "retain", 40, 20, 0)  # shards of 20 + 20
    sensitive = shard_dir(tmp_path, "sensitive", 12, 8, 100)  # shards of 8 + 4
    plain = data_arguments(Namespace(train_data=[retain, sensitive], upsampling=None))
    assert plain[plain.index("--train-num-samples") + 1] == "52"
    assert "--dataset-resampled" not in plain
    up = data_arguments(Namespace(train_data=[retain, sensitive], upsampling=[1.0, 4.0]))
    assert up[up.index("--train-num-samples") + 1] == str(40 + 4 * 12)
    assert "--dataset-resampled" in up
    assert up[up.index("--train-data-upsampling-factors") + 1] == "20::20::32::16"
    with pytest.raises(ValueError, match="2 --train-data dirs"):
        data_arguments(Namespace(train_data=[retain, sensitive], upsampling=[2.0]))


def test_the_engine_trains_with_upsampled_sources(tmp_path):
    retain = shard_dir(tmp_path, "retain", 40, 20, 0)
    sensitive = shard_dir(tmp_path, "sensitive", 12, 8, 100)
    args = ["train", "--model-dir", MODEL_DIR, "--train-data", retain, sensitive]
    args += ["--upsampling", "1", "3", "--logs-dir", str(tmp_path / "run")]
    args += ["--out", str(tmp_path / "model.pt"), "--epochs", "1", "--batch-size", "16"]
    args += ["--lr", "1e-3", "--warmup", "1", "--seed", "0", "--threads", "1"]
    assert main(args) == 0
    load_clip(MODEL_DIR, tmp_path / "model.pt")
    command = read_json(tmp_path / "run" / "salmu_state.json")["request"]["command"]
    assert "--dataset-resampled" in command
    assert command[command.index("--train-num-samples") + 1] == str(40 + 3 * 12)


def test_srun_launches_get_a_rendezvous_from_the_allocation():
    from salmu.train import rendezvous_env

    allocation = {"SLURM_JOB_NODELIST": "gpu[001-016]", "SLURM_JOB_ID": "123456"}
    env = rendezvous_env(allocation, resolve_host=lambda nodelist: f"first-of-{nodelist}")
    assert env["MASTER_ADDR"] == "first-of-gpu[001-016]"
    assert env["MASTER_PORT"] == str(20000 + 123456 % 20000)
    # Outside SLURM, or with a rendezvous already set, nothing changes.
    assert rendezvous_env({"PATH": "/bin"}) == {"PATH": "/bin"}
    preset = {**allocation, "MASTER_ADDR": "head", "MASTER_PORT": "1"}
    assert rendezvous_env(preset) == preset
