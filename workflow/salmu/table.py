"""The one results table: a row per model state, a column per metric.

Reads the per-model evaluation JSONs (official layout) and writes ``<prefix>.parquet``, ``.csv`` and
``.md``. Rows: clean, compromised, then unlearned states sorted by method, budget, seed.

Columns: ``state, method, budget, seed, checkpoint``, the metrics (``METRIC_COLUMNS``), their
bootstrap confidence intervals ``<metric>_ci_low`` / ``<metric>_ci_high`` for ``CI_COLUMNS`` (NaN
when an evaluation JSON has none, e.g. ``salmu evaluate --bootstrap 0`` or an official reference
JSON), and ``diagnosis``: the failure mode of each unlearned model relative to the Clean and
Compromised rows (``salmu.diagnose``; "reference" on those two rows, null when one is missing), and
``lineage``: the checkpoint's provenance record (``salmu audit <checkpoint>`` prints its lineage).
The markdown shows, first, the summary over unlearning seeds (``salmu.seeds``: per method and
budget the mean, a Student-t seed interval and the diagnosis every seed agrees on; also written to
``<prefix>_summary.parquet`` / ``.csv``), then every seed's row and the numbers behind each
seed's diagnosis.
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

import polars as pl

from salmu import diagnose, seeds
from salmu.evaluate.layout import METRIC_COLUMNS, ci_column_names, flatten, flatten_ci
from salmu.import_model import add_sources_argument, read_sources
from salmu.io import read_json, read_parquet, write_parquet
from salmu.provenance import record_path
from salmu.sections.report import ReportSettings, Thresholds

STATE_PATTERN = re.compile(r"^unlearned/(?P<method>[^/]+)/x(?P<budget>[^/]+)/seed(?P<seed>\d+)$")
BASE_ORDER = {"clean": 0, "compromised": 1}
# Checkpoints brought by a user (evaluate-only mode): the method column holds their name.
EXTERNAL_PATTERN = re.compile(r"^external/(?P<name>[A-Za-z0-9_.-]+)$")
CI_COLUMN_NAMES = tuple(ci_column_names())


def describe_state(state: str) -> dict:
    """Split a state name into method / budget / seed columns."""
    if state in BASE_ORDER:
        return {"state": state, "method": state, "budget": None, "seed": None}
    external = EXTERNAL_PATTERN.match(state)
    if external:
        return {"state": state, "method": external["name"], "budget": None, "seed": None}
    match = STATE_PATTERN.match(state)
    if not match:
        raise ValueError(
            f"unknown model state '{state}': expected clean, compromised, "
            f"{STATE_PATTERN.pattern} or {EXTERNAL_PATTERN.pattern}"
        )
    return {
        "state": state,
        "method": match["method"],
        "budget": float(match["budget"]),
        "seed": int(match["seed"]),
    }


def build_table(
    eval_paths: list[str], thresholds: diagnose.Thresholds | None = None
) -> pl.DataFrame:
    rows = []
    for path in eval_paths:
        result = read_json(path)
        state = result.get("meta", {}).get("state")
        if state is None:
            raise ValueError(f"{path}: missing meta.state")
        row = describe_state(state)
        row["checkpoint"] = result["meta"].get("checkpoint")
        try:
            row.update(flatten(result))
            row.update(flatten_ci(result))
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
        rows.append(row)
    schema = (
        {
            "state": pl.String,
            "method": pl.String,
            "budget": pl.Float64,
            "seed": pl.Int64,
            "checkpoint": pl.String,
        }
        | {c: pl.Float64 for c in METRIC_COLUMNS}
        | {c: pl.Float64 for c in CI_COLUMN_NAMES}
    )
    table = pl.DataFrame(rows, schema=schema)
    order = [
        (BASE_ORDER.get(r["state"], 2), r["method"], r["budget"] or 0.0, r["seed"] or 0)
        for r in table.iter_rows(named=True)
    ]
    table = table[sorted(range(table.height), key=order.__getitem__)]
    lineage = [str(record_path(c)) if c else None for c in table["checkpoint"]]
    return table.with_columns(diagnose.diagnosis_labels(table, thresholds)).with_columns(
        pl.Series("lineage", lineage, dtype=pl.String)
    )


def with_attacks(table: pl.DataFrame, path: str | Path) -> pl.DataFrame:
    """The table with each attacked model's recovered shares and attack label (others null)."""
    from salmu.attacks.table import ATTACK_COLUMNS, per_state

    attacks = read_parquet(path, ["state", "attack", "RetFail_MRR_recovered", *ATTACK_COLUMNS])
    return table.join(per_state(attacks), on="state", how="left")


def attack_markdown(table: pl.DataFrame) -> list[str]:
    """The attacked rows' recovered shares (``salmu attack-table``), when the table has them."""
    columns = [c for c in table.columns if c.startswith("recovered_")]
    if not columns:
        return []
    rows = table.filter(pl.col("max_recovered").is_not_null())
    names = ["state", *columns, "attack_diagnosis"]
    names += [c for c in ("inference_auc",) if c in table.columns]
    return [
        "",
        "Attacks on forgetting (ours; attacks.md): share of the Compromised-Clean RetFail gap "
        "each attack brings back.",
        "",
        *_markdown_rows(names, rows.select(names).iter_rows()),
    ]


def _cell(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return "" if value is None else str(value)


def _markdown_rows(columns: list[str], rows) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines.extend("| " + " | ".join(_cell(v) for v in row) + " |" for row in rows)
    return lines


def diagnosis_details(
    table: pl.DataFrame, thresholds: diagnose.Thresholds | None = None
) -> list[list]:
    """Per unlearned row: state, label, the numbers behind it (see ``salmu.diagnose``)."""
    out = []
    for state, found in zip(
        table["state"], diagnose.diagnose_table(table, thresholds), strict=True
    ):
        if found is None or found.label == diagnose.REFERENCE:
            continue
        holdout = [g for g in found.holdout_gap_closed.values() if not math.isnan(g)]
        worst_holdout = max(holdout, default=math.nan)
        utility = [found.utility_retained.get(c, math.nan) for c in diagnose.UTILITY_COLUMNS]
        out.append(
            [state, found.label, found.forget_gap_closed, found.assoc_gap_closed, worst_holdout]
            + utility
            + [", ".join(found.flags)]
        )
    return out


SUMMARY_COLUMNS = ("RetFail_MRR", "GenKnow", "InterIdSim", "IntraIdSim", "VisIdInt")


def summary_markdown(summary: pl.DataFrame, level: float) -> list[str]:
    """Mean [seed interval] of the headline metrics, and the agreed diagnosis, per row."""
    rows = []
    for row in summary.iter_rows(named=True):
        cells = [row["state"], "" if row["n_seeds"] is None else str(row["n_seeds"])]
        for column in SUMMARY_COLUMNS:
            low, high = row[f"{column}_seed_low"], row[f"{column}_seed_high"]
            interval = "" if math.isnan(low) else f" [{_cell(low)}, {_cell(high)}]"
            cells.append(_cell(row[column]) + interval)
        cells += [_cell(row["diagnosis"]), _cell(row["seed_labels"])]
        rows.append(cells)
    return [
        f"Mean over unlearning seeds [{level:.0%} Student-t interval of the mean over seeds; "
        "none with one seed]; diagnosis: the failure modes every seed shares (salmu.seeds).",
        "",
        *_markdown_rows(["state", "seeds", *SUMMARY_COLUMNS, "diagnosis", "seed diagnoses"], rows),
        "",
        "Every seed:",
        "",
    ]


def reference_lines(sources: list[str]) -> list[str]:
    """What the imported reference models are (``salmu import-model``'s source.json), e.g.
    "released Compromised (cvc-mmu/...)" or "not the released weights"."""
    if not sources:
        return []
    found = [f"- {record['description']}" for record in read_sources(sources).values()]
    return ["Reference models from outside this run:", "", *found, ""]


def to_markdown(
    table: pl.DataFrame,
    thresholds: diagnose.Thresholds | None = None,
    summary: pl.DataFrame | None = None,
    level: float = seeds.DEFAULT_LEVEL,
    sources: list[str] = (),
) -> str:
    columns = ["state", *METRIC_COLUMNS]
    if "diagnosis" in table.columns:
        columns.append("diagnosis")
    lines = reference_lines(list(sources))
    lines += [] if summary is None else summary_markdown(summary, level)
    lines += _markdown_rows(columns, table.select(columns).iter_rows())
    details = diagnosis_details(table, thresholds) if "diagnosis" in table.columns else []
    if details:
        lines += [
            "",
            "Diagnosis (salmu.diagnose): gap closed = (Compromised - model) / (Compromised - "
            "Clean), 1 = at Clean, > 1 = below Clean (holdout: the larger of Inter/IntraIdSim); "
            "retained = model / Compromised.",
            "",
        ]
        lines += _markdown_rows(
            [
                "state",
                "diagnosis",
                "RetFail gap closed",
                "AssocStr gap closed",
                "holdout gap closed",
                "GenKnow retained",
                "VisIdInt retained",
                "FragSim retained",
                "flags",
            ],
            details,
        )
    lines += attack_markdown(table)
    return "\n".join(lines) + "\n"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--evals", nargs="+", required=True, help="evaluation JSONs")
    parser.add_argument(
        "--out-prefix",
        required=True,
        help="writes PREFIX.parquet/.csv/.md and PREFIX_summary.parquet/.csv",
    )
    add_sources_argument(parser)
    parser.add_argument(
        "--attacks", default=None, help="attacks.parquet of salmu attack-table: its columns join"
    )
    ReportSettings.add_arguments(parser)
    Thresholds.add_arguments(parser)


def run(args: argparse.Namespace) -> None:
    thresholds = Thresholds.from_args(args)
    table = build_table(args.evals, thresholds)
    if args.attacks:
        table = with_attacks(table, args.attacks)
    summary, _ = seeds.summarise(table, thresholds, args.seed_interval_level, args.seed_agreement)
    prefix = Path(args.out_prefix)
    write_parquet(table, prefix.with_suffix(".parquet"))
    table.write_csv(prefix.with_suffix(".csv"))
    summary_prefix = prefix.with_name(prefix.name + "_summary")
    write_parquet(summary, summary_prefix.with_suffix(".parquet"))
    summary.write_csv(summary_prefix.with_suffix(".csv"))
    markdown = to_markdown(table, thresholds, summary, args.seed_interval_level, args.sources)
    prefix.with_suffix(".md").write_text(markdown)
    print(markdown)
