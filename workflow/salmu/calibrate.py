"""``salmu calibrate``: sweep unlearning settings on a run's trained models, in one process.

Calibrating a tier means trying many per-method learning rates and loss weights against the same
Clean and Compromised models. Through the workflow each try pays two process starts (torch and
open_clip import: ~7 s each on our machines) per method and seed; here the imports are paid once.
The work itself is the workflow's own: the unlearning driver (``salmu.unlearn.run.unlearn``) and
the evaluator (``salmu.evaluate.run.evaluate``) with the run's settings, then the seed-agreed
diagnosis and the fidelity report (``salmu.fidelity``). Nothing here is a result of the
benchmark: the checkpoints go to ``--work-dir`` and only the report is printed and written.

    salmu calibrate --run-dir results/tiny --config config.yaml --seeds 0 1 2 \\
        --set neg_grad.lr=3e-5 --set delete.params.forget_weight=0.5

``--set METHOD.lr=X`` / ``--set METHOD.params.KEY=VALUE`` override ``unlearn.methods`` of the
config for this sweep only; ``--set unlearn.KEY=VALUE`` overrides a driver setting
(``salmu.sections.unlearn``: batch_size, grad_clip, weight_decay, ...).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import polars as pl

from salmu import diagnose, fidelity, seeds
from salmu.config_checks import selected_methods
from salmu.evaluate.run import EvalConfig, evaluate
from salmu.io import read_yaml, write_json
from salmu.plan import merge
from salmu.sections.evaluate import EvaluateSettings
from salmu.sections.unlearn import UnlearnSettings
from salmu.table import build_table


def merged_config(paths: list[str]) -> dict:
    """The config files merged in order, as Snakemake merges ``--configfile`` overlays."""
    config: dict = {}
    for path in paths:
        config = merge(config, read_yaml(path) or {})
    return config


def apply_overrides(unlearn: dict, overrides: list[str]) -> dict:
    """``--set`` strings applied to a copy of the config's ``unlearn`` section."""
    out = json.loads(json.dumps(unlearn))
    for item in overrides:
        path, sep, raw = item.partition("=")
        if not sep or "." not in path:
            raise ValueError(
                f"--set {item!r}: expected METHOD.lr=X, METHOD.params.KEY=X or unlearn.KEY=X"
            )
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        head, *rest = path.split(".")
        node = out if head == "unlearn" else out["methods"].setdefault(head, {"params": {}})
        for key in rest[:-1]:
            node = node.setdefault(key, {})
        node[rest[-1]] = value
    return out


def unlearn_argv(
    run_dir: Path, config: dict, unlearn: dict, method: str, budget: float, seed: int, out_dir: Path
) -> list[str]:
    """The ``salmu unlearn`` command line the workflow's rule would give this job."""
    settings = unlearn["methods"][method]
    argv = [
        "--method", method, "--budget", f"{budget:g}", "--seed", str(seed),
        "--model-dir", config["train"]["model_dir"],
        "--checkpoint", str(run_dir / "models/compromised/checkpoint.pt"),
        "--forget-shards", str(run_dir / "shards/forget"),
        "--retain-shards", str(run_dir / "shards/retain"),
        "--out", str(out_dir / "checkpoint.pt"),
        "--report", str(out_dir / "unlearn.json"),
        *UnlearnSettings.from_mapping(unlearn).to_argv(),
    ]  # fmt: skip
    if settings.get("lr") is not None:  # none for a method without optimizer steps
        argv += ["--lr", str(settings["lr"])]
    for key, value in settings.get("params", {}).items():
        argv += ["--param", f"{key}={json.dumps(value)}"]
    if "import_path" in settings:
        argv += ["--import-path", settings["import_path"]]
    return argv


def evaluate_model(
    run_dir: Path,
    config: dict,
    checkpoint: str,
    state: str,
    out: Path,
    cache_dir: str | None = None,
) -> str:
    cfg = EvalConfig(
        benchmark=str(run_dir / "benchmark"),
        model_dir=config["train"]["model_dir"],
        out=str(out),
        checkpoint=checkpoint,
        genknow=str(run_dir / "data/genknow.parquet"),
        state=state,
        cache_dir=cache_dir,
        **asdict(EvaluateSettings.from_mapping(config["evaluate"])),
    )
    write_json(evaluate(cfg), out)
    return str(out)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--run-dir", required=True, help="a run with trained models and shards (results/<run>)")
    add("--config", nargs="+", required=True, help="config files, merged in order")
    add("--methods", nargs="*", default=None, help="default: the config's selection")
    add("--budget", type=float, default=5.0)
    add("--seeds", type=int, nargs="+", default=[0])
    add("--set", action="append", default=[], dest="overrides", help="METHOD.lr=X etc.")
    add("--work-dir", default=None, help="checkpoints and JSONs (default: RUN_DIR/calibrate)")
    add("--seed-agreement", type=float, default=seeds.DEFAULT_AGREEMENT)
    add(
        "--lr-grid",
        type=float,
        nargs="+",
        default=None,
        help="per method, the smallest of these lrs whose first seed closes the diagnosis's "
        "min_gap_closed of the RetFail gap; if none does, the largest without catastrophic "
        "damage (if every one damages, the smallest); methods without optimizer steps run once",
    )


def seed_outcome(evals: list[str], candidate: str) -> tuple[float, str]:
    """The candidate's share of the Compromised -> Clean RetFail MRR gap closed, and its label."""
    table = build_table([*evals[:2], candidate])
    clean, compromised, row = table.iter_rows(named=True)
    closed = diagnose.gap_closed(
        row["RetFail_MRR"],
        clean["RetFail_MRR"],
        compromised["RetFail_MRR"],
        diagnose.Thresholds().min_reference_gap,
    )
    return closed, row["diagnosis"]


def pick_lr(grid: list[dict]) -> float:
    """The tuning rule over one method's grid (ascending lr; each entry: lr, gap_closed, label):
    the smallest lr that forgets; if none does, the largest one that does no catastrophic damage
    (the most forgetting the method gives while the model survives); if every one damages, the
    smallest."""
    forgets = [g for g in grid if g["gap_closed"] >= diagnose.Thresholds().min_gap_closed]
    if forgets:
        return forgets[0]["lr"]
    survives = [g for g in grid if diagnose.CATASTROPHIC not in g["label"]]
    return (survives[-1] if survives else grid[0])["lr"]


def run(args: argparse.Namespace) -> None:
    import torch

    from salmu.unlearn.run import configure_parser as unlearn_parser
    from salmu.unlearn.run import unlearn

    config = merged_config(args.config)
    unlearn_cfg = apply_overrides(config["unlearn"], args.overrides)
    methods = args.methods or selected_methods(unlearn_cfg)
    run_dir = Path(args.run_dir)
    work = Path(args.work_dir or run_dir / "calibrate")
    torch.set_num_threads(config["unlearn"]["threads"])
    evals = [
        evaluate_model(
            run_dir,
            config,
            str(run_dir / f"models/{s}/checkpoint.pt"),
            s,
            work / s / "evaluation.json",
            str(run_dir / f"eval/{s}/cache"),
        )
        for s in ("clean", "compromised")
    ]
    parser = argparse.ArgumentParser()
    unlearn_parser(parser)

    def run_one(method: str, seed: int, settings: dict, out_dir: Path) -> str:
        state = f"unlearned/{method}/x{args.budget:g}/seed{seed}"
        out_dir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        argv = unlearn_argv(run_dir, config, settings, method, args.budget, seed, out_dir)
        write_json(unlearn(parser.parse_args(argv)), out_dir / "unlearn.json")
        path = evaluate_model(
            run_dir, config, str(out_dir / "checkpoint.pt"), state, out_dir / "evaluation.json"
        )
        lr = settings["methods"][method].get("lr")
        print(f"calibrate: {state} lr {lr} in {time.perf_counter() - start:.1f} s", flush=True)
        return path

    chosen, grid_report = {}, []
    for method in methods:
        settings = json.loads(json.dumps(unlearn_cfg))
        firsts, grid = {}, []
        for lr in sorted(args.lr_grid or []):
            settings["methods"][method]["lr"] = lr
            out_dir = work / "grid" / f"lr{lr:g}" / method
            firsts[lr] = run_one(method, args.seeds[0], settings, out_dir)
            closed, label = seed_outcome(evals, firsts[lr])
            grid.append({"method": method, "lr": lr, "gap_closed": closed, "label": label})
            steps = json.loads((out_dir / "unlearn.json").read_text())["optimizer_steps"]
            if closed >= diagnose.Thresholds().min_gap_closed or steps == 0:
                break  # forgets; or takes no optimizer step, so the lr does not matter
        grid_report.extend(grid)
        if grid:
            settings["methods"][method]["lr"] = pick_lr(grid)
        chosen[method] = settings["methods"][method].get("lr")
        for index, seed in enumerate(args.seeds):
            if index == 0 and chosen[method] in firsts:
                evals.append(firsts[chosen[method]])
                continue
            out_dir = work / f"unlearned/{method}/x{args.budget:g}/seed{seed}"
            evals.append(run_one(method, seed, settings, out_dir))
    table = build_table(evals)
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=250):
        print(
            table.select(
                "state",
                "RetFail_MRR",
                "RetFail_R@1",
                "GenKnow",
                "InterIdSim",
                "IntraIdSim",
                "VisIdInt",
                "diagnosis",
            )
        )
    classes = json.loads(Path(evals[0]).read_text())["meta"]["genknow_classes"]
    found = fidelity.report(table, args.budget, classes, agreement=args.seed_agreement)
    markdown = fidelity.to_markdown(found)
    if grid_report:
        markdown += (
            f"\n| method | lr tried | RetFail gap closed (seed {args.seeds[0]}) | diagnosis |\n"
            "|---|---|---|---|\n"
        )
        markdown += "".join(
            f"| {g['method']} | {g['lr']:g} | {g['gap_closed']:.3f} | {g['label']} |\n"
            for g in grid_report
        )
    markdown += "\nlr per method: " + ", ".join(f"{m} {lr}" for m, lr in chosen.items()) + "\n"
    (work / "fidelity.md").write_text(markdown)
    write_json(
        {"overrides": args.overrides, "lr": chosen, "grid": grid_report, **found},
        work / "fidelity.json",
    )
    print(markdown)
