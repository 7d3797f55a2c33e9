"""The tiny workflow through `snakemake --profile slurm` on a real single-node SLURM cluster
(`bash ci/setup_slurm.sh`, which CI runs first): every job must go through sbatch."""

import shutil
import subprocess
import time
from pathlib import Path

import pytest

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
    overlay.write_text("train:\n  epochs: 2\n")
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
    # personas, faces, face_filter, captions, splits, retain, 3 shards, the Compromised training,
    # one unlearning and its evaluation: all through sbatch, none run locally.
    assert submitted == 12
    assert "localrule" not in log
    assert len(completed_jobs()) - before >= submitted
    for target in targets:
        assert (ROOT / target).stat().st_size > 0
    shutil.rmtree(ROOT / "results" / RUN)
