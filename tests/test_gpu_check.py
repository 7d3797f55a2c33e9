"""`salmu gpu-check`: its parts run on CPU with the tiny models (the same code a GPU runs with
ViT-B/16 and Stable Diffusion 1.5's architecture), and open_clip_train's log is read right."""

import json
import subprocess
import sys

import pytest

from salmu.gpu_check import PROFILES, open_clip_rates

from helpers import ROOT

LOG = """\
2026-12-05,00:40:01 | INFO | Start epoch 0
2026-12-05,00:40:03 | INFO | Train Epoch: 0 [ 256/10240 (2%)] Data (t): 0.900 Batch (t): 2.101, 121.860/s, 121.860/s/gpu LR: 0.000050 Logit Scale: 14.286 Contrastive_loss: 5.5452 (5.5452) Loss: 5.5452 (5.5452)
2026-12-05,00:40:03 | INFO | Train Epoch: 0 [ 512/10240 (5%)] Data (t): 0.012 Batch (t): 0.101, 2534.65/s, 2534.65/s/gpu LR: 0.000100 Logit Scale: 14.286 Contrastive_loss: 5.5451 (5.5451) Loss: 5.5451 (5.5451)
2026-12-05,00:40:03 | INFO | Train Epoch: 0 [ 768/10240 (7%)] Data (t): 0.010 Batch (t): 0.100, 2560.00/s, 2560.00/s/gpu LR: 0.000150 Logit Scale: 14.286 Contrastive_loss: 5.5450 (5.5450) Loss: 5.5450 (5.5450)
2026-12-05,00:40:03 | INFO | Train Epoch: 0 [1024/10240 (10%)] Data (t): 0.014 Batch (t): 0.105, 2438.10/s, 2438.10/s/gpu LR: 0.000200 Logit Scale: 14.286 Contrastive_loss: 5.5449 (5.5449) Loss: 5.5449 (5.5449)
"""


def test_open_clip_rates_skip_the_warm_up_steps(tmp_path):
    (tmp_path / "out.log").write_text(LOG)
    rates = open_clip_rates(tmp_path / "out.log", skip=1)
    assert rates["logged_steps"] == 4 and rates["timed_steps"] == 3
    assert rates["samples_per_s_per_gpu"] == pytest.approx(2534.65)
    assert rates["data_seconds_mean"] == pytest.approx(0.012)
    (tmp_path / "empty.log").write_text("Start epoch 0\n")
    with pytest.raises(ValueError, match="no step line"):
        open_clip_rates(tmp_path / "empty.log", skip=1)


@pytest.mark.e2e
def test_every_part_runs_on_the_tiny_models(tmp_path):
    out = tmp_path / "gpu_check.json"
    command = [sys.executable, "-m", "salmu", "gpu-check", "--profile", "cpu-smoke"]
    command += ["--out", str(out), "--work-dir", str(tmp_path / "work")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(out.read_text())
    smoke = PROFILES["cpu-smoke"]
    for part in ("model", "train", "unlearn", "evaluate", "faces"):
        assert "error" not in report[part], report[part]
    train = report["train"]
    assert train["engine"] == "open_clip_train" and train["logged_steps"] == smoke["train_steps"]
    assert train["samples_per_s_per_gpu"] > 0 and train["flops_per_sample"] > 0
    steps = smoke["unlearn_budget"] * smoke["unlearn_forget"] // smoke["unlearn_batch"]
    assert report["unlearn"]["steps"] == steps
    assert report["unlearn"]["samples_per_second"] > 0
    assert report["evaluate"]["images_per_s_from_jpeg"] > 0
    assert report["faces"]["images"] == 2 * smoke["faces_images"]
    assert report["faces"]["images_per_s"] > 0
    assert set(report["seconds"]) == {"model", "train", "evaluate", "unlearn", "faces", "total"}


def test_the_gpu_profile_refuses_a_machine_without_cuda(tmp_path, capsys):
    import torch

    from salmu.cli import main

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the refusal is for machines without one")
    assert main(["gpu-check", "--out", str(tmp_path / "x.json"), "--work-dir", str(tmp_path)]) == 2
    assert "no CUDA device here" in capsys.readouterr().err
