"""``salmu import-model``: an outside Clean or Compromised becomes this run's reference model.

Released-artifacts mode (``artifacts.clean`` / ``artifacts.compromised``) loads the model from any
form ``salmu.clip_model`` reads (open_clip folder, ``hf-hub:`` id, architecture name plus weights
file), checks that the weights fit the architecture, and writes into ``results/<run>/models/<role>/``:

- ``checkpoint.pt``: the weights in the layout every later stage reads (open_clip_train's), so
  unlearning and evaluation run on it exactly as on a model this run trained;
- ``open_clip_config.json``: the model's own config file, byte for byte (for an architecture name,
  open_clip's built-in config and default preprocessing, as ``create_model_and_transforms`` uses);
- ``source.json``: where it came from (the spec, the hub repository and revision when the files
  sit in a Hugging Face cache, the weights file and its sha256) and whether those weights are an
  authors' release (``salmu.releases``). The results table and the paper comparison read it.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import asdict
from pathlib import Path

from salmu.artifacts import REFERENCE_ROLES
from salmu.io import ensure_parent, read_json, write_json
from salmu.provenance import file_sha256
from salmu.releases import describe, released_model

SOURCE_JSON = "source.json"


def hub_origin(path: Path | None) -> dict:
    """Repository and revision of a file inside a Hugging Face cache (``models--org--name/
    snapshots/<revision>/...``); empty for a file anywhere else."""
    if path is None:
        return {}
    parts = Path(path).parts
    for i, part in enumerate(parts[:-2]):
        if part.startswith(("models--", "datasets--")) and parts[i + 1] == "snapshots":
            return {
                "hub_id": part.split("--", 1)[1].replace("--", "/"),
                "revision": parts[i + 2],
            }
    return {}


def import_model(model: str, checkpoint: str | None, role: str, out_dir: Path) -> dict:
    from salmu.clip_model import architecture_config, load_clip, resolve_clip, save_checkpoint

    source = resolve_clip(model, checkpoint)
    if source.weights is None:
        raise ValueError(
            f"config key artifacts.{role}: {model} holds no weights and no checkpoint is given"
        )
    loaded, _, _ = load_clip(source)  # raises when the weights do not fit the architecture
    save_checkpoint(loaded, ensure_parent(out_dir / "checkpoint.pt"), role)
    config_path = out_dir / "open_clip_config.json"
    if source.config is not None:
        shutil.copyfile(source.config, config_path)
    else:
        payload = architecture_config(source.open_clip_name)
        config_path.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
    sha256 = file_sha256(Path(source.weights))
    release = released_model(sha256)
    record = {
        "role": role,
        "model": model,
        "checkpoint": checkpoint,
        "kind": source.kind,
        "weights_file": str(source.weights),
        "weights_sha256": sha256,
        **{f"weights_{k}": v for k, v in hub_origin(Path(source.weights)).items()},
        **{f"config_{k}": v for k, v in hub_origin(source.config).items()},
        "released": asdict(release) if release else None,
        "description": describe(role, sha256),
    }
    write_json(record, out_dir / SOURCE_JSON)
    return record


def add_sources_argument(parser: argparse.ArgumentParser) -> None:
    """``--sources``: the source.json of each imported reference model, for the stages that name
    them (table, vs-paper, export)."""
    parser.add_argument(
        "--sources",
        nargs="*",
        default=[],
        help="source.json of imported reference models (released-artifacts mode)",
    )


def read_sources(paths: list[str]) -> dict[str, dict]:
    """Role -> the source.json record of each imported reference model."""
    records = [read_json(path) for path in paths]
    return {record["role"]: record for record in records}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="open_clip folder, hf-hub:id or arch name")
    parser.add_argument("--checkpoint", default=None, help="weights file (optional)")
    parser.add_argument("--role", required=True, choices=REFERENCE_ROLES)
    parser.add_argument("--out-dir", required=True, help="results/<run>/models/<role>")


def run(args: argparse.Namespace) -> None:
    record = import_model(args.model, args.checkpoint, args.role, Path(args.out_dir))
    print(record["description"])
