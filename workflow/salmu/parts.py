"""A stage run as N jobs, each doing one part: ``--part K --parts N`` (0 <= K < N).

The workflow names a part's files ``K-of-N`` (``job_parts`` in ``workflow/rules/common.smk``) and
a merge joins the parts in order. What a part holds is the stage's own business (an identity range
of the faces, a row range of the CommonPool metadata); the flags and their check are shared here.
"""

from __future__ import annotations

import argparse


def add_part_arguments(parser: argparse.ArgumentParser, unit: str, config_key: str, merge: str):
    """``--part`` and ``--parts``; ``unit``: what the stage is cut into, for the help."""
    parser.add_argument(
        "--part", type=int, default=0, help="do only this part (0-based) of --parts"
    )
    parser.add_argument(
        "--parts",
        type=int,
        default=1,
        help=f"{unit} the work is cut into, one job each (config {config_key}); "
        f"salmu {merge} joins the parts",
    )


def check_part(part: int, parts: int) -> None:
    if parts < 1 or not 0 <= part < parts:
        raise ValueError(f"--part {part} --parts {parts}: expected 0 <= PART < PARTS")
