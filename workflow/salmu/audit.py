"""``salmu audit <file>``: where did this file come from, and is it still what its inputs make?

Prints the lineage of a result file as a tree, from the file down to the persona seed and the retain
metadata, following the provenance records that every job writes (``salmu.provenance``). Each node
shows its rule, when and where it ran, the commit and seeds, and is flagged when:

- the file changed after its record was written (``modified since recorded``);
- an input's content differs from the one the job read (``input changed since``);
- the workflow code or the lockfile differs from the job's (``code changed since``);
- the job ran from a tree with uncommitted changes (``dirty tree``);
- a file has no record (made before provenance existed, by hand, or by a failed job).

``--check`` exits with status 1 when anything is flagged.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from salmu.io import read_json
from salmu.provenance import code_state, fingerprint, record_path

# Command-line flags whose values are external sources (not Snakemake inputs) worth showing.
SOURCE_FLAGS = (
    "--metadata",
    "--uids",
    "--locales-table",
    "--diffusers-model",
    "--diffusers-ip-adapter",
    "--clip-model",
    "--paraphrase-model",
    "--model",  # salmu import-model: an outside reference model (hub id or folder)
    "--imagenet-path",
    "--templates",
)


def find_record(path: Path) -> tuple[Path, dict] | None:
    """The record of ``path``, or of the directory output that contains it."""
    for candidate in (path, *path.parents):
        if not candidate.parts:
            break
        record = record_path(candidate)
        if record.is_file():
            return candidate, read_json(record)
    return None


@dataclass
class Node:
    path: str
    record: dict | None
    flags: list[str] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)
    seen: bool = False  # already printed higher up


def modified_since_recorded(path: str, record: dict) -> bool:
    recorded = record["outputs"].get(path)
    return bool(recorded) and fingerprint(path).get("sha256") != recorded.get("sha256")


def stale_flags(path: str, record: dict, current_code: dict) -> list[str]:
    """Flags of one output: changed since its record, plus its job's flags."""
    modified = ["modified since recorded"] if modified_since_recorded(path, record) else []
    return modified + job_flags(record, current_code)


def job_flags(record: dict, current_code: dict) -> list[str]:
    """What changed under a job since it ran: its inputs, the code; or a dirty tree then."""
    flags = []
    for name, was in record["inputs"].items():
        now = fingerprint(name)
        if now.get("sha256") != was.get("sha256"):
            flags.append(f"input changed since: {name}")
    code = record["code"]
    for key in ("workflow_sha256", "lockfile_sha256"):
        if code.get(key) != current_code.get(key):
            flags.append(f"code changed since ({key.split('_')[0]})")
    if code.get("git_dirty"):
        flags.append("dirty tree")
    return flags


def lineage(path: str, current_code: dict, seen: set[str] | None = None) -> Node:
    seen = set() if seen is None else seen
    found = find_record(Path(path))
    if found is None:
        exists = Path(path).exists()
        return Node(path, None, [] if exists else ["missing"])
    owner, record = found
    key = str(owner)
    if key in seen:
        return Node(key, record, seen=True)
    seen.add(key)
    node = Node(key, record, stale_flags(key, record, current_code))
    for name in record["inputs"]:
        node.children.append(lineage(name, current_code, seen))
    return node


def sources(record: dict) -> list[str]:
    command = record["command"]
    found = []
    for flag, value in zip(command, command[1:]):
        if flag in SOURCE_FLAGS and value not in record["inputs"]:
            found.append(f"{flag} {value}")
    return found


def describe(node: Node) -> str:
    if node.record is None:
        kind = "missing" if "missing" in node.flags else "source, no record"
        return f"{node.path}  ({kind})"
    record = node.record
    code = record["code"]
    commit = (code.get("git_commit") or "no git")[:10]
    seeds = ", ".join(f"{k}={v}" for k, v in record["seeds"].items() if v is not None)
    gpu = f", {record['gpus'][0]}" if record.get("gpus") else ""
    text = (
        f"{node.path}  [{record['rule']}; {record['end']}; {record['host']}{gpu}; "
        f"{record['seconds']:.1f}s; commit {commit}; {seeds}]"
    )
    if node.seen:
        return text + "  (see above)"
    return text


def render(node: Node, prefix: str = "", last: bool = True, top: bool = True) -> list[str]:
    branch = "" if top else ("└─ " if last else "├─ ")
    lines = [prefix + branch + describe(node)]
    child_prefix = prefix + ("" if top else ("   " if last else "│  "))
    extras = [f"! {flag}" for flag in node.flags if flag != "missing"]
    if node.record is not None and not node.seen:
        extras += [f"source: {s}" for s in sources(node.record)]
    for extra in extras:
        lines.append(child_prefix + ("│  " if node.children else "   ") + extra)
    for i, child in enumerate(node.children):
        lines += render(child, child_prefix, i == len(node.children) - 1, top=False)
    return lines


def all_flags(node: Node) -> list[tuple[str, str]]:
    flags = [(node.path, flag) for flag in node.flags]
    for child in node.children:
        flags += all_flags(child)
    return flags


def to_json(node: Node) -> dict[str, Any]:
    return {
        "path": node.path,
        "rule": node.record["rule"] if node.record else None,
        "flags": node.flags,
        "seen": node.seen,
        "inputs": [to_json(child) for child in node.children],
    }


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="any file under results/ (or inside an output directory)")
    parser.add_argument("--json", action="store_true", help="print the lineage as JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 when anything is flagged")


def run(args: argparse.Namespace) -> None:
    path = Path(args.file)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_absolute() and path.resolve().is_relative_to(Path.cwd()):
        # Records are keyed by the workflow-relative paths the jobs were given.
        path = path.resolve().relative_to(Path.cwd())
    if find_record(path) is None:
        raise ValueError(
            f"{path}: no provenance record at {record_path(path)} (nor for a directory holding "
            "it): the file was not made by a recorded job"
        )
    tree = lineage(str(path), code_state())
    if args.json:
        print(json.dumps(to_json(tree), indent=1))
    else:
        print("\n".join(render(tree)))
    flagged = all_flags(tree)
    if flagged:
        print(f"\n{len(flagged)} flag(s) in the lineage", file=sys.stderr)
    if args.check and flagged:
        raise SystemExit(1)
