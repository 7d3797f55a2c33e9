"""``salmu attack-table``: every attack on every attacked model, as the share of the gap it
brought back (``results/<run>/attacks.{parquet,csv,md}``).

From the ``salmu attack`` JSONs of Clean, Compromised and the unlearned models: per model and
attack, RetFail MRR and AssocStr over the forget rows the attacker did not train on, before and
after the attack, for the model and for both references, and the recovered share of the gap
(``salmu.attacks.gap``). A model is labelled *superficial forgetting* when some attack brings back
more than ``--max-recovered`` of the RetFail gap.

Beside them, the association-inference attack (``salmu.attacks.inference``) on each model as it
is: its AUC and TPR at 1 % FPR against an independent shadow Clean (``--shadows``: the JSONs of
the shadow Clean / Compromised models), or the fallback without shadows.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import polars as pl

from salmu.attacks.gap import recovered
from salmu.io import ensure_parent, read_json, write_parquet

METRICS = {"RetFail_MRR": "rr", "AssocStr": "assoc"}
REFERENCES = ("clean", "compromised")
SUPERFICIAL = "superficial forgetting"


def read_results(paths: list[Path]) -> dict[str, dict]:
    """State -> ``salmu attack`` JSON; a file that is not one is named."""
    results = {}
    for path in paths:
        result = read_json(path)
        for key in ("state", "forget_file_names", "none", "attacks"):
            if key not in result:
                raise ValueError(f"{path}: missing key '{key}' (not a salmu attack JSON?)")
        results[result["state"]] = result
    return results


def load(paths: list[Path], shadow_paths: list[Path] = ()) -> tuple[dict, dict]:
    """The attacked models' JSONs (Clean and Compromised among them) and the shadow models',
    all scored on the same forget rows."""
    results, shadows = read_results(paths), read_results(list(shadow_paths))
    missing = [r for r in REFERENCES if r not in results]
    if missing:
        raise ValueError(f"--attacks: no attack JSON of {missing}; both references are needed")
    names = {tuple(r["forget_file_names"]) for r in [*results.values(), *shadows.values()]}
    if len(names) > 1:
        raise ValueError("--attacks / --shadows: the JSONs were scored on different forget rows")
    return results, shadows


def measured_rows(results: dict[str, dict], attack: str) -> np.ndarray:
    """The forget rows no attacker of ``attack`` trained on (the same for every model)."""
    names = next(iter(results.values()))["forget_file_names"]
    trained = {tuple(r["attacks"][attack].get("trained_on", [])) for r in results.values()}
    if len(trained) > 1:
        raise ValueError(f"attack {attack!r}: the models were attacked with different rows")
    held = set(trained.pop())
    return np.array([name not in held for name in names])


def mean(entry: dict, metric: str, rows: np.ndarray) -> float:
    return float(np.asarray(entry[METRICS[metric]], dtype=np.float64)[rows].mean())


def state_order(state: str) -> tuple:
    """Clean, Compromised, then the unlearned models by name."""
    return (REFERENCES.index(state) if state in REFERENCES else len(REFERENCES), state)


def build(results: dict[str, dict], min_gap: float) -> pl.DataFrame:
    clean, compromised = results["clean"], results["compromised"]
    attacks = sorted(set.intersection(*(set(r["attacks"]) for r in results.values())))
    # The rows each attack is measured on are the same for every model.
    measured = {attack: measured_rows(results, attack) for attack in attacks}
    records = []
    for state in sorted(results, key=state_order):
        result = results[state]
        for attack in attacks:
            rows = measured[attack]
            record = {
                "state": state,
                "attack": attack,
                "family": result["attacks"][attack]["family"],
                "rows_measured": int(rows.sum()),
            }
            for metric in METRICS:
                before = tuple(mean(r["none"], metric, rows) for r in (result, clean, compromised))
                after = tuple(
                    mean(r["attacks"][attack], metric, rows) for r in (result, clean, compromised)
                )
                record[f"{metric}_before"], record[f"{metric}_after"] = before[0], after[0]
                record[f"{metric}_recovered"] = recovered(before, after, min_gap)
            records.append(record)
    return pl.DataFrame(records, infer_schema_length=None)


def label(table: pl.DataFrame, max_recovered: float) -> pl.DataFrame:
    """Per model: the attack that brought back the most of the RetFail gap, and the label."""
    worst = (
        table.sort("RetFail_MRR_recovered", descending=True, nulls_last=True)
        .group_by("state", maintain_order=True)
        .first()
        .select(
            "state",
            pl.col("attack").alias("worst_attack"),
            pl.col("RetFail_MRR_recovered").alias("max_recovered"),
        )
    )
    return worst.with_columns(
        pl.when(pl.col("max_recovered") > max_recovered)
        .then(pl.lit(SUPERFICIAL))
        .otherwise(pl.lit(""))
        .alias("attack_diagnosis")
    )


ATTACK_COLUMNS = (
    "max_recovered",
    "worst_attack",
    "attack_diagnosis",
    "inference_auc",
    "inference_tpr_at_1pct_fpr",
    "inference_references",
)


def shadow_pairs(shadows: dict[str, dict]) -> list[int]:
    """The complete shadow pairs' numbers (shadowK/clean and shadowK/compromised both there)."""
    found = {}
    for state in shadows:
        number, _, role = state.partition("/")
        if not number.startswith("shadow") or role not in REFERENCES:
            raise ValueError(f"--shadows: {state!r} is not a shadow Clean or Compromised")
        found.setdefault(int(number[len("shadow") :]), set()).add(role)
    incomplete = sorted(k for k, roles in found.items() if roles != set(REFERENCES))
    if incomplete:
        raise ValueError(f"--shadows: shadow pair(s) {incomplete} lack a Clean or a Compromised")
    return sorted(found)


def inference(results: dict[str, dict], shadows: dict[str, dict]) -> pl.DataFrame:
    """Per model: the association-inference attack's AUC and TPR at 1 % FPR."""
    from salmu.attacks.inference import association_inference

    def scores(result):
        return np.asarray(result["none"]["assoc"], dtype=np.float64)

    pairs = shadow_pairs(shadows)
    # The last pair stays out of the fit: its Clean is the independent never-trained model,
    # and its Compromised shares that Clean's initial weights.
    fitted = pairs[:-1]
    in_scores = [scores(results["compromised"])]
    in_scores += [scores(shadows[f"shadow{k}/compromised"]) for k in fitted]
    out_scores = [scores(results["clean"])]
    out_scores += [scores(shadows[f"shadow{k}/clean"]) for k in fitted]
    negatives = scores(shadows[f"shadow{pairs[-1]}/clean"]) if pairs else out_scores[0]
    found = association_inference(
        in_scores, out_scores, negatives, {s: scores(r) for s, r in results.items()}
    )
    references = f"{len(pairs)} shadow pair(s)" if pairs else "fallback (no shadow)"
    return pl.DataFrame(
        [
            {
                "state": state,
                "inference_auc": value["auc"],
                "inference_tpr_at_1pct_fpr": value["tpr_at_1pct_fpr"],
                "inference_references": references,
            }
            for state, value in found.items()
        ]
    )


def per_state(attacks: pl.DataFrame) -> pl.DataFrame:
    """One row per attacked model for the results table: ``recovered_<attack>`` (the RetFail
    share each attack brought back), then ``ATTACK_COLUMNS``."""
    wide = attacks.pivot(on="attack", index="state", values="RetFail_MRR_recovered")
    wide = wide.rename({c: f"recovered_{c}" for c in wide.columns if c != "state"})
    columns = [c for c in ATTACK_COLUMNS if c in attacks.columns]
    labels = attacks.select("state", *columns).unique("state", maintain_order=True)
    return wide.join(labels, on="state", how="left")


def render(table: pl.DataFrame, labels: pl.DataFrame, max_recovered: float) -> str:
    attacks = table["attack"].unique(maintain_order=True).to_list()
    wide = table.pivot(on="attack", index="state", values="RetFail_MRR_recovered")
    lines = [
        "# Attacks on forgetting (ours)",
        "",
        "Share of the Compromised-Clean RetFail MRR gap each attack brings back, on the forget rows "
        "its attacker did not train on (0: nothing; 1: all of it; Clean and Compromised: 0 by "
        f"construction). Superficial forgetting: more than {max_recovered:.0%} back.",
        "",
        "| state | " + " | ".join(attacks) + " | diagnosis |",
        "|---|" + "---|" * (len(attacks) + 1),
    ]
    diagnosis = dict(zip(labels["state"], labels["attack_diagnosis"]))
    for row in wide.iter_rows(named=True):
        cells = ["" if row[a] is None else f"{row[a]:+.3f}" for a in attacks]
        lines.append(f"| {row['state']} | " + " | ".join(cells) + f" | {diagnosis[row['state']]} |")
    if "inference_auc" in labels.columns:
        references = labels["inference_references"][0]
        lines += [
            "",
            f"Association inference (ours; references: {references}): AUC and TPR at 1 % FPR "
            "of telling each model's forget-pair scores from an independent Clean's. Clean is a "
            "reference of the fit: a model near Clean's AUC has pairs that look never seen, one "
            "near Compromised's still holds them (without shadows, Clean's 0.5 and "
            "Compromised's 1.0 hold by construction).",
            "",
            "| state | AUC | TPR at 1 % FPR |",
            "|---|---|---|",
        ]
        rows = sorted(labels.iter_rows(named=True), key=lambda r: state_order(r["state"]))
        lines += [
            f"| {r['state']} | {r['inference_auc']:.3f} | {r['inference_tpr_at_1pct_fpr']:.3f} |"
            for r in rows
        ]
    return "\n".join(lines) + "\n"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--attacks", nargs="+", required=True, help="salmu attack JSONs")
    parser.add_argument("--out-prefix", required=True, help="writes <prefix>.{parquet,csv,md}")
    parser.add_argument("--max-recovered", type=float, default=0.5)
    parser.add_argument("--min-gap", type=float, default=0.01)
    parser.add_argument("--plots-dir", default=None, help="writes recovered_gap.{png,svg} here")
    parser.add_argument(
        "--shadows", nargs="*", default=[], help="attack JSONs of the shadow references"
    )


def run(args: argparse.Namespace) -> None:
    results, shadows = load([Path(p) for p in args.attacks], [Path(p) for p in args.shadows])
    table = build(results, args.min_gap)
    labels = label(table, args.max_recovered).join(
        inference(results, shadows), on="state", how="left"
    )
    prefix = Path(args.out_prefix)
    joined = table.join(labels, on="state", how="left")
    write_parquet(joined, prefix.with_suffix(".parquet"))
    joined.write_csv(ensure_parent(prefix.with_suffix(".csv")))
    markdown = render(table, labels, args.max_recovered)
    prefix.with_suffix(".md").write_text(markdown)
    if args.plots_dir:
        from salmu.attacks.plot import recovered_plot

        recovered_plot(table, args.plots_dir, args.max_recovered)
    print(markdown)
