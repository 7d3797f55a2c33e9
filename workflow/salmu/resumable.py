"""Work state that a job keeps outside its declared output, so that a killed job resumes.

Snakemake deletes a job's outputs before it runs, so a long job (open_clip_train's run
directory, img2dataset's download) keeps its progress in a state directory of its own. Whether to
resume that state or start over is decided here, in one place, by one rule:

- a state directory made for another request (command line, data) is removed: resuming it would
  mix two runs;
- a state directory whose job *finished* is removed too: the job is being asked for again (a
  forced rerun, or its output was deleted), and the answer to "retrain" is a new training, not
  the old one re-exported;
- only an unfinished state of the same request is resumed.

``STATE`` in the directory holds the request and, once the job's output is published, the
``finished`` flag (``mark_finished``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from salmu.io import read_json, write_json

STATE = "salmu_state.json"


def open_state(state_dir: str | Path, request: dict) -> str:
    """Prepare ``state_dir`` for ``request``; returns "new", "resume" or why it started over."""
    state_dir = Path(state_dir)
    marker = state_dir / STATE
    outcome = "new"
    if state_dir.exists():
        try:
            previous = read_json(marker)
        except (FileNotFoundError, ValueError):  # no marker, or a damaged one: not resumable
            previous = None
        if previous is None or previous.get("request") != request:
            outcome = "restart: made for another request"
        elif previous.get("finished"):
            outcome = "restart: the previous run finished, this is a rerun"
        else:
            return "resume"
        shutil.rmtree(state_dir)
    write_json({"request": request, "finished": False}, marker)
    return outcome


def mark_finished(state_dir: str | Path) -> None:
    """The job's output is published: asking for it again means doing the work again."""
    marker = Path(state_dir) / STATE
    write_json({**read_json(marker), "finished": True}, marker)
