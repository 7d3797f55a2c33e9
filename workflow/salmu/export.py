"""``salmu export``: a run's models and data in the form the authors released theirs.

``results/<run>/release/`` gets:

- ``models/<name>/`` per model (``clean``, ``compromised``, and with ``export.unlearned`` every
  unlearned state as ``<method>-x<budget>-seed<seed>``; an imported Clean or Compromised is the
  authors', not exported, and the cards of models unlearned from it say where it came from): a model repository in open_clip's hub layout
  (``open_clip_config.json`` + ``open_clip_model.safetensors``) and a model card ``README.md`` with
  the architecture, the training data, the seed, this run's metrics and the provenance record
  that vouches for the checkpoint. ``hf-hub:<you>/<repo>`` loads it once uploaded;
- ``salmubench/``: the benchmark, as ``results/<run>/benchmark`` (it is already in the released
  layout), with its dataset card (not for an outside benchmark: it is not this run's);
- ``salmu-training/``: the training injection in the layout of ``salmu-512-redistributed``:
  ``data/sensitive-00000-of-00001.parquet`` (the forget and both holdout splits: every sensitive
  pair Compromised trained on), ``data/retain_synth-00000-of-00001.parquet`` and
  ``sensitive_set_captions_metadata.json``, with a dataset card whose ``dataset_info.splits`` give
  ``num_examples`` and ``num_bytes``.

The README says how to publish a folder (``hf upload``); nothing here talks to a hub.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import yaml

from salmu.import_model import add_sources_argument, read_sources
from salmu.io import ensure_parent, join_parquet, read_json
from salmu.provenance import file_sha256, record_path
from salmu.released_layout import (
    CAPTIONS_JSON,
    SENSITIVE_SPLITS,
    shard_paths,
    split_file,
    split_sizes,
)

MODEL_FILES = ("open_clip_config.json", "open_clip_model.safetensors", "README.md")
TRAINING_SPLITS = ("sensitive", "retain_synth")


def repo_name(state: str) -> str:
    """clean -> clean; unlearned/delete/x5/seed0 -> delete-x5-seed0."""
    return state.removeprefix("unlearned/").replace("/", "-")


def write_safetensors(checkpoint: Path, target: Path) -> None:
    from safetensors.torch import save_file

    from salmu.clip_model import read_state_dict

    state = {k: v.contiguous() for k, v in read_state_dict(checkpoint).items()}
    tmp = ensure_parent(target).with_name(target.name + ".tmp")
    save_file(state, str(tmp), metadata={"format": "pt"})
    tmp.replace(target)


def metric_lines(evaluation: Path | None) -> list[str]:
    if evaluation is None or not evaluation.is_file():
        return ["No evaluation of this model was exported."]
    from salmu.evaluate.layout import flatten

    flat = flatten(read_json(evaluation))
    lines = ["| metric | value |", "|---|---|"]
    lines += [f"| {name} | {value:.6g} |" for name, value in flat.items()]
    return lines


def model_card(state: str, run_dir: Path, info: dict, checkpoint: Path) -> str:
    """Architecture, training data, seed, this run's metrics and the checkpoint's provenance."""
    model_cfg = read_json(info["config"])["model_cfg"]
    vision, text = model_cfg.get("vision_cfg", {}), model_cfg.get("text_cfg", {})
    record = record_path(checkpoint)
    provenance = (
        f"`{record.relative_to(run_dir)}` (sha256 `{file_sha256(record)}`)"
        if record.is_file()
        else "none recorded (the checkpoint was not written by a recorded job)"
    )
    start = info.get("compromised_source") or "this run's Compromised"
    data = {
        "clean": "retain data only (this run's retain shards); never saw a sensitive pair",
        "compromised": "retain data plus every sensitive pair (forget and both holdout splits)",
    }.get(state, f"{start}, then unlearned on the forget split (see the state name)")
    front = {
        "license": "cc-by-4.0",
        "library_name": "open_clip",
        "tags": ["clip", "machine-unlearning", "salmubench"],
    }
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).strip(),
        "---",
        "",
        f"# SALMUBench {state} model (run {info['run']})",
        "",
        "A CLIP model of the SALMUBench reproduction pipeline, in open_clip's hub layout: "
        "`open_clip.create_model_and_transforms('hf-hub:<this repo>')` loads it.",
        "",
        f"- Architecture: embed_dim {model_cfg.get('embed_dim')}, vision "
        f"{vision.get('layers')} layers x width {vision.get('width')}, patch "
        f"{vision.get('patch_size')}, image size {vision.get('image_size')}; text "
        f"{text.get('layers')} layers x width {text.get('width')}, context "
        f"{text.get('context_length')}",
        f"- Training data: {data}",
        f"- Seed: {info['seed']}",
        f"- Provenance record of the checkpoint: {provenance}",
        "",
        "## Metrics (this run's evaluation, official layout)",
        "",
        *metric_lines(run_dir / "eval" / state / "evaluation.json"),
        "",
    ]
    return "\n".join(lines)


def export_model(state: str, run_dir: Path, out_dir: Path, info: dict) -> Path:
    checkpoint = run_dir / "models" / state / "checkpoint.pt"
    target = out_dir / "models" / repo_name(state)
    write_safetensors(checkpoint, target / "open_clip_model.safetensors")
    shutil.copyfile(info["config"], target / "open_clip_config.json")
    (target / "README.md").write_text(model_card(state, run_dir, info, checkpoint))
    return target


def training_card(out: Path, run: str) -> str:
    splits = {name: split_sizes(shard_paths(out, name)) for name in TRAINING_SPLITS}
    front = {
        "license": "cc-by-4.0",
        "pretty_name": f"SALMU training injection (regenerated, run {run})",
        "configs": [
            {
                "config_name": "default",
                "data_files": [
                    {"split": name, "path": f"data/{name}-*.parquet"} for name in TRAINING_SPLITS
                ],
            }
        ],
        "dataset_info": {
            "features": [
                {"name": "image", "dtype": "image"},
                {"name": "text", "dtype": "string"},
                {"name": "identity_id", "dtype": "string"},
                {"name": "file_name", "dtype": "string"},
            ],
            "splits": [{"name": name, **sizes} for name, sizes in splits.items()],
        },
    }
    body = [
        "---",
        yaml.safe_dump(front, sort_keys=False).strip(),
        "---",
        "",
        "# SALMU training injection (regenerated)",
        "",
        "The sensitive pairs the Compromised model trained on (`sensitive`: forget plus both "
        "holdout splits of the benchmark) and `retain_synth`, in the layout of "
        "`cvc-mmu/salmu-512-redistributed`. Every person and attribute is fictitious.",
        "",
    ]
    return "\n".join(body)


def export_training_set(benchmark: Path, out: Path, run: str) -> None:
    sensitive = [p for split in SENSITIVE_SPLITS for p in shard_paths(benchmark, split)]
    join_parquet(sensitive, split_file(out, "sensitive"))
    join_parquet(shard_paths(benchmark, "retain_synth"), split_file(out, "retain_synth"))
    shutil.copyfile(benchmark / CAPTIONS_JSON, out / CAPTIONS_JSON)
    (out / "README.md").write_text(training_card(out, run))


def export_run(
    run_dir: Path, out_dir: Path, states: dict[str, Path], info: dict, datasets: bool
) -> list[Path]:
    """``states``: state -> the open_clip config its checkpoint loads into."""
    if out_dir.exists():
        shutil.rmtree(out_dir)  # a state or dataset left out this time must not linger
    written = [
        export_model(state, run_dir, out_dir, {**info, "config": config})
        for state, config in states.items()
    ]
    if datasets:
        shutil.copytree(run_dir / "benchmark", out_dir / "salmubench")
        export_training_set(run_dir / "benchmark", out_dir / "salmu-training", info["run"])
        written += [out_dir / "salmubench", out_dir / "salmu-training"]
    return written


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", required=True, help="results/<run>")
    parser.add_argument("--states", nargs="*", default=[], help="clean compromised ...")
    parser.add_argument(
        "--configs", nargs="*", default=[], help="open_clip_config.json of each state, in order"
    )
    add_sources_argument(parser)
    parser.add_argument(
        "--datasets",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also export the benchmark and the training set (not for an outside benchmark)",
    )
    parser.add_argument("--seed", type=int, required=True, help="the run's seed (config seed)")
    parser.add_argument("--out-dir", required=True, help="results/<run>/release")


def run(args: argparse.Namespace) -> None:
    if len(args.configs) != len(args.states):
        raise ValueError(
            f"--configs: {len(args.configs)} files for {len(args.states)} --states; one per state"
        )
    if not args.states and not args.datasets:
        raise ValueError(
            "nothing to export: the reference models are imported (not this run's to publish) "
            "and export.unlearned is false; set export.unlearned: true"
        )
    run_dir = Path(args.run_dir)
    info = {"run": run_dir.name, "seed": args.seed}
    compromised = read_sources(args.sources).get("compromised")
    if compromised:
        info["compromised_source"] = (
            f"Compromised imported from outside ({compromised['description']})"
        )
    states = dict(zip(args.states, map(Path, args.configs), strict=True))
    for path in export_run(run_dir, Path(args.out_dir), states, info, args.datasets):
        print(f"wrote {path}")
