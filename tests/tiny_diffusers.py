"""Tiny random diffusers weights, built offline (``salmu.face_backends.random_weights``), for
tests of the ``diffusers`` face backend.

- ``build_tiny_sd(folder)``: a ``StableDiffusionPipeline`` (tiny UNet / VAE / CLIP text encoder,
  DDIM) saved with ``save_pretrained``. Its tokenizer is the real CLIP BPE vocabulary, built from
  the copy open_clip bundles (``bpe_simple_vocab_16e6.txt.gz``), so prompts tokenize exactly as in
  Stable Diffusion.
- ``build_tiny_ip_adapter(folder, unet)``: an IP-Adapter repository laid out like
  ``h94/IP-Adapter``: ``models/ip-adapter_tiny.safetensors`` (flat ``image_proj.*`` /
  ``ip_adapter.*`` keys) and ``models/image_encoder/`` (a tiny ``CLIPVisionModelWithProjection``).
- ``install_in_hub_cache(folder, repo_id, cache)``: the same files as a Hugging Face hub cache entry
  (``models--org--name/{blobs,snapshots,refs}``), for loading by hub id offline.

Nothing is downloaded. Building both takes well under a second.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from salmu.face_backends.random_weights import (
    IP_SUBFOLDER,
    build_ip_adapter,
    build_sd,
    ip_weight_name,
)

IP_WEIGHT_NAME = ip_weight_name("tiny")
__all__ = ["IP_SUBFOLDER", "IP_WEIGHT_NAME", "build_tiny_sd", "build_tiny_ip_adapter"]


def build_tiny_sd(folder: Path):
    """Save a tiny random StableDiffusionPipeline to ``folder``; returns the pipeline."""
    return build_sd(folder, "tiny")


def build_tiny_ip_adapter(folder: Path, unet, std: float = 0.3) -> Path:
    """Save a tiny random plain IP-Adapter (4 image tokens) for ``unet`` under ``folder``.

    ``std`` is large on purpose: the adapter's effect on the tiny UNet must be visible, so that a
    test can tell whether the anchor image reached the variants.
    """
    return build_ip_adapter(folder, unet, "tiny", std)


def install_in_hub_cache(folder: Path, repo_id: str, cache: Path) -> Path:
    """Copy ``folder`` into a hand-built HF hub cache as ``repo_id`` (blobs + snapshot links)."""
    repo = Path(cache) / ("models--" + repo_id.replace("/", "--"))
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = repo / "snapshots" / commit
    for path in sorted(Path(folder).rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / path.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot
