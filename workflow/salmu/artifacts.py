"""Released-artifacts mode: where the benchmark and the reference models come from (``artifacts``).

Every key is null by default: the run makes its own benchmark, Clean and Compromised. Set, they
name what to use instead, in any of these forms:

- ``artifacts.benchmark``: a folder in the released layout, or ``hf-hub:org/name[@revision]`` of a
  dataset repository already in the local Hugging Face cache;
- ``artifacts.<clean|compromised>.model``: an open_clip model folder (``open_clip_config.json``
  and, without a checkpoint, its weights), ``hf-hub:org/name[@revision]`` in open_clip's hub
  layout, or an architecture name such as ``ViT-B-16``;
- ``artifacts.<clean|compromised>.checkpoint``: a weights file, or
  ``hf-hub:org/name[@revision]/<file>`` (the released model repositories hold only their weights
  file, so the release is ``model: ViT-B-16`` plus its file on the hub);
- ``artifacts.retain_shards``: shard folders this pipeline wrote (``salmu shards`` or
  ``salmu commonpool``, e.g. a CommonPool subset) that unlearning may read as retain data besides
  ``retain_synth``;
- ``artifacts.genknow``: a GenKnow parquet to score utility on (else ``evaluate.imagenet_path``,
  else GenKnow is -1, as in the official evaluator without ImageNet).

Nothing is downloaded: with ``HF_HUB_OFFLINE=1`` (the Makefile sets it) a hub id resolves from the
local cache only. Every check here runs when the workflow is parsed, before any job, and names
the config key that is wrong and how to fix it. No torch import.
"""

from __future__ import annotations

import re
from pathlib import Path

from salmu.released_layout import (
    GENERIC_CAPTIONS_JSON,
    REQUIRED_JSONS,
    SPLITS,
    shard_paths,
)

HUB_PREFIX = "hf-hub:"
REFERENCE_ROLES = ("clean", "compromised")
_HUB_REPO = re.compile(r"^(?P<repo>[\w.-]+/[\w.-]+)(@(?P<revision>[\w.-]+))?(/(?P<file>.+))?$")


def released_mode(config: dict) -> bool:
    """True when the benchmark comes from outside: nothing of the dataset is generated."""
    return bool(config["artifacts"]["benchmark"])


def imported_roles(config: dict) -> list[str]:
    """The reference models taken from outside instead of trained."""
    return [role for role in REFERENCE_ROLES if config["artifacts"][role]]


def _fetch_hint(repo: str, repo_type: str, revision: str | None = None) -> str:
    kind = " --repo-type dataset" if repo_type == "dataset" else ""
    pinned = f" --revision {revision}" if revision else ""
    return (
        f"pre-fetch it where there is internet (hf download {repo}{kind}{pinned}) and copy the "
        "cache here, or point HF_HUB_CACHE at a cache that has it, or give a local folder instead"
    )


RESULTS = Path("results")


def check_not_in_results(path: str | Path, key: str) -> None:
    """Local artifacts must not lie under results/: every path there is some run's output, and
    Snakemake would plan to rebuild it (another run's benchmark, shards or download)."""
    resolved = Path(path).resolve()
    if resolved.is_relative_to(RESULTS.resolve()):
        raise ValueError(
            f"config key {key}: {path} lies under results/, which this workflow writes; "
            "Snakemake would rebuild it as another run's output. Copy it out of results/ first"
        )


def parse_hub(spec: str, key: str) -> dict:
    """``hf-hub:org/name[@revision][/file]`` -> repo, revision, file (each may be None)."""
    match = _HUB_REPO.match(spec[len(HUB_PREFIX) :])
    if not match:
        raise ValueError(f"config key {key}: {spec!r} is not hf-hub:org/name[@revision][/file]")
    return match.groupdict()


def hub_snapshot(spec: str, key: str, repo_type: str) -> Path:
    """The local snapshot folder of a hub repository (cache only, nothing downloaded)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    hub = parse_hub(spec, key)
    try:
        folder = snapshot_download(
            hub["repo"], repo_type=repo_type, revision=hub["revision"], local_files_only=True
        )
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        raise ValueError(
            f"config key {key}: {spec} is not in the local Hugging Face cache; "
            + _fetch_hint(hub["repo"], repo_type, hub["revision"])
        ) from None
    return Path(folder)


def hub_file(spec: str, key: str) -> Path:
    """A file of a model repository in the local cache: ``hf-hub:org/name[@rev]/file``."""
    from huggingface_hub import try_to_load_from_cache

    hub = parse_hub(spec, key)
    if not hub["file"]:
        raise ValueError(
            f"config key {key}: {spec} names no file; write hf-hub:org/name[@revision]/<file>, "
            "e.g. .../open_clip_model.safetensors"
        )
    found = try_to_load_from_cache(hub["repo"], hub["file"], revision=hub["revision"])
    if not isinstance(found, str):
        raise ValueError(
            f"config key {key}: {hub['file']} of {hub['repo']} is not in the local Hugging Face "
            "cache; " + _fetch_hint(hub["repo"], "model", hub["revision"])
        )
    return Path(found)


def benchmark_folder(config: dict) -> Path:
    spec = str(config["artifacts"]["benchmark"])
    key = "artifacts.benchmark"
    if spec.startswith(HUB_PREFIX):
        return hub_snapshot(spec, key, "dataset")
    folder = Path(spec)
    if not folder.is_dir():
        raise ValueError(f"config key {key}: {spec} is not a folder (expected the released layout)")
    check_not_in_results(folder, key)
    return folder


def checkpoint_file(config: dict, role: str) -> Path | None:
    """The weights file of an outside reference model (None: the model spec holds its weights)."""
    spec = config["artifacts"][role].get("checkpoint")
    key = f"artifacts.{role}.checkpoint"
    if not spec:
        return None
    if str(spec).startswith(HUB_PREFIX):
        return hub_file(str(spec), key)
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"config key {key}: {spec} is not a file (expected a weights file)")
    check_not_in_results(path, key)
    return path


def check_benchmark(folder: Path, needs_generic_captions: bool) -> None:
    for split in SPLITS:
        try:
            shard_paths(folder, split)
        except FileNotFoundError:
            raise ValueError(
                f"config key artifacts.benchmark: {folder} has no data/{split}-*.parquet "
                "(the released layout has the splits " + ", ".join(SPLITS) + ")"
            ) from None
    for name in REQUIRED_JSONS:
        if not (folder / name).is_file():
            raise ValueError(
                f"config key artifacts.benchmark: {folder} has no {name}; the metrics need it"
            )
    if needs_generic_captions and not (folder / GENERIC_CAPTIONS_JSON).is_file():
        raise ValueError(
            f"config key artifacts.benchmark: {folder} has no {GENERIC_CAPTIONS_JSON}, which the "
            "generic_captions method trains on; add it or leave the method out (unlearn.only)"
        )


def check_model(config: dict, role: str) -> None:
    settings = config["artifacts"][role]
    key = f"artifacts.{role}.model"
    if not isinstance(settings, dict) or not settings.get("model"):
        raise ValueError(
            f"config key {key}: not set; expected an open_clip model folder, "
            "hf-hub:org/name or an architecture name such as ViT-B-16"
        )
    spec = str(settings["model"])
    checkpoint = checkpoint_file(config, role)
    if spec.startswith(HUB_PREFIX):
        hub = parse_hub(spec, key)
        if hub["file"]:
            raise ValueError(f"config key {key}: {spec}: a model id names no file")
        hub_file(
            f"{HUB_PREFIX}{hub['repo']}{'@' + hub['revision'] if hub['revision'] else ''}"
            "/open_clip_config.json",
            key,
        )
    elif Path(spec).exists():
        check_not_in_results(spec, key)
        if not (Path(spec) / "open_clip_config.json").is_file():
            raise ValueError(f"config key {key}: {spec} has no open_clip_config.json")
    elif "/" in spec:
        raise ValueError(
            f"config key {key}: {spec} is no folder (for a hub repository write hf-hub:{spec})"
        )
    elif checkpoint is None:
        raise ValueError(
            f"config key artifacts.{role}.checkpoint: not set, but the architecture name "
            f"{spec} holds no weights; name the weights file"
        )


def check_retain_shards(config: dict) -> None:
    """Retain folders must be shard folders of this pipeline (their manifest lists every sample's
    key and image hash, which the holdout leak audit compares) and hold samples."""
    from salmu.shards import MANIFEST, read_manifest

    for folder in map(Path, config["artifacts"]["retain_shards"]):
        key = "config key artifacts.retain_shards"
        check_not_in_results(folder, "artifacts.retain_shards")
        if not (folder / MANIFEST).is_file():
            raise ValueError(
                f"{key}: {folder} has no {MANIFEST}; expected a shard folder written by "
                "`salmu shards` or `salmu commonpool` (e.g. results/<run>/shards/commonpool)"
            )
        if not read_manifest(folder)["samples"]:
            raise ValueError(f"{key}: {folder} holds no samples ({folder / MANIFEST} lists none)")


def check_artifacts(config: dict, methods: list[str]) -> None:
    """Every released-mode key, before any job (see the module docstring)."""
    artifacts = config["artifacts"]
    if released_mode(config):
        check_benchmark(benchmark_folder(config), "generic_captions" in methods)
        missing = [role for role in REFERENCE_ROLES if not artifacts[role]]
        if missing:
            raise ValueError(
                f"config key artifacts.{missing[0]}: not set, but artifacts.benchmark is: with an "
                "outside benchmark both reference models come from outside too (this run trains "
                "nothing)"
            )
    else:
        for key in ("retain_shards", "genknow"):
            if artifacts[key]:
                raise ValueError(
                    f"config key artifacts.{key}: only read in released-artifacts mode "
                    "(set artifacts.benchmark)"
                )
    for role in imported_roles(config):
        check_model(config, role)
    check_retain_shards(config)
    genknow = artifacts["genknow"]
    if genknow and not Path(genknow).is_file():
        raise ValueError(f"config key artifacts.genknow: {genknow} is not a file")
    if genknow:
        check_not_in_results(genknow, "artifacts.genknow")
