"""`salmu throughput`: FLOPs counted once per model step, MFU against the device peak. The CLI
and its rule run end to end in test_pipeline_e2e (faces timed too)."""

import subprocess
import sys

import pytest
import torch

from salmu.clip_model import load_clip
from salmu.throughput import count_flops, measure_training, peak_tflops, synthetic_batch

from helpers import ROOT

TINY = ROOT / "resources/models/tiny-clip"


def test_known_gpus_have_a_bf16_peak_and_others_need_one_given():
    assert peak_tflops("NVIDIA H200", "amp_bf16", None) == pytest.approx(989.4)
    assert peak_tflops("NVIDIA A100-SXM4-80GB", "amp_bf16", None) == pytest.approx(312.0)
    assert peak_tflops("NVIDIA H200", "fp32", None) is None
    assert peak_tflops("x86_64 (2 threads)", "amp_bf16", None) is None
    assert peak_tflops("anything", "fp32", 2.5) == 2.5


def test_a_training_step_costs_about_three_forward_passes():
    """Backward is ~2x forward for matmuls: the counter must see the whole step, not the forward."""
    model, _, tokenizer = load_clip(TINY)
    images, texts = synthetic_batch(model, tokenizer, 4, torch.device("cpu"))
    with torch.no_grad():
        forward = count_flops(lambda: (model.encode_image(images), model.encode_text(texts)))
    result = measure_training(
        model,
        tokenizer,
        batch_size=4,
        precision="fp32",
        device=torch.device("cpu"),
        warmup=0,
        steps=1,
        grad_checkpointing=False,
        peak=1.0,
    )
    assert 2.5 < result["flops_per_sample"] * 4 / forward < 3.5
    assert result["mfu"] == pytest.approx(result["achieved_tflops"] / 1.0)


def test_activation_checkpointing_does_not_count_as_model_flops():
    model, _, tokenizer = load_clip(TINY)
    common = dict(
        batch_size=4, precision="fp32", device=torch.device("cpu"), warmup=0, steps=1, peak=None
    )
    plain = measure_training(model, tokenizer, grad_checkpointing=False, **common)
    model, _, tokenizer = load_clip(TINY)
    checkpointed = measure_training(model, tokenizer, grad_checkpointing=True, **common)
    assert checkpointed["flops_per_sample"] == plain["flops_per_sample"]
    assert checkpointed["grad_checkpointing"] and checkpointed["mfu"] is None


def test_cli_rejects_a_zero_batch_before_loading_anything(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "salmu", "throughput", "--out", str(tmp_path / "t.json")]
        + ["--model-dir", "nowhere", "--train-batch-size", "0"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "--train-batch-size 0: expected >= 1" in result.stderr
    assert not (tmp_path / "t.json").exists()
