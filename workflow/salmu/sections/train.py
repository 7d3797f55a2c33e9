"""Settings of a training run (config section ``train``, flags of ``salmu train``)."""

from __future__ import annotations

from dataclasses import dataclass

from salmu.settings import Settings, setting

TRAIN_PRECISIONS = ("fp32", "amp", "amp_bf16", "amp_bfloat16", "bf16", "pure_bf16", "fp16")


@dataclass(frozen=True, kw_only=True)
class TrainSettings(Settings):
    section = "train"
    # The workflow's: the inputs (model_dir, include_retain_synth, the --upsampling weights of
    # each source), the scheduler allocation, and open_clip_args, passed after "--".
    workflow_keys = (
        "model_dir",
        "include_retain_synth",
        "sensitive_upsampling",
        "nodes",
        "gpus_per_node",
        "mem_mb",
        "runtime",
        "open_clip_args",
    )

    epochs: int = setting(8, "passes over the training data (paper: 32)")
    batch_size: int = setting(128, "samples per step, per GPU")
    lr: float = setting(2.0e-3, "peak learning rate (cosine schedule)")
    warmup: int = setting(50, "warm-up steps")
    wd: float = setting(0.1, "AdamW weight decay")
    precision: str = setting("fp32", "open_clip_train --precision", choices=TRAIN_PRECISIONS)
    workers: int = setting(0, "data-loader workers per GPU")
    device: str = setting(
        "cpu", "cpu, cuda or auto (cuda when available)", choices=("auto", "cpu", "cuda")
    )
    threads: int = setting(1, "CPU threads (OMP_NUM_THREADS)")
    launcher: str = setting(
        "",
        "prefix of distributed launches, e.g. 'torchrun --nproc_per_node 8'; under SLURM with "
        "several GPUs 'srun --cpu-bind=v --accel-bind=gn' (empty: plain python)",
    )
