"""``salmu provenance-summary``: one HTML table of every job record of a run, for the report.

A row per recorded job (outputs of one job share a record): rule, outputs, when, where (host, GPU),
how long, commit (dirty or not), config hash, and the staleness flags ``salmu audit`` would raise.
"""

from __future__ import annotations

import argparse
import html
from pathlib import Path

from salmu.audit import job_flags, modified_since_recorded
from salmu.io import read_json
from salmu.provenance import code_state


def job_records(run_dir: Path) -> list[dict]:
    """Distinct job records under ``<run_dir>/provenance`` (not the stored configs)."""
    root = run_dir / "provenance"
    jobs = {}
    for path in sorted(root.rglob("*.json")):
        if path.parent == root / "configs":
            continue
        record = read_json(path)
        key = (record["rule"], tuple(sorted(record["outputs"])))
        jobs[key] = record
    return sorted(jobs.values(), key=lambda r: r["start"])


def summary_rows(run_dir: Path) -> list[dict]:
    current = code_state()
    rows = []
    for record in job_records(run_dir):
        outputs = sorted(record["outputs"])
        modified = any(modified_since_recorded(o, record) for o in outputs)
        # Input and code flags belong to the job: computed once, not once per output.
        flags = sorted(["modified since recorded"] * modified + job_flags(record, current))
        code = record["code"]
        rows.append(
            {
                "rule": record["rule"],
                "outputs": outputs,
                "end": record["end"],
                "host": record["host"] + (f" ({record['gpus'][0]})" if record["gpus"] else ""),
                "seconds": record["seconds"],
                "commit": (code["git_commit"] or "no git")[:10]
                + (" dirty" if code["git_dirty"] else ""),
                "config": (record["config_sha256"] or "")[:10],
                "flags": flags,
            }
        )
    return rows


def to_html(run_dir: Path, rows: list[dict]) -> str:
    head = ["rule", "outputs", "finished", "host", "seconds", "commit", "config", "flags"]
    cells = []
    for row in rows:
        values = [
            row["rule"],
            "<br>".join(html.escape(o) for o in row["outputs"]),
            row["end"],
            html.escape(row["host"]),
            f"{row['seconds']:.1f}",
            row["commit"],
            row["config"],
            "<br>".join(html.escape(f) for f in row["flags"]) or "ok",
        ]
        cells.append("<tr>" + "".join(f"<td>{v}</td>" for v in values) + "</tr>")
    stale = sum(1 for row in rows if row["flags"])
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Provenance</title></head><body>"
        f"<h1>Provenance of {html.escape(str(run_dir))}</h1>"
        f"<p>{len(rows)} recorded jobs, {stale} flagged. "
        "<code>salmu audit &lt;file&gt;</code> prints the lineage of any file.</p>"
        "<table border='1' cellpadding='3'><tr>"
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr>"
        + "".join(cells)
        + "</table></body></html>\n"
    )


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", required=True, help="results/<run>")
    parser.add_argument("--out", required=True, help="HTML file to write")


def run(args: argparse.Namespace) -> None:
    run_dir = Path(args.run_dir)
    if not (run_dir / "provenance").is_dir():
        raise FileNotFoundError(f"{run_dir / 'provenance'}: no provenance records in this run")
    rows = summary_rows(run_dir)
    Path(args.out).write_text(to_html(run_dir, rows))
    print(f"provenance summary: {len(rows)} jobs -> {args.out}")
