"""Running the real Snakemake workflow from tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from salmu.evaluate import layout
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


def evaluation(state, mrr, genknow, holdout, with_ci=True, outcomes=(1, 2), hits=None, vis=0.8):
    """An evaluation JSON in the official layout: RetFail MRR, GenKnow, holdouts (Inter/Intra),
    the rest at fixed values; ``outcomes`` / ``hits``: per-row ranks and GenKnow hits."""
    cis = None
    if with_ci:
        cis = {c: [0.0, 1.0] for c in layout.CI_COLUMNS} | {
            "RetFail_MRR": [mrr - 0.01, mrr + 0.01],
            "GenKnow": [genknow - 0.01, genknow + 0.01],
        }
    return layout.build_result(
        ret_fail={"R@1": mrr / 2, "MRR": mrr, "outcomes": list(outcomes)},
        assoc_str={"mean": holdout, "scores": [holdout]},
        acs={"acs_accuracy": 0.9},
        id_zsc={"identity_classification_accuracy": 0.5},
        core_assoc={"mean": holdout, "scores": [holdout]},
        genknow=genknow,
        inter_id_sim=holdout,
        intra_id_sim=holdout,
        vis_id_int=vis,
        genknow_hits=hits,
        frag_sim=0.8,
        meta={"state": state, "checkpoint": f"models/{state}/checkpoint.pt"},
        cis=cis,
        bootstrap={"resamples": 10, "ci_level": 0.95} if with_ci else None,
    )


def put_in_hub_cache(
    cache: Path,
    repo_id: str,
    files: dict[str, Path],
    revision: str = "a" * 40,
    kind: str = "models",
) -> Path:
    """Lay ``files`` out as a Hugging Face cache holds a downloaded repository
    (``<kind>--org--name/snapshots/<revision>/`` and ``refs/main``), as ``hf download`` would;
    returns the snapshot folder. ``kind``: "models" or "datasets"."""
    import shutil

    repo = cache / f"{kind}--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / revision
    for name, source in files.items():
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if Path(source).is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copyfile(source, target)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot
