"""Train a CLIP from scratch with the real open_clip_train engine (``python -m open_clip_train.main``).

We only assemble its command line from shard manifests and config, run it, and export the final
epoch as the stage's checkpoint. Clean and Compromised call this with the same arguments except for
``--train-data`` (Compromised adds the sensitive shards), so they share seed, model and schedule.

Upsampling (``--upsampling``, one factor per ``--train-data`` directory; Compromised: the sensitive
shards get ``train.sensitive_upsampling``). With every factor 1, shards are read once per epoch in
order, as plain concatenation. Otherwise open_clip_train samples shards with replacement
(``--dataset-resampled``) with per-shard weights ``factor x samples in the shard``, so a sample of a
source with factor f is drawn f times as often as a factor-1 sample, whatever the shard sizes; an
epoch is ``sum(factor x samples)`` samples, so every sample is still seen ``factor`` times per
epoch in expectation.

Restarts: open_clip_train writes ``epoch_latest.pt`` after every epoch and we always pass
``--resume latest``, so a killed job continues where it stopped. The run directory is resumable
state (``salmu.resumable``): one left by a *different* command line or different training data
(the shard manifests' sha256) is removed first, since resuming it would mix two runs or return a
model of stale data; one whose training finished is removed too, so a forced rerun retrains from
epoch 0 instead of re-exporting the old model. The engine runs through ``salmu.train_engine``,
which keys every epoch's randomness by (seed, epoch), so a resumed run equals the uninterrupted one.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from pathlib import Path

from salmu.io import write_torch
from salmu.resumable import mark_finished, open_state
from salmu.sections.train import TrainSettings
from salmu.shards import MANIFEST, verify_shards

RUN_NAME = "run"


def upsampling_factors(args: argparse.Namespace) -> list[float]:
    factors = args.upsampling or [1.0] * len(args.train_data)
    if len(factors) != len(args.train_data):
        raise ValueError(
            f"--upsampling: {len(factors)} factors for {len(args.train_data)} --train-data dirs"
        )
    if any(f <= 0 for f in factors):
        raise ValueError(f"--upsampling: factors must be > 0, got {factors}")
    return factors


def data_arguments(args: argparse.Namespace) -> list[str]:
    """--train-data (every tar, '::'-joined), its sample count and, when upsampling, the weights."""
    factors = upsampling_factors(args)
    urls, weights, num_samples = [], [], 0.0
    for shard_dir, factor in zip(args.train_data, factors):
        # sizes.json (what open_clip_train counts with) gives both the shards and their sizes;
        # the manifest lists every sample, far too large to read here at paper scale.
        sizes = verify_shards(shard_dir)
        for name in sorted(sizes):
            urls.append(str((Path(shard_dir) / name).resolve()))
            weights.append(factor * sizes[name])
        num_samples += factor * sum(sizes.values())
    data = ["--train-data", "::".join(urls), "--dataset-type", "webdataset"]
    data += ["--train-num-samples", str(round(num_samples))]
    if any(f != 1 for f in factors):
        weight_list = "::".join(f"{w:g}" for w in weights)
        data += ["--dataset-resampled", "--train-data-upsampling-factors", weight_list]
    return data


def open_clip_command(args: argparse.Namespace, logs_dir: Path) -> list[str]:
    command = [
        "-m",
        "salmu.train_engine",
        "--model",
        f"local-dir:{Path(args.model_dir).resolve()}",
        *data_arguments(args),
        "--batch-size",
        str(args.batch_size),
        "--epochs",
        str(args.epochs),
        "--lr",
        str(args.lr),
        "--warmup",
        str(args.warmup),
        "--wd",
        str(args.wd),
        "--precision",
        args.precision,
        "--workers",
        str(args.workers),
        "--seed",
        str(args.seed),
        "--device",
        args.device,
        "--logs",
        str(logs_dir.resolve()),
        "--name",
        RUN_NAME,
        "--save-frequency",
        "0",
        "--save-most-recent",
        "--resume",
        "latest",
        "--zeroshot-frequency",
        "0",
        "--log-every-n-steps",
        str(args.log_every),
    ]
    return command + list(args.extra)


def data_fingerprint(shard_dirs: list[str]) -> dict[str, str]:
    """sha256 of each shard directory's manifest (which holds every sample's key and image hash)."""
    return {
        str(Path(d).resolve()): hashlib.sha256((Path(d) / MANIFEST).read_bytes()).hexdigest()
        for d in shard_dirs
    }


def export_final(logs_dir: Path, epochs: int, out: Path) -> None:
    """Copy the last epoch's weights (not the optimizer) to the stage output, atomically."""
    final = logs_dir / RUN_NAME / "checkpoints" / f"epoch_{epochs}.pt"
    if not final.exists():
        raise FileNotFoundError(f"{final}: open_clip_train finished without the final checkpoint")
    import torch  # here, not at the top: `salmu train --help` must not pay torch's import

    checkpoint = torch.load(final, map_location="cpu", weights_only=True)
    write_torch({k: checkpoint[k] for k in ("epoch", "name", "state_dict")}, out)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model-dir", required=True, help="open_clip model dir (open_clip_config.json)"
    )
    parser.add_argument("--train-data", nargs="+", required=True, help="shard directories")
    parser.add_argument(
        "--upsampling",
        nargs="+",
        type=float,
        default=None,
        help="one sampling factor per --train-data directory (default: all 1)",
    )
    parser.add_argument(
        "--logs-dir", required=True, help="open_clip_train run directory (resumable)"
    )
    parser.add_argument("--out", required=True, help="exported checkpoint")
    parser.add_argument("--seed", type=int, required=True)
    TrainSettings.add_arguments(parser)
    parser.add_argument("--log-every", type=int, default=20)
    parser.add_argument("extra", nargs="*", help="further open_clip_train flags after --")


def first_host(nodelist: str) -> str:
    """The first host of a SLURM nodelist expression such as ``gpu[001-016]``."""
    out = subprocess.run(
        ["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True
    )
    return out.stdout.split()[0]


def rendezvous_env(env: dict, resolve_host=first_host) -> dict:
    """MASTER_ADDR / MASTER_PORT for a launch by srun inside a SLURM allocation: open_clip_train
    takes ranks from SLURM_PROCID / SLURM_LOCALID / SLURM_NTASKS and rendezvous via env://. The
    port derives from the job id so that two jobs sharing a node do not collide; values already
    set are kept."""
    if "SLURM_JOB_NODELIST" not in env or "MASTER_ADDR" in env:
        return env
    port = env.get("MASTER_PORT") or str(20000 + int(env.get("SLURM_JOB_ID", "0")) % 20000)
    return {**env, "MASTER_ADDR": resolve_host(env["SLURM_JOB_NODELIST"]), "MASTER_PORT": port}


def run(args: argparse.Namespace) -> None:
    logs_dir = Path(args.logs_dir)
    command = open_clip_command(args, logs_dir)
    state = open_state(logs_dir, {"command": command, "data": data_fingerprint(args.train_data)})
    print(f"training state in {logs_dir}: {state}", flush=True)
    launcher = args.launcher.split() if args.launcher else [sys.executable]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    if launcher[0] == "srun":
        env = rendezvous_env(env)
    print("running:", " ".join(launcher + command), flush=True)
    result = subprocess.run(launcher + command, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"open_clip_train exited with {result.returncode}")
    export_final(logs_dir, args.epochs, Path(args.out))
    mark_finished(logs_dir)
