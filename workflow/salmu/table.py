"""The one results table: a row per model state, a column per metric.

Reads the per-model evaluation JSONs (official layout) and writes ``<prefix>.parquet``, ``.csv`` and
``.md``. Rows: clean, compromised, then unlearned states sorted by method, budget, seed.
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

import polars as pl

from salmu.evaluate.layout import METRIC_COLUMNS, flatten
from salmu.io import read_json, write_parquet

STATE_PATTERN = re.compile(r"^unlearned/(?P<method>[^/]+)/x(?P<budget>[^/]+)/seed(?P<seed>\d+)$")
BASE_ORDER = {"clean": 0, "compromised": 1}


def describe_state(state: str) -> dict:
    """Split a state name into method / budget / seed columns."""
    if state in BASE_ORDER:
        return {"state": state, "method": state, "budget": None, "seed": None}
    match = STATE_PATTERN.match(state)
    if not match:
        raise ValueError(
            f"unknown model state '{state}': expected clean, compromised or {STATE_PATTERN.pattern}"
        )
    return {
        "state": state,
        "method": match["method"],
        "budget": float(match["budget"]),
        "seed": int(match["seed"]),
    }


def build_table(eval_paths: list[str]) -> pl.DataFrame:
    rows = []
    for path in eval_paths:
        result = read_json(path)
        state = result.get("meta", {}).get("state")
        if state is None:
            raise ValueError(f"{path}: missing meta.state")
        row = describe_state(state)
        row["checkpoint"] = result["meta"].get("checkpoint")
        row.update(flatten(result))
        rows.append(row)
    schema = {
        "state": pl.String,
        "method": pl.String,
        "budget": pl.Float64,
        "seed": pl.Int64,
        "checkpoint": pl.String,
    } | {c: pl.Float64 for c in METRIC_COLUMNS}
    table = pl.DataFrame(rows, schema=schema)
    order = [
        (BASE_ORDER.get(r["state"], 2), r["method"], r["budget"] or 0.0, r["seed"] or 0)
        for r in table.iter_rows(named=True)
    ]
    return table[sorted(range(table.height), key=order.__getitem__)]


def to_markdown(table: pl.DataFrame) -> str:
    columns = ["state", *METRIC_COLUMNS]

    def cell(value) -> str:
        if isinstance(value, float):
            return "nan" if math.isnan(value) else f"{value:.4f}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in table.select(columns).iter_rows():
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--evals", nargs="+", required=True, help="evaluation JSONs")
    parser.add_argument("--out-prefix", required=True, help="writes PREFIX.parquet/.csv/.md")


def run(args: argparse.Namespace) -> None:
    table = build_table(args.evals)
    prefix = Path(args.out_prefix)
    write_parquet(table, prefix.with_suffix(".parquet"))
    table.write_csv(prefix.with_suffix(".csv"))
    markdown = to_markdown(table)
    prefix.with_suffix(".md").write_text(markdown)
    print(markdown)
