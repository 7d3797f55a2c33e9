"""``salmu face-filter-merge``: the stage's outputs from the checks of every faces part.

Each ``salmu face-filter --out-checks`` job checked one identity range (config ``faces.jobs``).
Step 3 (minimum images per persona) and the report need every row, so they run here, on the
joined checks; the kept rows are streamed from the faces parts. Given the same settings, the
outputs do not depend on how many parts there were.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from salmu.face_filter.checks import join_checks
from salmu.face_filter.cli import CONFIG, add_outputs, finish, resolve_settings
from salmu.io import read_parquet
from salmu.sections.faces import FaceFilterSettings


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Join the per-part checks of salmu face-filter --out-checks: drop the personas left "
        f"with too few images, write the kept rows and the report (settings: {CONFIG}.X)."
    )
    parser.add_argument("--checks", nargs="+", required=True, help="checks of each part, in order")
    parser.add_argument("--faces", nargs="+", required=True, help="the faces parts, same order")
    parser.add_argument("--personas", default=None, help="personas.parquet (as for face-filter)")
    FaceFilterSettings.add_arguments(parser)
    add_outputs(parser)


def run(args: argparse.Namespace) -> None:
    if len(args.checks) != len(args.faces):
        raise ValueError(f"--checks has {len(args.checks)} files, --faces {len(args.faces)}")
    if None in (args.out_faces, args.out_report) or args.out_checks is not None:
        raise ValueError("face-filter-merge: give --out-faces and --out-report")
    settings = resolve_settings(args)
    tables = [read_parquet(path) for path in args.checks]
    meta, decisions, expected = join_checks(tables, settings["demographics"])
    faces = [Path(p) for p in args.faces]
    finish(meta, decisions, expected, settings, faces, args.out_faces, args.out_report)
