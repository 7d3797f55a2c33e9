"""Before the first job runs: every file the planned jobs will read, and that no planned job
rewrites, is readable.

Snakemake deletes a job's outputs before the job starts. A job that then fails on a damaged input
has lost its old outputs for nothing: damage one holdout parquet and the shards job that reads it
deletes ``shards/sensitive/`` before it fails, and the training and evaluation planned after it
cost a rerun too. The workflow's ``onstart`` handler runs this check on the jobs' existing inputs,
so a damaged file stops the run, named in one line, before anything is removed.

The checks read headers and footers, not contents, so they cost milliseconds even at paper scale:

- parquet: the footer (schema and row groups) must parse;
- JSON: must parse (files over ``JSON_PARSE_LIMIT`` bytes: must begin and end like JSON);
- YAML: must parse;
- torch checkpoints (``.pt``, ``.bin``): a zip archive whose directory reads, or a pickle stream;
- safetensors: the JSON header must parse;
- a shard directory (``sizes.json`` inside): every tar present at its recorded size
  (``salmu.shards.verify_shards``) and its manifest and sizes readable;
- a directory holding ``open_clip_config.json``: that file must parse.

Anything else (images, logs) is not checked here; the stage that reads it names it when it fails.
"""

from __future__ import annotations

import json
import struct
import zipfile
from collections.abc import Iterable
from pathlib import Path

from salmu.io import first_line, read_json, read_yaml

JSON_PARSE_LIMIT = 64 << 20
PICKLE_PROTOCOL_2_PLUS = b"\x80"


def _parquet(path: Path) -> None:
    import pyarrow.parquet as pq

    pq.read_metadata(path)


def _json(path: Path) -> None:
    if path.stat().st_size <= JSON_PARSE_LIMIT:
        read_json(path)
        return
    with path.open("rb") as handle:
        head = handle.read(64).lstrip()[:1]
        handle.seek(-64, 2)
        tail = handle.read().rstrip()[-1:]
    if (head, tail) not in ((b"{", b"}"), (b"[", b"]")):
        raise ValueError("does not begin and end like a JSON document")


def _torch(path: Path) -> None:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            archive.namelist()
        return
    with path.open("rb") as handle:
        if handle.read(1) != PICKLE_PROTOCOL_2_PLUS:
            raise ValueError("neither a zip archive nor a pickle stream (torch.save formats)")


def _safetensors(path: Path) -> None:
    with path.open("rb") as handle:
        (size,) = struct.unpack("<Q", handle.read(8))
        if size > path.stat().st_size:
            raise ValueError("header longer than the file")
        json.loads(handle.read(size))


def _shard_dir(path: Path) -> None:
    from salmu.shards import MANIFEST, verify_shards

    verify_shards(path)
    if (path / MANIFEST).is_file():
        _json(path / MANIFEST)


CHECKS = {
    ".parquet": ("parquet file", _parquet),
    ".json": ("JSON file", _json),
    ".yaml": ("YAML file", lambda path: read_yaml(path)),
    ".yml": ("YAML file", lambda path: read_yaml(path)),
    ".pt": ("torch checkpoint", _torch),
    ".bin": ("torch checkpoint", _torch),
    ".safetensors": ("safetensors file", _safetensors),
}


def problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be read by the stage that needs it, or None (also for kinds of files
    this module does not check)."""
    path = Path(path)
    if path.is_dir():
        if (path / "sizes.json").is_file():
            kind, check = "shard directory", _shard_dir
        elif (path / "open_clip_config.json").is_file():
            path, (kind, check) = path / "open_clip_config.json", CHECKS[".json"]
        else:
            return None
    elif path.is_file() and path.suffix in CHECKS:
        kind, check = CHECKS[path.suffix]
    else:
        return None
    try:
        check(path)
    except (OSError, ValueError, struct.error, zipfile.BadZipFile) as err:
        reason = first_line(err)
        # Our own readers already start their messages with the path.
        reason = reason.removeprefix(f"{path}: ")
        return f"{path}: unreadable {kind} ({reason})"
    return None


def check_inputs(paths: Iterable[str | Path]) -> None:
    """Raise a ValueError naming every damaged file among ``paths`` (one per line)."""
    problems = [p for p in (problem(path) for path in sorted(set(map(str, paths)))) if p]
    if problems:
        raise ValueError(
            "damaged inputs, nothing was run or removed; regenerate or restore them:\n  "
            + "\n  ".join(problems)
        )


def existing_inputs(jobs: Iterable) -> set[str]:
    """Inputs of ``jobs`` (Snakemake jobs) that exist and that none of these jobs writes."""
    jobs = list(jobs)
    written = {str(f) for job in jobs for f in job.output}
    return {str(f) for job in jobs for f in job.input if str(f) not in written and Path(f).exists()}
