"""The recovered share of the gap per attacked model and attack, as one bar chart
(``results/<run>/plots/recovered_gap.{png,svg}``), with the superficial-forgetting line."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from salmu.plots import FORMATS, METADATA, RC, plt


def recovered_plot(
    attacks: pl.DataFrame, out_dir: str | Path, max_recovered: float, dpi: int = 150
) -> list[str]:
    """One horizontal bar per (unlearned model, attack); returns the files written."""
    import matplotlib

    from salmu.io import ensure_parent

    rows = attacks.filter(~pl.col("state").is_in(["clean", "compromised"]))
    states = rows["state"].unique(maintain_order=True).to_list()
    kinds = rows["attack"].unique(maintain_order=True).to_list()
    height = 0.8 / max(1, len(kinds))
    files = []
    with matplotlib.rc_context(RC):
        fig, ax = plt.subplots(figsize=(8.0, 0.1 * len(states) * max(1, len(kinds)) + 1.5))
        try:
            for k, kind in enumerate(kinds):
                values = {
                    r["state"]: r["RetFail_MRR_recovered"]
                    for r in rows.filter(pl.col("attack") == kind).iter_rows(named=True)
                }
                drawn = [(i, values[s]) for i, s in enumerate(states) if values.get(s) is not None]
                ax.barh(
                    [i + (k - (len(kinds) - 1) / 2) * height for i, _ in drawn],
                    [value for _, value in drawn],
                    height=height,
                    label=kind,
                )  # an undefined share (no reference gap) gets no bar
            ax.axvline(max_recovered, color="black", linestyle="--", linewidth=0.8)
            ax.axvline(0, color="grey", linewidth=0.5)
            ax.set_yticks(range(len(states)), [s.removeprefix("unlearned/") for s in states])
            ax.invert_yaxis()
            ax.set_xlabel("share of the Compromised-Clean RetFail MRR gap brought back")
            ax.set_title(
                f"Attacks on forgetting (dashed: superficial above {max_recovered:.0%})",
                fontsize=10,
            )
            ax.legend(loc="lower right", fontsize=8, frameon=False)
            for fmt in FORMATS:
                path = ensure_parent(Path(out_dir) / f"recovered_gap.{fmt}")
                fig.savefig(path, format=fmt, dpi=dpi, metadata=METADATA[fmt], bbox_inches="tight")
                files.append(str(path))
        finally:
            plt.close(fig)
    return files
