"""Load and save CLIP models the way open_clip_train does, so every stage shares one format.

``load_clip(model, checkpoint, device)`` takes every form a SALMUBench user has. ``model`` is one of

- an open_clip *model directory* holding ``open_clip_config.json`` (open_clip's ``local-dir:``
  convention; the ``local-dir:`` prefix is accepted). If it also holds weights
  (``open_clip_model.safetensors``, ``open_clip_pytorch_model.{safetensors,bin,pth}``, tried in that
  order) they are loaded when no checkpoint is given, so a downloaded copy of a hub repo works;
  a config-only directory without a checkpoint is a random init (seed torch first);
- ``hf-hub:org/name`` or ``hf-hub:org/name@revision``: open_clip's hub convention (a repo with
  ``open_clip_config.json`` and ``open_clip_model.safetensors`` or ``open_clip_pytorch_model.bin``),
  resolved through ``huggingface_hub`` (the local cache only with ``HF_HUB_OFFLINE=1``). Without a
  checkpoint the repo's weights are loaded; with one, only its config is used;
- an open_clip architecture name (``ViT-B-16``): built-in config, default preprocessing; weights
  from the checkpoint (random init without one).

A path that exists wins over an architecture name. ``checkpoint`` (optional) is a file in any of
these forms, told apart by content, not by suffix:

- an open_clip_train ``epoch_K.pt``: a dict with ``state_dict`` (optimizer etc. ignored);
- a raw state dict saved with ``torch.save`` (``open_clip_pytorch_model.bin``, ``*.pth``);
- ``*.safetensors`` (``open_clip_model.safetensors``).

``torch.load`` always runs with ``weights_only=True``: a file that needs pickle (it stores a Python
object, e.g. an ``argparse.Namespace`` or a whole ``nn.Module``) is refused with a ``ValueError``.
``module.`` (DDP) and ``_orig_mod.`` (torch.compile) key prefixes are removed. Weights must fit the
model exactly (same keys and shapes; no positional-embedding interpolation, unlike open_clip's
``load_checkpoint``), so a checkpoint of another architecture is a one-line ``ValueError``.
Every bad input is a ``ValueError``/``FileNotFoundError`` naming the path or id and what was
expected, never a deep stack trace.

``resolve_clip`` does the cheap part (find config and weights files, no model built); the evaluator
hashes its result for the embedding cache key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from salmu.io import file_sha256, first_line, read_json, write_torch

HUB_PREFIX = "hf-hub:"
LOCAL_DIR_PREFIX = "local-dir:"
CONFIG_NAME = "open_clip_config.json"
# open_clip's names for full-model weights in a model dir (``local-dir:``) / hub repo (``hf-hub:``).
DIR_WEIGHTS = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
)
HUB_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
CHECKPOINT_FORMS = (
    "an open_clip_train epoch_K.pt, a raw state dict (.bin/.pth) or a .safetensors file"
)
MODEL_FORMS = (
    "an open_clip model directory (with open_clip_config.json), an hf-hub:org/name id "
    "or an open_clip architecture name such as ViT-B-16"
)
_PREFIXES = ("module.", "_orig_mod.")


def _quiet_open_clip():
    # open_clip warns "No pretrained weights" for every local-dir model; we load weights ourselves.
    logging.getLogger("open_clip").setLevel(logging.ERROR)
    logging.getLogger("root").setLevel(logging.ERROR)


@dataclass(frozen=True)
class ClipSource:
    """Where a model's config and weights come from (see the module docstring)."""

    spec: str  # the model as given
    kind: str  # "dir" | "hf-hub" | "arch"
    open_clip_name: str  # passed to open_clip.create_model_and_transforms (load_weights=False)
    tokenizer_name: str  # passed to open_clip.get_tokenizer
    config: Path | None  # open_clip_config.json (dir, hf-hub); None for an architecture name
    config_sha256: str  # config file bytes, or canonical built-in config JSON for "arch"
    weights: Path | None  # file whose tensors are loaded; None: random init
    weights_from: str  # "checkpoint" | "model" | "none"

    @property
    def state_name(self) -> str:
        """A short name: checkpoint stem, hub repo name, model dir name, or ``random-init``."""
        if self.weights_from == "checkpoint":
            return self.weights.stem
        if self.weights_from == "model":
            if self.kind == "hf-hub":
                return self.spec[len(HUB_PREFIX) :].split("@")[0].rsplit("/", 1)[-1]
            return self.weights.parent.name
        return "random-init"


# ---------------------------------------------------------------------------------------------
# Resolution: model spec + checkpoint -> ClipSource
# ---------------------------------------------------------------------------------------------


def _check_checkpoint(checkpoint: str | os.PathLike) -> Path:
    path = Path(checkpoint)
    if path.is_dir():
        raise ValueError(f"{path}: is a directory; expected a checkpoint file ({CHECKPOINT_FORMS})")
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint not found (expected {CHECKPOINT_FORMS})")
    return path


def _hub_hint() -> str:
    return (
        "use a local copy instead: a model directory with open_clip_config.json + "
        "open_clip_model.safetensors, or an architecture name (e.g. ViT-B-16) with the weights "
        "file as checkpoint"
    )


def _hub_file(hub_id: str, repo: str, filename: str, revision: str | None) -> Path | None:
    """Path of ``filename`` in the hub repo (local cache first when offline); ``None`` if absent.

    ``None`` means "this file is not there" (not in the repo, or not cached while offline); every
    other hub problem raises a one-line error naming the id.
    """
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return Path(hf_hub_download(repo, filename, revision=revision))
    except EntryNotFoundError:  # includes LocalEntryNotFoundError (offline / hub unreachable)
        return None
    except GatedRepoError:
        raise FileNotFoundError(
            f"{hub_id}: gated repo; accept its terms on huggingface.co and log in "
            "(hf auth login), or " + _hub_hint()
        ) from None
    except RevisionNotFoundError:
        raise FileNotFoundError(f"{hub_id}: revision {revision!r} not found on the Hub") from None
    except RepositoryNotFoundError:
        raise FileNotFoundError(
            f"{hub_id}: no such model repo on the Hub (or it is private: log in); " + _hub_hint()
        ) from None
    except HFValidationError as err:
        raise ValueError(f"{hub_id}: not a valid hf-hub:org/name id ({first_line(err)})") from None
    except (HfHubHTTPError, OSError) as err:
        raise FileNotFoundError(
            f"{hub_id}: cannot fetch {filename} ({first_line(err)}; cache "
            f"{constants.HF_HUB_CACHE}); " + _hub_hint()
        ) from None


def _missing_from_hub(hub_id: str, what: str) -> FileNotFoundError:
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        where = f"not in the local Hugging Face cache {constants.HF_HUB_CACHE} (HF_HUB_OFFLINE=1)"
    else:
        where = f"not in the local cache {constants.HF_HUB_CACHE} nor fetchable from the Hub"
    repo = hub_id[len(HUB_PREFIX) :].split("@")[0]
    return FileNotFoundError(
        f"{hub_id}: {what} {where}; download it while online (hf download {repo}) or " + _hub_hint()
    )


def _resolve_hub(spec: str, checkpoint: Path | None) -> ClipSource:
    ident = spec[len(HUB_PREFIX) :]
    repo, _, revision = ident.partition("@")
    if not repo or repo.count("/") != 1:
        raise ValueError(f"{spec}: expected hf-hub:org/name or hf-hub:org/name@revision")
    config = _hub_file(spec, repo, CONFIG_NAME, revision or None)
    if config is None:
        raise _missing_from_hub(spec, f"{CONFIG_NAME} (open_clip's hub layout) is")
    try:
        text_cfg = read_json(config).get("model_cfg", {}).get("text_cfg", {})
    except (json.JSONDecodeError, AttributeError) as err:
        raise ValueError(f"{spec}: {config} is not a valid open_clip config ({err})") from None
    # An HF tokenizer is fetched by open_clip from the hub id; the rest only needs the config.
    tokenizer = spec.split("@")[0] if text_cfg.get("hf_tokenizer_name") else None
    name = f"{LOCAL_DIR_PREFIX}{config.parent}"
    weights, weights_from = checkpoint, "checkpoint"
    if checkpoint is None:
        weights_from = "model"
        for filename in HUB_WEIGHTS:
            weights = _hub_file(spec, repo, filename, revision or None)
            if weights is not None:
                break
        else:
            raise _missing_from_hub(spec, f"weights ({' or '.join(HUB_WEIGHTS)}) are")
    return ClipSource(
        spec=spec,
        kind="hf-hub",
        open_clip_name=name,
        tokenizer_name=tokenizer or name,
        config=config,
        config_sha256=file_sha256(config),
        weights=weights,
        weights_from=weights_from,
    )


def _resolve_dir(spec: str, path: Path, checkpoint: Path | None) -> ClipSource:
    config = path / CONFIG_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such model directory (expected {MODEL_FORMS})")
    if not path.is_dir():
        raise ValueError(f"{path}: is a file; expected {MODEL_FORMS} (a checkpoint goes second)")
    if not config.is_file():
        raise FileNotFoundError(f"{path}: no {CONFIG_NAME} (expected an open_clip model directory)")
    weights, weights_from = checkpoint, "checkpoint"
    if checkpoint is None:
        found = [path / f for f in DIR_WEIGHTS if (path / f).is_file()]
        weights, weights_from = (found[0], "model") if found else (None, "none")
    name = f"{LOCAL_DIR_PREFIX}{path}"
    return ClipSource(
        spec=spec,
        kind="dir",
        open_clip_name=name,
        tokenizer_name=name,
        config=config,
        config_sha256=file_sha256(config),
        weights=weights,
        weights_from=weights_from,
    )


def architecture_config(name: str) -> dict:
    """An architecture's built-in config with open_clip's default preprocessing (what
    ``create_model_and_transforms(name)`` uses), in the layout of ``open_clip_config.json``."""
    from open_clip import get_model_config
    from open_clip.transform import PreprocessCfg

    return {"model_cfg": get_model_config(name), "preprocess_cfg": asdict(PreprocessCfg())}


def _resolve_arch(spec: str, checkpoint: Path | None) -> ClipSource:
    payload = {"architecture": spec, **architecture_config(spec)}
    canonical = json.dumps(payload, sort_keys=True, default=str).encode()
    return ClipSource(
        spec=spec,
        kind="arch",
        open_clip_name=spec,
        tokenizer_name=spec,
        config=None,
        config_sha256=hashlib.sha256(canonical).hexdigest(),
        weights=checkpoint,
        weights_from="checkpoint" if checkpoint is not None else "none",
    )


def resolve_clip(
    model: str | os.PathLike, checkpoint: str | os.PathLike | None = None
) -> ClipSource:
    """Find the config and the weights file of a model (see the module docstring); builds nothing.

    A ``ClipSource`` passes through unchanged (``checkpoint`` must then be ``None``).
    """
    if isinstance(model, ClipSource):
        if checkpoint is not None:
            raise ValueError("resolve_clip: a resolved ClipSource already names its weights")
        return model
    ckpt = _check_checkpoint(checkpoint) if checkpoint is not None else None
    spec = os.fspath(model)
    if not isinstance(model, os.PathLike):
        if spec.startswith(HUB_PREFIX):
            return _resolve_hub(spec, ckpt)
        if spec.startswith(LOCAL_DIR_PREFIX):
            return _resolve_dir(spec, Path(spec[len(LOCAL_DIR_PREFIX) :]), ckpt)
    path = Path(spec)
    if path.exists():
        return _resolve_dir(spec, path, ckpt)
    if not isinstance(model, os.PathLike) and spec:
        import open_clip

        arch = spec.replace("/", "-")  # open_clip's own cleaning: ViT-B/16 -> ViT-B-16
        if arch in open_clip.list_models():
            return _resolve_arch(arch, ckpt)
    hint = (
        f" (for a Hugging Face repo write {HUB_PREFIX}{spec})"
        if re.fullmatch(r"[\w.-]+/[\w.-]+", spec)
        else ""
    )
    raise FileNotFoundError(f"{spec}: no such model; expected {MODEL_FORMS}{hint}")


# ---------------------------------------------------------------------------------------------
# Weights: any checkpoint form -> state dict -> model
# ---------------------------------------------------------------------------------------------


def _is_safetensors(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return True
    with open(path, "rb") as handle:  # 8-byte little-endian header size, then a JSON header
        head = handle.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint in any supported form, on CPU, prefixes removed (never unpickles)."""
    path = _check_checkpoint(path)
    if _is_safetensors(path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(path, device="cpu")
        except SafetensorError as err:
            raise ValueError(f"{path}: not a valid safetensors file ({first_line(err)})") from None
    else:
        import pickle

        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            text = str(err)
            found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
            if "Weights only load failed" not in text:
                raise ValueError(f"{path}: not a torch checkpoint ({first_line(err)})") from None
            what = f"a Python object ({found.group(1)})" if found else "Python objects"
            raise ValueError(
                f"{path}: checkpoint stores {what} and needs pickle to load; refusing "
                "(torch.load runs with weights_only=True). Re-save its tensors from a trusted "
                "session: torch.save(ckpt['state_dict']) or safetensors.torch.save_file"
            ) from None
        except (RuntimeError, EOFError, KeyError, ValueError, OSError) as err:
            plain = str(err).strip() and not isinstance(err, KeyError)
            reason = first_line(err) if plain else "truncated or not a checkpoint"
            if "TorchScript" in reason:
                reason = "a TorchScript archive, which weights_only loading cannot read"
            raise ValueError(f"{path}: not a readable torch checkpoint ({reason})") from None
    if isinstance(state, dict) and "state_dict" in state:  # open_clip_train epoch_K.pt
        state = state["state_dict"]
    bad = (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
    )
    if bad:
        found = (
            f"a dict with keys {sorted(map(str, state))[:6]}"
            if isinstance(state, dict)
            else type(state).__name__
        )
        raise ValueError(
            f"{path}: expected a state dict (parameter name -> tensor) or a dict with "
            f"'state_dict'; found {found}"
        )
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _adapt(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """open_clip's format conversions from ``load_checkpoint``, minus position-embedding resizing."""
    from open_clip.convert import convert_state_dict
    from open_clip.model import convert_to_custom_text_state_dict

    state = convert_state_dict(model, state)
    if "positional_embedding" in state and not hasattr(model, "positional_embedding"):
        state = convert_to_custom_text_state_dict(state)
    for key in ("logit_scale", "logit_bias"):
        param = getattr(model, key, None)
        if key in state and param is not None and param.ndim != state[key].ndim:
            state[key] = state[key].reshape(param.shape)
    if "logit_bias" not in state and getattr(model, "logit_bias", None) is not None:
        state["logit_bias"] = torch.zeros_like(model.logit_bias)
    state.pop("text.transformer.embeddings.position_ids", None)
    return state


def _fit_message(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> str | None:
    own = model.state_dict()
    shapes = [
        f"{k} {list(state[k].shape)} vs {list(v.shape)}"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if not (shapes or missing or unexpected):
        return None
    parts = [
        f"{len(items)} {label}, e.g. {items[0]}"
        for items, label in (
            (shapes, "with another shape (checkpoint vs model)"),
            (missing, "missing"),
            (unexpected, "unexpected"),
        )
        if items
    ]
    return f"expected the model's {len(own)} tensors; {'; '.join(parts)}"


def load_weights(
    model: torch.nn.Module, path: str | os.PathLike, model_name: str = "the model"
) -> None:
    """Load a checkpoint (any supported form) into ``model``; keys and shapes must match exactly."""
    state = _adapt(model, read_state_dict(path))
    problem = _fit_message(model, state)
    if problem:
        raise ValueError(
            f"{path}: weights do not fit {model_name} ({problem}); "
            "is it a checkpoint of another architecture?"
        )
    model.load_state_dict(state, strict=True)


def load_clip(
    model_dir: str | os.PathLike | ClipSource,
    checkpoint: str | os.PathLike | None = None,
    device: str = "cpu",
    train_transform: bool = False,
):
    """Return ``(model, preprocess, tokenizer)``; ``model`` is in eval mode on ``device``.

    ``model_dir``: a model directory, ``hf-hub:`` id, architecture name or ``ClipSource``;
    ``checkpoint``: any supported file form (see the module docstring). ``train_transform``: the
    augmenting transform open_clip_train trains with instead of the evaluation one.
    """
    import open_clip

    source = resolve_clip(model_dir, checkpoint)
    _quiet_open_clip()
    model, preprocess_train, preprocess = open_clip.create_model_and_transforms(
        source.open_clip_name, load_weights=False
    )
    if train_transform:
        preprocess = preprocess_train
    if source.weights is not None:
        load_weights(model, source.weights, f"{source.spec} ({source.kind})")
    tokenizer = open_clip.get_tokenizer(source.tokenizer_name)
    return model.to(device).eval(), preprocess, tokenizer


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: CUDA is not available on this machine")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"--device must be auto, cpu or cuda, got {name!r}")
    return name


def save_checkpoint(
    model: torch.nn.Module, path: str | os.PathLike, name: str, epoch: int = 0
) -> None:
    """Save in open_clip_train's checkpoint layout (without optimizer state), atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_torch({"epoch": epoch, "name": name, "state_dict": state}, path)
