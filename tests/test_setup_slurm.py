"""ci/setup_slurm.sh stops only the SLURM daemons it started: on a machine that runs a real
cluster it must refuse, not kill someone else's slurmd."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import ROOT

SETUP = ["bash", "ci/setup_slurm.sh"]


def test_a_slurm_daemon_it_did_not_start_is_left_alone(tmp_path):
    # A process named slurmd, as another cluster's daemon would be (any binary will do).
    impostor = tmp_path / "slurmd"
    shutil.copy("/bin/sleep", impostor)
    daemon = subprocess.Popen([str(impostor), "600"])
    try:
        result = subprocess.run(
            SETUP,
            cwd=ROOT,
            env=dict(os.environ, SLURM_DIR=str(tmp_path / "state")),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert daemon.poll() is None, "setup_slurm.sh killed a daemon it did not start"
        assert result.returncode != 0
        assert "not started from" in result.stderr and "left alone" in result.stderr
        assert not (tmp_path / "state" / "slurm.conf").exists()
    finally:
        daemon.kill()
        daemon.wait()


def daemon_pids(state: Path) -> dict[str, str]:
    return {
        name: (state / "run" / f"{name}.pid").read_text().strip()
        for name in ("slurmctld", "slurmd")
    }


@pytest.mark.skipif(
    not (ROOT / ".slurm" / "run" / "slurmd.pid").exists() or shutil.which("sinfo") is None,
    reason="no local cluster from ci/setup_slurm.sh here (CI starts one)",
)
def test_rerunning_the_setup_restarts_its_own_cluster():
    before = daemon_pids(ROOT / ".slurm")
    subprocess.run(SETUP, cwd=ROOT, check=True, capture_output=True, timeout=120)
    after = daemon_pids(ROOT / ".slurm")
    assert all(after[name] != before[name] for name in before)
    state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout
    assert state.split()[0] in ("idle", "mixed", "allocated")
