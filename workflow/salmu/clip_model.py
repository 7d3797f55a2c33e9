"""Load and save CLIP models the way open_clip_train does, so every stage shares one format.

A model is named by a *model directory* holding ``open_clip_config.json`` (open_clip's
``local-dir:`` convention); weights come from a checkpoint file: an open_clip_train ``epoch_K.pt``
(dict with ``state_dict``), or a raw state dict. Checkpoints are loaded with ``weights_only=True``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from salmu.io import ensure_parent


def _quiet_open_clip():
    # open_clip warns "No pretrained weights" for every local-dir model; we load weights ourselves.
    logging.getLogger("open_clip").setLevel(logging.ERROR)
    logging.getLogger("root").setLevel(logging.ERROR)


def load_clip(
    model_dir: str | os.PathLike, checkpoint: str | os.PathLike | None = None, device: str = "cpu"
):
    """Return ``(model, preprocess, tokenizer)``; ``model`` is in eval mode on ``device``."""
    import open_clip

    _quiet_open_clip()
    model_dir = Path(model_dir)
    if not (model_dir / "open_clip_config.json").exists():
        raise FileNotFoundError(
            f"{model_dir}: no open_clip_config.json (expected an open_clip model directory)"
        )
    name = f"local-dir:{model_dir}"
    model, _, preprocess = open_clip.create_model_and_transforms(name, load_weights=False)
    if checkpoint is not None:
        if not Path(checkpoint).exists():
            raise FileNotFoundError(f"{checkpoint}: checkpoint not found")
        open_clip.load_checkpoint(model, str(checkpoint), strict=True, weights_only=True)
    tokenizer = open_clip.get_tokenizer(name)
    return model.to(device).eval(), preprocess, tokenizer


def save_checkpoint(
    model: torch.nn.Module, path: str | os.PathLike, name: str, epoch: int = 0
) -> None:
    """Save in open_clip_train's checkpoint layout (without optimizer state), atomically."""
    path = ensure_parent(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"epoch": epoch, "name": name, "state_dict": state}, tmp)
    tmp.replace(path)
