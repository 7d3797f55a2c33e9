"""The tiny workflow through `snakemake --profile slurm` on a real single-node SLURM cluster
(`bash ci/setup_slurm.sh`, which CI runs first): every job must go through sbatch."""

import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_train import MODEL_DIR, make_shards

from helpers import ROOT, snakemake

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("sbatch") is None,
        reason="no SLURM on this machine: `bash ci/setup_slurm.sh` (root) starts one; CI does",
    ),
]
RUN = "pytest-slurm"
# The local cluster: no accounting database (poll with squeue), no account, one partition.
LOCAL_CLUSTER = (
    "--slurm-no-account",
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "5",
    "--default-resources",
    "slurm_partition=debug",
    "--jobs",
    "2",
)


def completed_jobs() -> list[str]:
    """Finished jobs from the cluster's job-completion log (ci/setup_slurm.sh turns it on)."""
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    location = next(
        line.split("=", 1)[1].strip()
        for line in config.splitlines()
        if line.startswith("JobCompLoc")
    )
    path = Path(location)
    if not path.exists():
        return []
    return [line for line in path.read_text().splitlines() if "JobState=COMPLETED" in line]


def test_tiny_pipeline_runs_through_sbatch(tmp_path):
    shutil.rmtree(ROOT / "results" / RUN, ignore_errors=True)
    overlay = tmp_path / "short.yaml"
    # The faces and their filter fanned out over 3 jobs each (faces.jobs), as a cluster runs them.
    overlay.write_text("train:\n  epochs: 2\nfaces:\n  jobs: 3\n")
    targets = [f"results/{RUN}/eval/unlearned/neg_grad/x1/seed0/evaluation.json"]
    before = len(completed_jobs())
    start = time.time()
    result = snakemake(
        *targets,
        "--profile",
        "slurm",
        *LOCAL_CLUSTER,
        "--configfile",
        str(overlay),
        "--config",
        f"run={RUN}",
    )
    print(f"through SLURM: {time.time() - start:.0f} s")
    log = result.stdout + result.stderr
    submitted = log.count("submitted with SLURM jobid")
    # personas, 3 faces jobs, 3 face_filter jobs and their merge (the faces merge makes only the
    # contact sheet of `all`), captions, splits, retain, 3 shards, the Compromised training, the
    # unlearning inputs' leak audit, one unlearning and its evaluation: all through sbatch, none
    # run locally.
    assert submitted == 18
    assert "localrule" not in log
    assert len(completed_jobs()) - before >= submitted
    for target in targets:
        assert (ROOT / target).stat().st_size > 0
    # Each faces part ran in a SLURM job of its own: its provenance record names the job.
    data = ROOT / "results" / RUN / "provenance" / "data"
    for stage in ("faces_parts", "face_filter_parts"):
        jobs = {
            json.loads((data / stage / f"{k:03d}-of-003.parquet.json").read_text())["slurm_job_id"]
            for k in range(3)
        }
        assert None not in jobs and len(jobs) == 3, (stage, jobs)
    shutil.rmtree(ROOT / "results" / RUN)


def test_training_runs_as_two_srun_tasks_with_ranks_from_slurm(tmp_path):
    """The paper tier's launch on a small scale: one allocation of 2 tasks, `salmu train` with the
    srun launcher starts open_clip_train on each task, which takes its rank from SLURM and joins
    the others through the MASTER_ADDR / MASTER_PORT that the wrapper derives from the allocation.

    open_clip_train then wraps the model in DDP with device_ids=[device], which PyTorch refuses for
    CPU modules: on a GPU-less machine the run can only get as far as the joined process group."""
    make_shards(tmp_path)
    train = [
        *(sys.executable, "-m", "salmu", "train", "--model-dir", MODEL_DIR),
        *("--train-data", str(tmp_path / "shards"), "--logs-dir", str(tmp_path / "run")),
        *("--out", str(tmp_path / "model.pt"), "--epochs", "1", "--batch-size", "8"),
        *("--lr", "1e-3", "--warmup", "1", "--seed", "0", "--threads", "1"),
        *("--launcher", f"srun {sys.executable} -u"),
    ]
    output = tmp_path / "slurm.out"
    job = [
        *("sbatch", "--wait", "--ntasks", "2", "--cpus-per-task", "1", "--partition", "debug"),
        *("--output", str(output), "--wrap", shlex.join(train)),
    ]
    result = subprocess.run(job, cwd=ROOT, capture_output=True, text=True)
    log = output.read_text()
    # Printed by each rank after init_process_group returned, i.e. after both ranks met.
    for rank in (0, 1):
        assert f"Process (global: {rank}, local {rank}), total 2." in log
    if result.returncode == 0:
        assert (tmp_path / "model.pt").stat().st_size > 0
    else:
        assert "DistributedDataParallel device_ids and output_device arguments only work" in log
