"""``salmu plots``: valid, deterministic PNG/SVG whose points are the table's values."""

import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import polars as pl
import pytest
from PIL import Image

from salmu.cli import main
from salmu.evaluate.layout import METRIC_COLUMNS, ci_column_names
from salmu.io import write_parquet
from salmu.plots import FIGURES, make_plots, svg_id

SVG_NS = {"svg": "http://www.w3.org/2000/svg", "xlink": "http://www.w3.org/1999/xlink"}
# state: (RetFail MRR, GenKnow, IntraIdSim); CIs on every row but clean.
ROWS = {
    "clean": (0.002, 0.63, 0.14),
    "compromised": (0.24, 0.64, 0.32),
    "unlearned/finetune/x1/seed0": (0.10, 0.64, 0.30),
    "unlearned/finetune/x5/seed0": (0.003, 0.638, 0.21),
    "unlearned/finetune/x5/seed1": (0.004, 0.636, 0.22),
    "unlearned/delete/x5/seed0": (0.001, 0.632, 0.02),
    "unlearned/shuffled/x5/seed0": (0.004, -1.0, 0.21),  # GenKnow skipped
}


def results_table() -> pl.DataFrame:
    records = []
    for state, (mrr, genknow, intra) in ROWS.items():
        parts = state.split("/")
        row = {
            "state": state,
            "method": parts[1] if len(parts) > 1 else state,
            "budget": float(parts[2][1:]) if len(parts) > 1 else None,
            "seed": int(parts[3][4:]) if len(parts) > 1 else None,
            "checkpoint": None,
        }
        row |= dict.fromkeys(METRIC_COLUMNS, 0.5) | {
            "RetFail_MRR": mrr,
            "GenKnow": genknow,
            "IntraIdSim": intra,
        }
        row |= dict.fromkeys(ci_column_names(), math.nan)
        if state != "clean":
            row |= {
                "RetFail_MRR_ci_low": mrr * 0.8,
                "RetFail_MRR_ci_high": mrr * 1.25,
                "IntraIdSim_ci_low": intra - 0.02,
                "IntraIdSim_ci_high": intra + 0.03,
            }
        records.append(row)
    return pl.DataFrame(records)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    out = tmp_path_factory.mktemp("plots")
    return out, make_plots(results_table(), out)


def test_files_are_valid_png_and_svg(made):
    out, result = made
    assert set(result) == set(FIGURES)
    for name in FIGURES:
        png, svg = out / f"{name}.png", out / f"{name}.svg"
        assert result[name]["files"] == [str(png), str(svg)]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(png) as image:
            image.verify()
        with Image.open(png) as image:
            assert image.size[0] > 600 and image.size[1] > 300
        root = ET.parse(svg).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        text = svg.read_text()
        assert "<dc:date>" not in text  # no timestamp


def test_output_is_deterministic(made, tmp_path):
    out, _ = made
    make_plots(results_table(), tmp_path)
    for name in FIGURES:
        for fmt in ("png", "svg"):
            assert (tmp_path / f"{name}.{fmt}").read_bytes() == (out / f"{name}.{fmt}").read_bytes()


def test_points_are_the_tables_values(made):
    _, result = made
    table = {r["state"]: r for r in results_table().iter_rows(named=True)}
    genknow = {p["state"]: p for p in result["retfail_vs_genknow"]["points"]}
    intra = {p["state"]: p for p in result["retfail_vs_intraidsim"]["points"]}
    assert set(intra) == set(ROWS)
    assert set(genknow) == set(ROWS) - {"unlearned/shuffled/x5/seed0"}  # GenKnow -1: not plotted
    for state, point in intra.items():
        assert point["x"] == table[state]["RetFail_MRR"]
        assert point["y"] == table[state]["IntraIdSim"]
        assert (
            point["method"] == table[state]["method"] and point["budget"] == table[state]["budget"]
        )
    for state, point in genknow.items():
        assert (point["x"], point["y"]) == (table[state]["RetFail_MRR"], table[state]["GenKnow"])
        assert point["y_err"] is None  # GenKnow has no CI
    # Error bars from the CIs, as distances below / above the point.
    ft = intra["unlearned/finetune/x5/seed0"]
    assert ft["x_err"] == pytest.approx((0.003 * 0.2, 0.003 * 0.25))
    assert ft["y_err"] == pytest.approx((0.02, 0.03))
    assert intra["clean"]["x_err"] is None and intra["clean"]["y_err"] is None


def svg_positions(path) -> dict[str, tuple[float, float]]:
    """Pixel position of every point group ``point_<state>`` in the SVG."""
    positions = {}
    for group in ET.parse(path).getroot().iter("{http://www.w3.org/2000/svg}g"):
        gid = group.get("id", "")
        if gid.startswith("point_"):
            (use,) = group.iterfind(".//svg:use", SVG_NS)
            positions[gid] = (float(use.get("x")), float(use.get("y")))
    return positions


def test_svg_points_read_back_to_the_table(made):
    out, _ = made
    table = results_table()
    positions = svg_positions(out / "retfail_vs_intraidsim.svg")
    assert set(positions) == {svg_id(s) for s in ROWS}
    assert all(re.fullmatch(r"point_[A-Za-z0-9_.-]+", gid) for gid in positions)
    # MRR spans > a decade: log x axis. Pixels are affine in (log10 MRR, IntraIdSim), y flipped.
    data = np.array(
        [(math.log10(r["RetFail_MRR"]), r["IntraIdSim"]) for r in table.iter_rows(named=True)]
    )
    pixels = np.array([positions[svg_id(s)] for s in table["state"]])
    for axis in (0, 1):
        slope, intercept = np.polyfit(data[:, axis], pixels[:, axis], 1)
        assert np.abs(slope * data[:, axis] + intercept - pixels[:, axis]).max() < 0.01
        assert (slope > 0) == (axis == 0)  # SVG y grows downwards


def test_cli(tmp_path, capsys):
    table_path = tmp_path / "benchmark.parquet"
    write_parquet(results_table(), table_path)
    assert main(["plots", "--table", str(table_path), "--out-dir", str(tmp_path / "p")]) == 0
    assert "retfail_vs_genknow: 6 points" in capsys.readouterr().out
    assert (tmp_path / "p" / "retfail_vs_intraidsim.svg").exists()
    write_parquet(results_table().drop("IntraIdSim"), table_path)
    assert main(["plots", "--table", str(table_path), "--out-dir", str(tmp_path / "q")]) == 2
    assert "IntraIdSim" in capsys.readouterr().err
