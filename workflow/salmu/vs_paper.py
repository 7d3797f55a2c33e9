"""``salmu vs-paper``: every measured metric beside its published value, with the difference.

Reads the results table's summary over seeds (``<table>_summary.parquet``: Clean, Compromised and
each method × budget with its seed mean and interval) and the ``source.json`` of the reference
models this run imported (``salmu import-model``; ``--sources``). A GenKnow of -1 (not measured)
is left blank. Writes ``<prefix>.parquet``,
``.csv`` and ``.md``: one row per (model, metric) that has a published value
(``salmu.paper_numbers``): ours, our seed interval, the paper's value and its source, the
difference, and whether the paper's value lies inside our interval.

The reference rows say what they are: "released Clean (cvc-mmu/...)" when the weights' sha256 is
an authors' release (``salmu.releases``), "not the released weights" when they were imported but
differ, "trained by this run" otherwise. A released-mode run on the authors' artifacts must land
on the official evaluator's values for Clean and Compromised (up to ACS's probe, GenKnow's data
and float noise); the tiny tier is a miniature and is not expected to match any number.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import polars as pl

from salmu.evaluate.layout import GENKNOW_SKIPPED
from salmu.import_model import add_sources_argument, read_sources
from salmu.io import read_parquet, write_parquet
from salmu.paper_numbers import SOURCES, published

COLUMNS = (
    "model",
    "budget",
    "metric",
    "ours",
    "ours_low",
    "ours_high",
    "paper",
    "paper_source",
    "difference",
    "paper_in_interval",
    "weights",
)


def weights_descriptions(sources: list[Path]) -> dict[str, str]:
    """Role -> how its weights are named: from an imported model's source.json, else trained."""
    found = {role: f"{role}: trained by this run" for role in ("clean", "compromised")}
    found.update({role: str(r["description"]) for role, r in read_sources(sources).items()})
    return found


def _value(row: dict, key: str) -> float | None:
    value = row.get(key)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def compare(summary: pl.DataFrame, sources: list[Path]) -> pl.DataFrame:
    rows = []
    weights_of = weights_descriptions(sources)
    for row in summary.iter_rows(named=True):
        method, budget = row["method"], row["budget"]
        weights = weights_of.get(method, "")
        for metric, (paper, source) in published(method, budget).items():
            ours = _value(row, metric)
            low, high = _value(row, f"{metric}_seed_low"), _value(row, f"{metric}_seed_high")
            if metric == "GenKnow" and ours == GENKNOW_SKIPPED:
                ours = low = high = None  # not measured (no ImageNet, no GenKnow set)
            inside = None if low is None or high is None else low <= paper <= high
            rows.append(
                {
                    "model": method,
                    "budget": budget,
                    "metric": metric,
                    "ours": ours,
                    "ours_low": low,
                    "ours_high": high,
                    "paper": paper,
                    "paper_source": source,
                    "difference": None if ours is None else ours - paper,
                    "paper_in_interval": inside,
                    "weights": weights,
                }
            )
    schema = {
        "model": pl.String,
        "budget": pl.Float64,
        "metric": pl.String,
        "ours": pl.Float64,
        "ours_low": pl.Float64,
        "ours_high": pl.Float64,
        "paper": pl.Float64,
        "paper_source": pl.String,
        "difference": pl.Float64,
        "paper_in_interval": pl.Boolean,
        "weights": pl.String,
    }
    return pl.DataFrame(rows, schema=schema, orient="row").select(COLUMNS)


def _num(value) -> str:
    return "–" if value is None else f"{value:.4f}"


def to_markdown(frame: pl.DataFrame) -> str:
    lines = [
        "# This run beside the paper",
        "",
        "Published values: " + "; ".join(f"**{k}**: {v}" for k, v in SOURCES.items()) + ".",
        "Ours: the seed mean at that budget, with the seed interval where there are seeds.",
        "",
    ]
    described = [frame.filter(pl.col("model") == r)["weights"] for r in ("clean", "compromised")]
    lines += [f"- {found[0]}" for found in described if len(found)]
    if any(len(found) and found[0].endswith("trained by this run") for found in described):
        lines += [
            "",
            "Reference models trained by this run: unless this is the paper tier, the run is a "
            "miniature, and a difference measures its scale, not a failed reproduction.",
        ]
    lines += [
        "",
        "| model | budget | metric | ours | interval | paper | source | ours − paper |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in frame.iter_rows(named=True):
        interval = (
            "–" if r["ours_low"] is None else f"[{_num(r['ours_low'])}, {_num(r['ours_high'])}]"
        )
        budget = "–" if r["budget"] is None else f"{r['budget']:g}x"
        lines.append(
            f"| {r['model']} | {budget} | {r['metric']} | {_num(r['ours'])} | {interval} | "
            f"{r['paper']:.4f} | {r['paper_source']} | {_num(r['difference'])} |"
        )
    return "\n".join(lines) + "\n"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--summary", required=True, help="<table>_summary.parquet of salmu table")
    add_sources_argument(parser)
    parser.add_argument("--out-prefix", required=True, help="writes .parquet, .csv and .md")


def run(args: argparse.Namespace) -> None:
    frame = compare(read_parquet(args.summary), [Path(p) for p in args.sources])
    prefix = Path(args.out_prefix)
    write_parquet(frame, prefix.with_suffix(".parquet"))
    frame.write_csv(prefix.with_suffix(".csv"))
    prefix.with_suffix(".md").write_text(to_markdown(frame))
    print(f"wrote {prefix}.md: {frame.height} published values")
