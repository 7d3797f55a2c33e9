"""Finding the ``diffusers`` backend's weights: a local folder or a hub id in the local cache.

Nothing here imports torch or diffusers, and nothing downloads while the hub is offline: a missing
or incomplete model or IP-Adapter fails before any weights load, with an error naming the flag and
the config key to fix (``source``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from salmu.io import read_json
from salmu.sections.faces import FaceDiffusersSettings


def source(option: str) -> str:
    """``--flag (config key faces.diffusers.option)`` for error messages."""
    flag = FaceDiffusersSettings.flag(option)
    return f"{flag} (config key {FaceDiffusersSettings.section}.{option})"


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class Weights:
    """Where to load from: a local folder, or a hub id (``local_only``: from the cache only)."""

    ref: str
    folder: Path | None  # local folder or cached snapshot; None when it will be downloaded
    local_only: bool


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.is_offline_mode())


def _cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _cached_file(repo_id: str, filename: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename)
    return Path(found) if isinstance(found, str) else None


def locate(ref: str | None, option: str, required: Sequence[str], hint: str) -> Weights:
    """Check that ``ref`` (a folder or hub id) holds ``required`` files, without downloading.

    Raises ``ValueError`` naming the flag and config key of ``option`` and what to put there.
    """
    where = source(option)
    if ref is None or not str(ref).strip():
        raise ValueError(f"{where} is not set; {hint}")
    ref = str(ref).strip()
    path = Path(ref).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"{where}: {ref!r} is a file, not a folder; {hint}")
        missing = [name for name in required if not (path / name).is_file()]
        if missing:
            raise ValueError(f"{where}: folder {ref!r} has no {', '.join(missing)}; {hint}")
        return Weights(str(path), path, True)
    if ref.startswith(("/", ".", "~")) or not _HUB_ID.match(ref):
        raise ValueError(f"{where}: no such folder {ref!r}; {hint}")
    try:
        cached = [_cached_file(ref, name) for name in required]
    except Exception as err:  # invalid repo id etc.: huggingface_hub's own validation
        raise ValueError(f"{where}: {ref!r} is not a valid hub id ({err}); {hint}") from None
    if all(cached):
        # The snapshot root: up from the first file by its depth inside the repository.
        folder = cached[0].parents[len(Path(required[0]).parts) - 1]
        return Weights(ref, folder, True)
    missing = [name for name, hit in zip(required, cached) if not hit]
    if _hub_offline():
        raise ValueError(
            f"{where}: {ref!r} is not a local folder, and the local Hugging Face cache "
            f"({_cache_dir()}) lacks {', '.join(missing)} while the hub is offline "
            f"(HF_HUB_OFFLINE=1); {hint}"
        )
    from huggingface_hub import hf_hub_download

    try:
        hf_hub_download(ref, required[0])
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ValueError(
            f"{where}: {ref!r} is not a local folder, not in the local Hugging Face cache "
            f"({_cache_dir()}) and not reachable on the hub ({type(err).__name__}: {first}); {hint}"
        ) from None
    return Weights(ref, None, False)


def _pipeline_components(folder: Path) -> list[str]:
    """Component folders ``model_index.json`` names (the safety checker is never loaded)."""
    try:
        index = read_json(folder / "model_index.json")
    except (OSError, json.JSONDecodeError):
        return []
    return [
        name
        for name, value in index.items()
        if not name.startswith("_")
        and name != "safety_checker"
        and isinstance(value, list)
        and value
        and value[0] is not None
    ]


def locate_model(model: str | None) -> Weights:
    hint = (
        "put a diffusers text-to-image pipeline there (Stable Diffusion 1.x/2.x/XL): a folder "
        "written by DiffusionPipeline.save_pretrained (it has model_index.json), or a Hugging Face "
        "hub id already in the local cache (fetch it once with `hf download <id>` where there is "
        "internet, or point HF_HUB_CACHE at a cache that has it)"
    )
    weights = locate(model, "model", ["model_index.json"], hint)
    if weights.folder is not None:
        absent = [
            c for c in _pipeline_components(weights.folder) if not (weights.folder / c).is_dir()
        ]
        if absent and weights.ref != str(weights.folder) and not _hub_offline():
            return Weights(weights.ref, None, False)  # partly cached: diffusers fetches the rest
        if absent:
            raise ValueError(
                f"{source('model')}: {model!r} is incomplete: no component folder(s) "
                f"{', '.join(absent)} next to model_index.json; {hint}"
            )
    return weights


def ip_adapter_files(subfolder: str, weight_name: str, image_encoder: str) -> list[str]:
    """Files an IP-Adapter repository must hold, as diffusers' ``load_ip_adapter`` looks them up:
    the weights in ``subfolder``; the image encoder in ``subfolder/image_encoder`` for a bare
    name, or at ``image_encoder`` from the repository root for a path with a ``/``."""
    encoder = Path(subfolder, image_encoder) if "/" not in image_encoder else Path(image_encoder)
    return [Path(subfolder, weight_name).as_posix(), (encoder / "config.json").as_posix()]


def locate_ip_adapter(
    ip_adapter: str | None, subfolder: str, weight_name: str | None, image_encoder: str | None
) -> Weights:
    if not weight_name:
        raise ValueError(
            f"{source('ip_adapter_weight_name')} is not set; put the IP-Adapter weight file name "
            "there (a .safetensors or .bin inside the IP-Adapter repository's subfolder, e.g. an "
            "SD 1.5 face adapter)"
        )
    if not image_encoder:
        raise ValueError(
            f"{source('ip_adapter_image_encoder')} is empty; the anchor is passed to the adapter "
            "as an image, so it needs the adapter's CLIP image encoder folder (e.g. image_encoder)"
        )
    required = ip_adapter_files(subfolder, weight_name, image_encoder)
    hint = (
        f"put an IP-Adapter repository there (a local folder or a hub id in the local cache) "
        f"holding {' and '.join(required)}; the file and folder names come from "
        f"{source('ip_adapter_subfolder')}, {source('ip_adapter_weight_name')} and "
        f"{source('ip_adapter_image_encoder')}"
    )
    return locate(ip_adapter, "ip_adapter", required, hint)
