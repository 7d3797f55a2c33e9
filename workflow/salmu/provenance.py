"""Provenance records: ``salmu record ... -- salmu <stage> ...`` runs one job and records it.

Snakemake already keeps, per output, the rule, the shell command, the input *paths*, the params
(values without names), start/end times and a code hash of the rule (``.snakemake/metadata``).
It does not keep what an auditor needs to trust a number later: the git commit and whether the tree
was dirty, a hash of our own package (Snakemake does not rerun a shell rule when only the package
changes), the resolved config, content hashes of every input and output (it checksums only small
files), the software versions, the host and the GPU. The record adds exactly those, written by
the job itself on the machine that ran it, next to nothing Snakemake would delete:

    results/<run>/provenance/<output path inside results/<run>>.json
    results/<run>/provenance/configs/<config sha256>.json      (each resolved config, once)

A record is written only after the stage succeeded; the job's old records are removed first, so a
failed or killed job never leaves a record that vouches for a file it did not finish.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
import time
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from salmu.io import file_sha256 as plain_file_sha256
from salmu.io import read_json

FORMAT = 1
# The workflow exports the path of its resolved config here (common.smk), so every job records it.
CONFIG_ENV = "SALMU_CONFIG_FILE"
PACKAGES = (
    "torch",
    "open_clip_torch",
    "diffusers",
    "transformers",
    "snakemake",
    "snakemake-executor-plugin-slurm",
    "img2dataset",
    "webdataset",
    "faker",
    "numpy",
    "polars",
)
SHARD_MANIFEST = "manifest.json"


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def in_run(path: Path) -> bool:
    return len(path.parts) > 2 and path.parts[0] == "results"


def records_root(output: str | Path) -> Path:
    """The provenance directory of ``output``: its run's, or (outputs given by hand) one beside it."""
    path = Path(output)
    if in_run(path):
        return Path("results", path.parts[1], "provenance")
    return path.parent / ".provenance"


def record_path(output: str | Path) -> Path:
    """Where the record of ``output`` lives, mirroring its path inside the run."""
    path = Path(output)
    inside = path.parts[2:] if in_run(path) else (path.name,)
    return records_root(path).joinpath(*inside).with_name(path.name + ".json")


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes; cached per (path, size, mtime) so an audit hashes each file once."""
    stat = path.stat()
    return _file_sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@cache
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    return plain_file_sha256(path)


def fingerprint(path: str | Path) -> dict[str, Any]:
    """Content hash of a file or directory. A shard directory is hashed through its manifest, which
    lists every sample's key and image hash (hashing terabytes of tars per job would not scale)."""
    path = Path(path)
    if path.is_file():
        return {"kind": "file", "bytes": path.stat().st_size, "sha256": file_sha256(path)}
    if path.is_dir():
        manifest = path / SHARD_MANIFEST
        if manifest.is_file():
            return {"kind": "shards", "sha256": file_sha256(manifest)}
        digest = hashlib.sha256()
        files = sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            digest.update(f"{file.relative_to(path).as_posix()}\0{file_sha256(file)}\n".encode())
        return {"kind": "directory", "files": len(files), "sha256": digest.hexdigest()}
    return {"kind": "missing"}


@cache
def code_state() -> dict[str, Any]:
    """Git commit, dirty tree, and a hash of the workflow code and the lockfile."""
    root = repo_root()
    digest = hashlib.sha256()
    sources = [root / "Snakefile", *sorted((root / "workflow").rglob("*.py"))]
    sources += sorted((root / "workflow" / "rules").glob("*.smk"))
    for source in sources:
        if source.is_file() and "__pycache__" not in source.parts:
            digest.update(f"{source.relative_to(root).as_posix()}\0".encode())
            digest.update(source.read_bytes())
    lock = root / "uv.lock"
    return {
        "git_commit": git(root, "rev-parse", "HEAD"),
        "git_dirty": bool(git(root, "status", "--porcelain", "--untracked-files=no")),
        "workflow_sha256": digest.hexdigest(),
        "lockfile_sha256": file_sha256(lock) if lock.is_file() else None,
    }


def git(root: Path, *args: str) -> str | None:
    if shutil.which("git") is None:
        return None
    result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def gpus() -> list[str]:
    if shutil.which("nvidia-smi") is None:
        return []
    result = subprocess.run(
        ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def seeds(command: list[str], config: dict | None) -> dict[str, Any]:
    found = {"config.seed": (config or {}).get("seed")}
    for flag, value in zip(command, command[1:]):
        if flag.endswith("seed") and flag.startswith("--"):
            found[flag] = value
    return found


def canonical_config(config: dict) -> tuple[str, str]:
    text = json.dumps(config, sort_keys=True, indent=1) + "\n"
    return text, hashlib.sha256(text.encode()).hexdigest()


def store_resolved_config(config: dict, directory: str | Path) -> str:
    """Write ``config`` once per content under ``directory``; return its path."""
    text, sha = canonical_config(config)
    path = Path(directory) / f"config-{sha}.json"
    if not path.is_file():
        write_atomically(path, text)
    return str(path)


def job_config() -> dict | None:
    """The resolved config the workflow exported for this job (None outside the workflow)."""
    config_file = os.environ.get(CONFIG_ENV)
    if not config_file:
        return None
    if not Path(config_file).is_file():
        raise FileNotFoundError(f"{config_file}: the resolved config named by ${CONFIG_ENV}")
    return read_json(config_file)


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def build_record(
    rule: str,
    command: list[str],
    inputs: list[str],
    outputs: list[str],
    started: str,
    seconds: float,
    memory: dict[str, float] | None = None,
) -> dict[str, Any]:
    config = job_config()
    # A copy in the run's records, once per content: the run stays auditable on its own.
    configs = records_root(outputs[0]) / "configs"
    config_file = store_resolved_config(config, configs) if config else None
    return {
        "format": FORMAT,
        "rule": rule,
        "command": command,
        "cwd": os.getcwd(),
        "inputs": {path: fingerprint(path) for path in inputs},
        "outputs": {path: fingerprint(path) for path in outputs},
        "config_sha256": canonical_config(config)[1] if config else None,
        "config_file": config_file,
        "seeds": seeds(command, config),
        "code": code_state(),
        "environment": {"python": platform.python_version(), "packages": package_versions()},
        "host": socket.gethostname(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "gpus": gpus(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "start": started,
        "end": now(),
        "seconds": round(seconds, 3),
        "memory": memory,
    }


def peak_memory() -> dict[str, float]:
    """Peak resident memory, in MB, of this process and of its largest finished child process
    (img2dataset and data-loader workers): the kernel's high-water marks, not samples."""
    import resource

    def megabytes(who: int) -> float:
        return round(resource.getrusage(who).ru_maxrss / 1024, 1)  # kilobytes on Linux

    return {
        "peak_rss_mb": megabytes(resource.RUSAGE_SELF),
        "children_peak_rss_mb": megabytes(resource.RUSAGE_CHILDREN),
    }


def write_records(record: dict[str, Any]) -> list[Path]:
    """One record file per output (each names all of the job's outputs)."""
    text = json.dumps(record, indent=1) + "\n"
    paths = [record_path(output) for output in record["outputs"]]
    for path in paths:
        write_atomically(path, text)
    return paths


def run_recorded(rule: str, inputs: list[str], outputs: list[str], command: list[str]) -> int:
    """Run ``salmu <stage> ...`` in this process; record it if it succeeded."""
    from salmu.cli import main

    if len(command) < 2 or Path(command[0]).name != "salmu":
        raise ValueError(f"salmu record: expected '-- salmu <stage> ...', got {command[:2]}")
    for output in outputs:
        record_path(output).unlink(missing_ok=True)
    started, start = now(), time.perf_counter()
    status = main(command[1:])
    if status == 0:
        seconds, memory = time.perf_counter() - start, peak_memory()
        write_records(build_record(rule, command, inputs, outputs, started, seconds, memory))
    return status


def write_recorded_json(data: Any, out: str, rule: str) -> None:
    """For `run:` rules: write ``data`` as JSON and record it like a `salmu record` job."""
    from salmu.io import write_json

    started, start = now(), time.perf_counter()
    record_path(out).unlink(missing_ok=True)
    write_json(data, out)
    command = ["snakemake", "run:", rule, out]
    write_records(build_record(rule, command, [], [out], started, time.perf_counter() - start))


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rule", required=True, help="the Snakemake rule of this job")
    parser.add_argument("--inputs", nargs="*", default=[], help="the job's input files")
    parser.add_argument("--outputs", nargs="+", required=True, help="the job's output files")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- salmu <stage> ...")


def run(args: argparse.Namespace) -> None:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    status = run_recorded(args.rule, args.inputs, args.outputs, command)
    if status != 0:
        raise SystemExit(status)
