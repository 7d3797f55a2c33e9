"""``salmu plots``: forgetting-vs-utility trade-off plots from the results table, PNG and SVG.

Two figures, each a point per model state, x = RetFail MRR (the primary forgetting metric, lower
is better; log scale when its values span more than a decade):

- ``retfail_vs_genknow``: y = GenKnow (primary utility, higher is better). GenKnow -1 (skipped)
  is left out, with a note on the figure.
- ``retfail_vs_intraidsim``: y = IntraIdSim (holdout associations of forget identities, which must
  be kept); the band below Clean's value is shaded: over-generalisation (docs/protocol.md §2.1).

Clean (green star) and Compromised (red cross) are marked distinctly, with dotted target lines:
forgetting target = Clean's RetFail, utility target = Compromised's y. Unlearned states: colour
and marker by method (fixed order: sorted method names), marker area and a ``xN`` label by budget;
a thin line per method runs from Compromised through its budgets in order (mean over seeds per
budget), i.e. the path unlearning takes. Error bars: the bootstrap CIs of the table
(``<column>_ci_low/high``) where present (RetFail MRR and IntraIdSim; GenKnow has none).

Deterministic output: Agg backend, fixed ``svg.hashsalt``, no date and a fixed creator/software
string in the SVG/PNG metadata, so two runs on the same table give identical bytes. Each point is
an SVG group ``id="point_<state>"`` (non ``[A-Za-z0-9_.-]`` characters -> ``_``).
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import polars as pl  # noqa: E402

from salmu.io import ensure_parent, read_parquet  # noqa: E402

X_COLUMN = "RetFail_MRR"
# Figure name -> (y column, y axis label, shade below Clean's y as over-generalisation)
FIGURES = {
    "retfail_vs_genknow": (
        "GenKnow",
        "GenKnow: zero-shot accuracy (utility, higher is better)",
        False,
    ),
    "retfail_vs_intraidsim": (
        "IntraIdSim",
        "IntraIdSim: holdout-association similarity (keep at Compromised)",
        True,
    ),
}
FORMATS = ("png", "svg")
REFERENCE_STYLE = {
    "clean": {"marker": "*", "s": 260, "color": "#2ca02c", "label": "Clean (target: forgetting)"},
    "compromised": {
        "marker": "X",
        "s": 170,
        "color": "#d62728",
        "label": "Compromised (target: utility)",
    },
}
# tab10 without the reference colours (green, red).
METHOD_COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
METHOD_MARKERS = ("o", "s", "^", "D", "v", "P", "h", "<", ">", "p")
METADATA = {
    "png": {"Software": "salmu plots"},
    "svg": {"Date": None, "Creator": "salmu plots"},
}
RC = {"svg.hashsalt": "salmu-plots", "svg.fonttype": "path", "font.size": 9}


@dataclass(frozen=True)
class Point:
    """One plotted point, read back from the figure's artist (data coordinates)."""

    state: str
    method: str
    budget: float | None
    seed: int | None
    x: float
    y: float
    x_err: tuple[float, float] | None  # (below, above) the point; None: no CI
    y_err: tuple[float, float] | None


def svg_id(state: str) -> str:
    return "point_" + re.sub(r"[^A-Za-z0-9_.-]", "_", state)


def _number(value) -> float:
    return math.nan if value is None else float(value)


def _valid(column: str, value: float) -> bool:
    return not math.isnan(value) and not (column == "GenKnow" and value < 0)


def _error(row: dict, column: str, value: float) -> tuple[float, float] | None:
    low, high = (_number(row.get(f"{column}_ci_{end}")) for end in ("low", "high"))
    if math.isnan(low) or math.isnan(high):
        return None
    return (max(value - low, 0.0), max(high - value, 0.0))


def _method_styles(methods: list[str]) -> dict[str, dict]:
    return {
        method: {
            "color": METHOD_COLORS[i % len(METHOD_COLORS)],
            "marker": METHOD_MARKERS[i % len(METHOD_MARKERS)],
        }
        for i, method in enumerate(sorted(methods))
    }


def _marker_area(budget: float | None) -> float:
    return 70.0 if budget is None else 35.0 + 35.0 * math.log2(1.0 + max(budget, 0.0))


def _draw(ax, table: pl.DataFrame, y_column: str, y_label: str, shade: bool) -> list[Point]:
    rows = list(table.iter_rows(named=True))
    references = {r["state"]: r for r in rows if r["state"] in REFERENCE_STYLE}
    unlearned = [r for r in rows if r["state"] not in REFERENCE_STYLE]
    styles = _method_styles(sorted({r["method"] for r in unlearned}))
    points: list[Point] = []

    def plot_one(row: dict, style: dict, size: float, label: str | None, zorder: int) -> None:
        x, y = _number(row[X_COLUMN]), _number(row[y_column])
        if not (_valid(X_COLUMN, x) and _valid(y_column, y)):
            return
        x_err, y_err = _error(row, X_COLUMN, x), _error(row, y_column, y)
        if x_err or y_err:
            ax.errorbar(
                [x],
                [y],
                xerr=None if x_err is None else [[x_err[0]], [x_err[1]]],
                yerr=None if y_err is None else [[y_err[0]], [y_err[1]]],
                fmt="none",
                ecolor=style["color"],
                elinewidth=0.9,
                capsize=2.5,
                alpha=0.8,
                zorder=zorder - 1,
            )
        artist = ax.scatter(
            [x],
            [y],
            s=size,
            marker=style["marker"],
            color=style["color"],
            edgecolors="black",
            linewidths=0.6,
            label=label,
            zorder=zorder,
        )
        artist.set_gid(svg_id(row["state"]))
        (px, py), *_ = artist.get_offsets().tolist()
        points.append(
            Point(row["state"], row["method"], row["budget"], row["seed"], px, py, x_err, y_err)
        )

    # Method paths: Compromised -> budgets in order (mean over seeds per budget).
    start = references.get("compromised")
    for method, style in styles.items():
        by_budget: dict[float, list[tuple[float, float]]] = {}
        for row in unlearned:
            x, y = _number(row[X_COLUMN]), _number(row[y_column])
            if row["method"] == method and _valid(X_COLUMN, x) and _valid(y_column, y):
                by_budget.setdefault(row["budget"] or 0.0, []).append((x, y))
        path = [
            (sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts))
            for _, pts in sorted(by_budget.items())
        ]
        if start is not None:
            x0, y0 = _number(start[X_COLUMN]), _number(start[y_column])
            if _valid(X_COLUMN, x0) and _valid(y_column, y0):
                path.insert(0, (x0, y0))
        if len(path) > 1:
            xs, ys = zip(*path, strict=True)
            ax.plot(xs, ys, color=style["color"], linewidth=0.8, alpha=0.5, zorder=1)

    # References under the unlearned points (a method that barely moved stays visible on top).
    for state, style in REFERENCE_STYLE.items():
        if state in references:
            plot_one(references[state], style, style["s"], style["label"], zorder=3)
    labelled = set()
    budgets = {
        m: sorted({r["budget"] or 0.0 for r in unlearned if r["method"] == m}) for m in styles
    }
    for row in unlearned:
        style = styles[row["method"]]
        label = None if row["method"] in labelled else row["method"]
        labelled.add(row["method"])
        before = len(points)
        plot_one(row, style, _marker_area(row["budget"]), label, zorder=5)
        if len(points) > before and row["budget"] is not None:
            seed = "" if row["seed"] in (None, 0) else f" s{row['seed']}"
            # Alternate above / below by budget rank: neighbouring budgets rarely collide.
            above = budgets[row["method"]].index(row["budget"]) % 2 == 0
            ax.annotate(
                f"x{row['budget']:g}{seed}",
                (points[-1].x, points[-1].y),
                textcoords="offset points",
                xytext=(6, 5) if above else (6, -11),
                fontsize=7,
                color=style["color"],
            )

    # Target lines and the over-generalisation band.
    clean, compromised = references.get("clean"), references.get("compromised")
    if clean is not None and _valid(X_COLUMN, _number(clean[X_COLUMN])):
        ax.axvline(_number(clean[X_COLUMN]), color="#2ca02c", linestyle=":", linewidth=1, zorder=0)
    if compromised is not None and _valid(y_column, _number(compromised[y_column])):
        ax.axhline(
            _number(compromised[y_column]), color="#d62728", linestyle=":", linewidth=1, zorder=0
        )
        if clean is not None and _valid(X_COLUMN, _number(clean[X_COLUMN])):
            ax.annotate(
                "ideal",
                (_number(clean[X_COLUMN]), _number(compromised[y_column])),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=7,
                color="gray",
            )
    if shade and clean is not None and _valid(y_column, _number(clean[y_column])):
        clean_y = _number(clean[y_column])
        ax.axhline(clean_y, color="#2ca02c", linestyle="--", linewidth=0.8, zorder=0)
        low = min([clean_y, *(p.y - (p.y_err[0] if p.y_err else 0.0) for p in points)])
        margin = 0.05 * max(abs(clean_y - low), 0.1)
        ax.axhspan(low - margin, clean_y, color="#9467bd", alpha=0.08, zorder=0, linewidth=0)
        ax.text(
            0.99,
            clean_y,
            "below Clean: over-generalisation ",
            transform=ax.get_yaxis_transform(),
            ha="right",
            va="top",
            fontsize=7,
            color="#6b4c9a",
        )

    xs = [p.x for p in points]
    if xs and min(xs) > 0 and max(xs) / min(xs) > 10:
        ax.set_xscale("log")
    ax.set_xlabel("RetFail MRR on the forget set (forgetting: lower is better, target Clean)")
    ax.set_ylabel(y_label)
    ax.grid(True, which="major", linewidth=0.4, alpha=0.4)
    if not points:
        ax.text(0.5, 0.5, "no values to plot", transform=ax.transAxes, ha="center")
    if y_column == "GenKnow" and any(not _valid("GenKnow", _number(r["GenKnow"])) for r in rows):
        ax.text(
            0.01,
            0.01,
            "GenKnow skipped (-1) for some states: not shown",
            transform=ax.transAxes,
            fontsize=7,
            color="gray",
        )
    if points:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return points


def make_plots(table: pl.DataFrame, out_dir: str | Path, dpi: int = 150) -> dict[str, dict]:
    """Write every figure as PNG and SVG; returns ``{name: {"files": [...], "points": [...]}}``
    where ``points`` are ``Point`` dicts read back from the plotted artists."""
    needed = ("state", "method", "budget", "seed", X_COLUMN, *(f[0] for f in FIGURES.values()))
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(f"results table: missing columns {missing}")
    out_dir = Path(out_dir)
    out: dict[str, dict] = {}
    with matplotlib.rc_context(RC):
        for name, (y_column, y_label, shade) in FIGURES.items():
            fig, ax = plt.subplots(figsize=(8.0, 5.0))
            try:
                points = _draw(ax, table, y_column, y_label, shade)
                title = {"GenKnow": "general knowledge", "IntraIdSim": "kept associations"}
                ci = any(p.x_err or p.y_err for p in points)
                ax.set_title(
                    f"Forgetting vs {title[y_column]}"
                    + (" (error bars: identity-bootstrap CIs)" if ci else ""),
                    fontsize=10,
                )
                files = []
                for fmt in FORMATS:
                    path = ensure_parent(out_dir / f"{name}.{fmt}")
                    fig.savefig(
                        path, format=fmt, dpi=dpi, metadata=METADATA[fmt], bbox_inches="tight"
                    )
                    files.append(str(path))
            finally:
                plt.close(fig)
            out[name] = {"files": files, "points": [asdict(p) for p in points]}
    return out


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", required=True, help="results table (benchmark.parquet)")
    parser.add_argument("--out-dir", required=True, help="writes <figure>.png and <figure>.svg")
    parser.add_argument("--dpi", type=int, default=150, help="PNG resolution")


def run(args: argparse.Namespace) -> None:
    if args.dpi <= 0:
        raise ValueError(f"--dpi must be > 0, got {args.dpi}")
    made = make_plots(read_parquet(args.table), args.out_dir, args.dpi)
    for name, entry in made.items():
        print(f"plots: {name}: {len(entry['points'])} points -> {', '.join(entry['files'])}")
