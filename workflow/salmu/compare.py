"""``salmu compare``: is method A better than method B? Paired bootstrap over the benchmark.

Two rows of the results table differ by more than their own noise only if the difference holds
when the benchmark is resampled. Both models are scored on the *same* rows, so the comparison is
paired: per row the difference A - B, and the bootstrap resamples the rows' clusters, keeping
each row's two scores together:

- **RetFail** (lower is better): per forget row ``1 / rank`` (the reciprocal rank whose mean is
  the MRR, from ``outcomes`` in the evaluation JSON); clusters = the forget rows' identities
  (``identity_id`` of the benchmark's forget split), as in the evaluator's own CIs.
- **GenKnow** (higher is better): per image 1 if classified right (``hits`` in the JSON); the
  images are independent draws, each its own cluster.

With several seeds per method, a row's score is its mean over the method's seeds (the seeds' own
spread is in the summary table's seed interval). Verdict per metric: "A better" / "B better"
when the interval of A - B excludes 0, else "no difference". No correction for making many
comparisons: with k methods there are k(k-1)/2 pairs, so at level 0.95 about one in twenty
"differences" between equal methods is expected; read a single verdict, not the count.
"""

from __future__ import annotations

import argparse
import itertools
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from salmu.evaluate import data
from salmu.evaluate.metrics import cluster_bootstrap_ci
from salmu.io import read_json, read_parquet, write_json
from salmu.sections.report import ReportSettings
from salmu.seeding import stream
from salmu.table import describe_state

LOWER_IS_BETTER = {"RetFail_MRR": True, "GenKnow": False}


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    metric: str
    a_value: float
    b_value: float
    difference: float  # A - B
    ci_low: float
    ci_high: float
    verdict: str


def per_row_scores(result: dict, path: str) -> dict[str, np.ndarray]:
    """``RetFail_MRR`` (reciprocal ranks) and ``GenKnow`` (hits) per row of one evaluation."""
    ret_fail = result["efficacy"]["1.1_RetFail"]
    if "outcomes" not in ret_fail:
        raise ValueError(f"{path}: 1.1_RetFail has no outcomes (per-row ranks)")
    out = {"RetFail_MRR": 1.0 / np.asarray(ret_fail["outcomes"], dtype=np.float64)}
    hits = result["utility"]["2.1_GenKnow"].get("hits")
    if hits is not None:
        out["GenKnow"] = np.asarray(hits, dtype=np.float64)
    return out


def method_scores(eval_paths: list[str], budget: float) -> dict[str, dict[str, np.ndarray]]:
    """Method -> metric -> per-row score, the mean over that method's seeds at ``budget``."""
    collected: dict[str, list[dict[str, np.ndarray]]] = {}
    for path in eval_paths:
        result = read_json(path)
        described = describe_state(result["meta"]["state"])
        if described["budget"] is None or not math.isclose(described["budget"], budget):
            continue
        collected.setdefault(described["method"], []).append(per_row_scores(result, path))
    out = {}
    for method, runs in collected.items():
        out[method] = {}
        for metric in LOWER_IS_BETTER:
            if all(metric in r for r in runs):
                lengths = {len(r[metric]) for r in runs}
                if len(lengths) != 1:
                    raise ValueError(f"{method}: its seeds scored different rows for {metric}")
                out[method][metric] = np.mean([r[metric] for r in runs], axis=0)
    return out


def verdict(low: float, high: float, lower_is_better: bool) -> str:
    if math.isnan(low) or (low <= 0 <= high):
        return "no difference"
    a_lower = high < 0
    return "A better" if a_lower == lower_is_better else "B better"


def compare(
    scores: dict[str, dict[str, np.ndarray]],
    clusters: dict[str, list],
    n_resamples: int,
    level: float,
    seed: int,
) -> list[Comparison]:
    """Every pair of methods (sorted names, A before B) on every metric both have."""
    out = []
    for a, b in itertools.combinations(sorted(scores), 2):
        for metric, lower in LOWER_IS_BETTER.items():
            if metric not in scores[a] or metric not in scores[b]:
                continue
            sa, sb = scores[a][metric], scores[b][metric]
            if len(sa) != len(sb) or len(sa) != len(clusters[metric]):
                raise ValueError(
                    f"{metric}: {a} and {b} were scored on different rows "
                    f"({len(sa)} vs {len(sb)}; the benchmark has {len(clusters[metric])})"
                )
            rng = stream(seed, "compare", a, b, metric)
            ((low, high),) = cluster_bootstrap_ci(
                sa - sb, clusters[metric], n_resamples, level, rng
            )
            out.append(
                Comparison(
                    a,
                    b,
                    metric,
                    float(sa.mean()),
                    float(sb.mean()),
                    float((sa - sb).mean()),
                    float(low),
                    float(high),
                    verdict(low, high, lower),
                )
            )
    return out


def forget_identities(benchmark: str | Path) -> list:
    """``identity_id`` of every forget row, in the evaluator's row order (shard order)."""
    ids: list = []
    for path in data.shard_paths(benchmark, "forget"):
        ids.extend(read_parquet(path, ["identity_id"], only=True)["identity_id"].to_list())
    return ids


def to_markdown(comparisons: list[Comparison], budget: float, level: float) -> str:
    lines = [
        f"# Paired comparisons at {budget:g}x",
        "",
        f"A - B per row, mean over each method's seeds; {level:.0%} paired bootstrap interval "
        "(RetFail: identities resampled; GenKnow: images). RetFail lower is better, GenKnow "
        "higher is better. No multiple-comparison correction.",
        "",
        "| A | B | metric | A | B | A - B | interval | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        lines.append(
            f"| {c.a} | {c.b} | {c.metric} | {c.a_value:.4f} | {c.b_value:.4f} | "
            f"{c.difference:+.4f} | [{c.ci_low:+.4f}, {c.ci_high:+.4f}] | {c.verdict} |"
        )
    return "\n".join(lines) + "\n"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--evals", nargs="+", required=True, help="evaluation JSONs of the unlearned models")
    add("--benchmark", required=True, help="the benchmark dir they were evaluated on")
    add("--budget", type=float, required=True, help="compare the methods at this budget")
    add("--seed", type=int, default=42, help="seed of the bootstrap resamples")
    ReportSettings.add_arguments(parser)
    add("--out-prefix", required=True, help="writes PREFIX.json and PREFIX.md")


def run(args: argparse.Namespace) -> None:
    scores = method_scores(args.evals, args.budget)
    if len(scores) < 2:
        raise ValueError(
            f"--evals: {len(scores)} method(s) at budget {args.budget:g}; comparing needs two"
        )
    clusters = {"RetFail_MRR": forget_identities(args.benchmark)}
    genknow_sizes = {len(s["GenKnow"]) for s in scores.values() if "GenKnow" in s}
    if genknow_sizes:
        clusters["GenKnow"] = [None] * max(genknow_sizes)
    comparisons = compare(
        scores, clusters, args.comparison_resamples, args.seed_interval_level, args.seed
    )
    prefix = Path(args.out_prefix)
    write_json(
        {
            "budget": args.budget,
            "ci_level": args.seed_interval_level,
            "resamples": args.comparison_resamples,
            "methods": sorted(scores),
            "comparisons": [asdict(c) for c in comparisons],
        },
        prefix.with_suffix(".json"),
    )
    markdown = to_markdown(comparisons, args.budget, args.seed_interval_level)
    prefix.with_suffix(".md").write_text(markdown)
    print(markdown)
