"""``salmu fidelity``: does this run behave like the paper? Computed, per paper baseline.

For each of the paper's eight baselines at the main budget: the paper's failure mode, ours (the
diagnosis every seed agrees on, ``salmu.seeds``), whether they agree, and the numbers that decide
ours. Then the reference models: the Compromised / Clean leak ratio next to the paper's, and the
tier's calibration targets (``CRITERIA``), each with its value and whether it holds.

The paper's failure modes (docs/protocol.md §5), as our labels (``salmu.diagnose``):

- Finetuning, VLUnlearn: none ("utility-efficient deletion is feasible") -> balanced.
- Neg. Gradient: the text names no failure mode, but its holdout similarity (0.063) is under half
  of Clean's (0.143): over-generalised by the paper's own criterion ("driving AssocStr below
  Clean's triggers over-generalisation").
- Shuffled Captions: catastrophic collapse -> catastrophic damage.
- Direct Sim. Min.: catastrophic collapse in the text; its published columns (GenKnow -3.6 %,
  holdouts -0.42, far below Clean) are over-generalisation by our thresholds. Either counts.
- DELETE, CLIPErase: over-generalisation -> over-generalised forgetting.
- Generic Captions: ineffective unlearning -> ineffective forgetting (its row is not published).

The calibration targets of a tier (issue 13; the paper's regime at small scale):

- Compromised RetFail MRR in [0.1, 0.6] and R@1 <= 0.4: it leaks, but does not recite (paper:
  0.236 / 0.10); Clean MRR <= Compromised / 10 (paper: 290x lower).
- GenKnow >= 10x chance with a 95 % half-width <= 0.025 (Clean and Compromised): utility is
  measured well enough to tell damage from noise.
- >= 6 of the 8 baselines agree, one of them a balanced method that closes >= 90 % of the RetFail
  gap, and >= 3 seeds behind every diagnosis.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl

from salmu import diagnose, seeds
from salmu.io import read_json, read_parquet, write_json
from salmu.paper_numbers import MAIN_TABLE
from salmu.sections.report import ReportSettings, Thresholds
from salmu.table import CI_COLUMN_NAMES


@dataclass(frozen=True)
class PaperBaseline:
    method: str  # our method module
    name: str  # the paper's name
    failure_mode: str  # the paper's words
    expected: tuple[str, ...]  # our labels that match it
    # The published 5x row (salmu.paper_numbers; None: not published).
    retfail: float | None = field(init=False)
    genknow: float | None = field(init=False)
    inter_id_sim: float | None = field(init=False)

    def __post_init__(self):
        row = MAIN_TABLE.get(self.method, {})
        for name, column in (
            ("retfail", "RetFail_MRR"),
            ("genknow", "GenKnow"),
            ("inter_id_sim", "InterIdSim"),
        ):
            object.__setattr__(self, name, row.get(column))


_BAL, _OVER = (diagnose.BALANCED,), (diagnose.OVER_GENERALISED,)
PAPER_BASELINES = (
    PaperBaseline("finetune", "Finetuning", "none (deletes, utility kept)", _BAL),
    PaperBaseline("vlunlearn", "VLUnlearn", "none (deletes, utility kept)", _BAL),
    PaperBaseline("neg_grad", "Neg. Gradient", "deletes; holdouts fall to 0.06", _OVER),
    PaperBaseline(
        "shuffled_captions", "Shuffled Captions", "catastrophic collapse", (diagnose.CATASTROPHIC,)
    ),
    PaperBaseline(
        "direct_sim_min",
        "Direct Sim. Min.",
        "catastrophic collapse (holdouts -0.42)",
        (diagnose.CATASTROPHIC, diagnose.OVER_GENERALISED),
    ),
    PaperBaseline(
        "generic_captions", "Generic Captions", "ineffective unlearning", (diagnose.INEFFECTIVE,)
    ),
    PaperBaseline("delete", "DELETE", "over-generalisation", _OVER),
    PaperBaseline("cliperase", "CLIPErase", "over-generalisation", _OVER),
)
# The official evaluator on the released models (docs/protocol.md §5).
PAPER_REFERENCE = {
    "clean": {"RetFail_MRR": 0.000815, "GenKnow": 0.633},
    "compromised": {"RetFail_MRR": 0.2361021, "RetFail_R@1": 0.101582, "GenKnow": 0.638},
}


@dataclass(frozen=True)
class Targets:
    compromised_mrr: tuple[float, float] = (0.1, 0.6)
    compromised_r1_max: float = 0.4
    clean_leak_ratio_min: float = 10.0  # Compromised MRR / Clean MRR
    genknow_chance_multiple: float = 10.0
    genknow_half_width_max: float = 0.025
    agreeing_min: int = 6
    balanced_gap_closed_min: float = 0.90
    seeds_min: int = 3


@dataclass(frozen=True)
class Criterion:
    name: str
    value: float | str
    target: str
    holds: bool


def _row(table: pl.DataFrame, state: str) -> dict | None:
    found = table.filter(pl.col("state") == state)
    return found.row(0, named=True) if found.height else None


def _half_width(row: dict, column: str) -> float:
    low, high = row.get(f"{column}_ci_low"), row.get(f"{column}_ci_high")
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return math.nan
    return (high - low) / 2


def attack_entry(table: pl.DataFrame, state: str) -> dict:
    """The attacks on a method's attacked seeds (``salmu attack-table``'s columns, when the table
    has them): the most of the gap any attack brought back, and *superficial forgetting* when
    every attacked seed got that label (as a failure mode needs every seed)."""
    if "max_recovered" not in table.columns:
        return {}
    rows = table.filter(
        pl.col("state").str.starts_with(state + "/") & pl.col("max_recovered").is_not_null()
    )
    if not rows.height:
        return {}
    worst = rows.sort("max_recovered", descending=True).row(0, named=True)
    superficial = all(rows["attack_diagnosis"].to_list())
    return {
        "attack_max_recovered": worst["max_recovered"],
        "attack_worst": worst["worst_attack"],
        "attack_seeds": rows.height,
        "attack_diagnosis": worst["attack_diagnosis"] if superficial else "",
    }


def baseline_rows(
    summary: pl.DataFrame, agreed: dict, budget: float, table: pl.DataFrame | None = None
) -> list[dict]:
    out = []
    for paper in PAPER_BASELINES:
        state = f"unlearned/{paper.method}/x{budget:g}"
        row, found = _row(summary, state), agreed.get(state)
        entry = asdict(paper) | {"state": state, "ran": row is not None and found is not None}
        if entry["ran"]:
            entry |= attack_entry(table, state) if table is not None else {}
            entry |= {
                "ours": found.label,
                "agrees": found.label in paper.expected,
                "flags": list(found.flags),
                "seed_labels": list(found.seed_labels),
                "n_seeds": row["n_seeds"],
                "RetFail_MRR": row["RetFail_MRR"],
                "RetFail_MRR_seed_interval": [
                    row["RetFail_MRR_seed_low"],
                    row["RetFail_MRR_seed_high"],
                ],
                "GenKnow": row["GenKnow"],
                "InterIdSim": row["InterIdSim"],
                "forget_gap_closed": found.forget_gap_closed,
                "assoc_gap_closed": found.assoc_gap_closed,
                "holdout_gap_closed": found.holdout_gap_closed,
                "utility_retained": found.utility_retained,
            }
        else:
            entry |= {"ours": None, "agrees": False}
        out.append(entry)
    return out


def criteria(
    table: pl.DataFrame,
    baselines: list[dict],
    genknow_classes: int,
    targets: Targets,
) -> list[Criterion]:
    clean, compromised = _row(table, "clean"), _row(table, "compromised")
    if clean is None or compromised is None:
        raise ValueError("the results table needs both a clean and a compromised row")
    lo, hi = targets.compromised_mrr
    mrr, r1 = compromised["RetFail_MRR"], compromised["RetFail_R@1"]
    ratio = mrr / clean["RetFail_MRR"] if clean["RetFail_MRR"] > 0 else math.inf
    out = [
        Criterion("Compromised RetFail MRR", mrr, f"in [{lo:g}, {hi:g}]", lo <= mrr <= hi),
        Criterion(
            "Compromised RetFail R@1",
            r1,
            f"<= {targets.compromised_r1_max:g}",
            r1 <= targets.compromised_r1_max,
        ),
        Criterion(
            "Compromised / Clean RetFail MRR",
            ratio,
            f">= {targets.clean_leak_ratio_min:g}",
            ratio >= targets.clean_leak_ratio_min,
        ),
    ]
    chance = 1.0 / genknow_classes if genknow_classes else math.nan
    for name, row in (("Clean", clean), ("Compromised", compromised)):
        genknow, half = row["GenKnow"], _half_width(row, "GenKnow")
        floor = targets.genknow_chance_multiple * chance
        out.append(
            Criterion(
                f"{name} GenKnow",
                genknow,
                f">= {targets.genknow_chance_multiple:g} x chance ({floor:.4f})",
                genknow >= floor,
            )
        )
        out.append(
            Criterion(
                f"{name} GenKnow 95% half-width",
                half,
                f"<= {targets.genknow_half_width_max:g}",
                half <= targets.genknow_half_width_max,
            )
        )
    ran = [b for b in baselines if b["ran"]]
    agreeing = sum(b["agrees"] for b in ran)
    out.append(
        Criterion(
            "paper baselines with the paper's failure mode",
            agreeing,
            f">= {targets.agreeing_min} of {len(PAPER_BASELINES)}",
            agreeing >= targets.agreeing_min,
        )
    )
    deleting = [
        b["method"]
        for b in ran
        if b["ours"] == diagnose.BALANCED
        and b["forget_gap_closed"] >= targets.balanced_gap_closed_min
    ]
    out.append(
        Criterion(
            "balanced baselines closing the RetFail gap",
            ", ".join(deleting) or "none",
            f">= 1 at >= {targets.balanced_gap_closed_min:.0%} of the gap",
            bool(deleting),
        )
    )
    fewest = min((b["n_seeds"] for b in ran), default=0)
    out.append(
        Criterion(
            "seeds per diagnosis (fewest)",
            fewest,
            f">= {targets.seeds_min}",
            fewest >= targets.seeds_min,
        )
    )
    return out


def report(
    table: pl.DataFrame,
    budget: float,
    genknow_classes: int,
    thresholds: diagnose.Thresholds | None = None,
    agreement: float = seeds.DEFAULT_AGREEMENT,
    targets: Targets | None = None,
) -> dict:
    targets = targets or Targets()
    summary, agreed = seeds.summarise(table, thresholds, agreement=agreement)
    baselines = baseline_rows(summary, agreed, budget, table)
    found = criteria(table, baselines, genknow_classes, targets)
    clean, compromised = _row(table, "clean"), _row(table, "compromised")
    paper_ratio = (
        PAPER_REFERENCE["compromised"]["RetFail_MRR"] / PAPER_REFERENCE["clean"]["RetFail_MRR"]
    )
    return {
        "budget": budget,
        "seed_agreement": agreement,
        "agreeing": sum(b["agrees"] for b in baselines),
        "baselines_ran": sum(b["ran"] for b in baselines),
        "of": len(PAPER_BASELINES),
        "all_hold": all(c.holds for c in found),
        "criteria": [asdict(c) for c in found],
        "baselines": baselines,
        "references": {
            "ours": {
                state: {
                    "RetFail_MRR": row["RetFail_MRR"],
                    "RetFail_R@1": row["RetFail_R@1"],
                    "GenKnow": row["GenKnow"],
                    "GenKnow_ci": [row["GenKnow_ci_low"], row["GenKnow_ci_high"]],
                }
                for state, row in (("clean", clean), ("compromised", compromised))
            },
            "paper": PAPER_REFERENCE,
            "leak_ratio": {
                "ours": compromised["RetFail_MRR"] / clean["RetFail_MRR"]
                if clean["RetFail_MRR"] > 0
                else math.inf,
                "paper": paper_ratio,
            },
            "genknow_classes": genknow_classes,
        },
    }


def _num(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def attack_cell(baseline: dict) -> str:
    if "attack_max_recovered" not in baseline:
        return "-"
    label = f", {baseline['attack_diagnosis']}" if baseline["attack_diagnosis"] else ""
    recovered = _num(baseline["attack_max_recovered"], 3)
    return f"{recovered} ({baseline['attack_worst']}{label})"


def to_markdown(found: dict) -> str:
    ratio = found["references"]["leak_ratio"]
    lines = [
        f"# Fidelity to the paper at {found['budget']:g}x",
        "",
        f"**{found['agreeing']} of {found['of']}** paper baselines get the paper's failure mode "
        f"(diagnosis agreed by {found['seed_agreement']:.0%} of each method's seeds). "
        f"Leak ratio Compromised / Clean RetFail MRR: ours {_num(ratio['ours'], 1)}, "
        f"paper {_num(ratio['paper'], 1)}.",
        "",
        "| baseline | paper's failure mode | ours | agree | seeds | RetFail MRR (seed interval)"
        " | gap closed | holdout gap closed | GenKnow retained | VisIdInt retained | paper RetFail"
        " / GenKnow / InterIdSim | attacks: most recovered (worst) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for b in found["baselines"]:
        paper = " / ".join(_num(b[k], 3) for k in ("retfail", "genknow", "inter_id_sim"))
        if not b["ran"]:
            lines.append(
                f"| {b['name']} | {b['failure_mode']} | not run | no | 0 | - | - | - | - | - "
                f"| {paper} | - |"
            )
            continue
        low, high = b["RetFail_MRR_seed_interval"]
        utility = b["utility_retained"]
        lines.append(
            f"| {b['name']} | {b['failure_mode']} | {b['ours']} | "
            f"{'yes' if b['agrees'] else 'no'} | {b['n_seeds']} | {_num(b['RetFail_MRR'])} "
            f"[{_num(low)}, {_num(high)}] | {_num(b['forget_gap_closed'], 3)} | "
            f"{_num(b['holdout_gap_closed'], 3)} | {_num(utility['GenKnow'], 3)} | "
            f"{_num(utility['VisIdInt'], 3)} | {paper} | {attack_cell(b)} |"
        )
    lines += ["", "Seed labels where the seeds disagree:", ""]
    disagreeing = [b for b in found["baselines"] if b["ran"] and len(set(b["seed_labels"])) > 1]
    lines += [f"- {b['name']}: {', '.join(b['seed_labels'])}" for b in disagreeing] or ["- none"]
    lines += ["", "| calibration target | value | target | holds |", "|---|---|---|---|"]
    lines += [
        f"| {c['name']} | {_num(c['value'])} | {c['target']} | {'yes' if c['holds'] else 'NO'} |"
        for c in found["criteria"]
    ]
    return "\n".join(lines) + "\n"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--table", required=True, help="the per-seed results table (benchmark.parquet)")
    add("--reference-eval", required=True, help="an evaluation JSON (its meta: GenKnow classes)")
    add("--budget", type=float, required=True, help="the main budget (paper: 5)")
    add("--out-prefix", required=True, help="writes PREFIX.json and PREFIX.md")
    ReportSettings.add_arguments(parser)
    Thresholds.add_arguments(parser)


def run(args: argparse.Namespace) -> None:
    table = read_parquet(args.table, ["state", "seed", *CI_COLUMN_NAMES])
    meta = read_json(args.reference_eval).get("meta", {})
    classes = int(meta.get("genknow_classes") or 0)
    found = report(
        table,
        args.budget,
        classes,
        Thresholds.from_args(args),
        args.seed_agreement,
    )
    prefix = Path(args.out_prefix)
    write_json(found, prefix.with_suffix(".json"))
    markdown = to_markdown(found)
    prefix.with_suffix(".md").write_text(markdown)
    print(markdown)
