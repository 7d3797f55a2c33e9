"""Running the real Snakemake workflow from tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from salmu.plan import job_stats

ROOT = Path(__file__).resolve().parents[1]


def snakemake(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run snakemake from the repository root with this environment's `salmu` on PATH."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def job_counts(stdout: str) -> dict[str, int]:
    """Rule -> job count from Snakemake's job-stats table (the workflow's own parser)."""
    return job_stats(stdout)
