"""``salmu export``: a run's models and data in the form the authors released theirs.

``results/<run>/release/`` gets:

- ``models/<name>/`` per model (``clean``, ``compromised``, and with ``--unlearned`` every unlearned
  state as ``<method>-x<budget>-seed<seed>``): a model repository in open_clip's hub layout
  (``open_clip_config.json`` + ``open_clip_model.safetensors``) and a model card ``README.md`` with
  the architecture, the training data, the seed, this run's metrics and the provenance record
  that vouches for the checkpoint. ``hf-hub:<you>/<repo>`` loads it once uploaded;
- ``salmubench/``: the benchmark, as ``results/<run>/benchmark`` (it is already in the released
  layout), with its dataset card;
- ``salmu-training/``: the training injection in the layout of ``salmu-512-redistributed``:
  ``data/sensitive-00000-of-00001.parquet`` (the forget and both holdout splits: every sensitive
  pair Compromised trained on), ``data/retain_synth-00000-of-00001.parquet`` and
  ``sensitive_set_captions_metadata.json``, with a dataset card whose ``dataset_info.splits`` give
  ``num_examples`` and ``num_bytes``.

The README says how to publish a folder (``hf upload``); nothing here talks to a hub.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import yaml

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


def model_config_file(state: str, run_dir: Path, config: dict) -> Path:
    """An imported reference model's own config (unlearned states have Compromised's), else the
    run's model folder's."""
    base = "clean" if state == "clean" else "compromised"
    imported = run_dir / "models" / base / "open_clip_config.json"
    return imported if imported.is_file() else Path(config["model_dir"], "open_clip_config.json")


def model_card(state: str, run_dir: Path, config: dict, checkpoint: Path) -> str:
    """Architecture, training data, seed, this run's metrics and the checkpoint's provenance."""
    model_cfg = read_json(model_config_file(state, run_dir, config))["model_cfg"]
    vision, text = model_cfg.get("vision_cfg", {}), model_cfg.get("text_cfg", {})
    record = record_path(checkpoint)
    provenance = (
        f"`{record.relative_to(run_dir)}` (sha256 `{file_sha256(record)}`)"
        if record.is_file()
        else "none recorded (the checkpoint was not written by a recorded job)"
    )
    data = {
        "clean": "retain data only (this run's retain shards); never saw a sensitive pair",
        "compromised": "retain data plus every sensitive pair (forget and both holdout splits)",
    }.get(state, "Compromised, then unlearned on the forget split (see the state name)")
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
        f"# SALMUBench {state} model (regenerated, run {config['run']})",
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
        f"- Seed: {config['seed']}",
        f"- Provenance record of the checkpoint: {provenance}",
        "",
        "## Metrics (this run's evaluation, official layout)",
        "",
        *metric_lines(run_dir / "eval" / state / "evaluation.json"),
        "",
    ]
    return "\n".join(lines)


def export_model(state: str, run_dir: Path, out_dir: Path, config: dict) -> Path:
    checkpoint = run_dir / "models" / state / "checkpoint.pt"
    target = out_dir / "models" / repo_name(state)
    write_safetensors(checkpoint, target / "open_clip_model.safetensors")
    shutil.copyfile(model_config_file(state, run_dir, config), target / "open_clip_config.json")
    (target / "README.md").write_text(model_card(state, run_dir, config, checkpoint))
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


def export_run(run_dir: Path, out_dir: Path, states: list[str], config: dict) -> list[Path]:
    written = [export_model(state, run_dir, out_dir, config) for state in states]
    bench = out_dir / "salmubench"
    if bench.exists():
        shutil.rmtree(bench)
    shutil.copytree(run_dir / "benchmark", bench)
    export_training_set(run_dir / "benchmark", out_dir / "salmu-training", config["run"])
    return [*written, bench, out_dir / "salmu-training"]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", required=True, help="results/<run>")
    parser.add_argument("--states", nargs="+", required=True, help="clean compromised ...")
    parser.add_argument("--model-dir", required=True, help="the models' open_clip config folder")
    parser.add_argument("--seed", type=int, required=True, help="the run's seed (config seed)")
    parser.add_argument("--out-dir", required=True, help="results/<run>/release")


def run(args: argparse.Namespace) -> None:
    run_dir = Path(args.run_dir)
    config = {"run": run_dir.name, "seed": args.seed, "model_dir": args.model_dir}
    for path in export_run(run_dir, Path(args.out_dir), args.states, config):
        print(f"wrote {path}")
    print(json.dumps({"states": args.states}))
