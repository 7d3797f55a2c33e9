"""Tiny random diffusers weights, built offline, for tests of the ``diffusers`` face backend.

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

import gzip
import hashlib
import json
import os
from pathlib import Path

IP_WEIGHT_NAME = "ip-adapter_tiny.safetensors"
IP_SUBFOLDER = "models"
CROSS_DIM = 32  # UNet cross-attention width = text hidden size = IP-Adapter token width


def build_clip_tokenizer_files(folder: Path) -> Path:
    """``vocab.json`` + ``merges.txt`` of the CLIP BPE tokenizer, from open_clip's bundled vocab."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(default_bpe()) as handle:
        lines = handle.read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    byte_chars = list(bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n"
    )
    return folder


def build_tiny_sd(folder: Path):
    """Save a tiny random StableDiffusionPipeline to ``folder``; returns the pipeline."""
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    tokenizer = CLIPTokenizer.from_pretrained(
        build_clip_tokenizer_files(folder.parent / f"{folder.name}_tokenizer_src"),
        model_max_length=77,
    )
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=CROSS_DIM,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=64,
    )
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=CROSS_DIM,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=77,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return pipe


def build_tiny_ip_adapter(folder: Path, unet, std: float = 0.3) -> Path:
    """Save a tiny random plain IP-Adapter (4 image tokens) for ``unet`` under ``folder``.

    ``std`` is large on purpose: the adapter's effect on the tiny UNet must be visible, so that a
    test can tell whether the anchor image reached the variants.
    """
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    models = Path(folder) / IP_SUBFOLDER
    torch.manual_seed(1)
    encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            image_size=32,
            patch_size=8,
            projection_dim=32,
        )
    )
    encoder.save_pretrained(models / "image_encoder")
    gen = torch.Generator().manual_seed(2)

    def randn(*shape):
        return torch.randn(*shape, generator=gen) * std

    proj_dim = encoder.config.projection_dim
    tensors = {
        "image_proj.proj.weight": randn(4 * CROSS_DIM, proj_dim),
        "image_proj.proj.bias": randn(4 * CROSS_DIM),
        "image_proj.norm.weight": torch.ones(CROSS_DIM),
        "image_proj.norm.bias": torch.zeros(CROSS_DIM),
    }
    # One (to_k_ip, to_v_ip) pair per cross-attention processor, numbered 1, 3, 5, ... in
    # unet.attn_processors order; the width is the block's channel count.
    channels = list(unet.config.block_out_channels)
    key_id = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(channels))[int(name[len("up_blocks.")])]
        else:
            hidden = channels[int(name[len("down_blocks.")])]
        tensors[f"ip_adapter.{key_id}.to_k_ip.weight"] = randn(hidden, CROSS_DIM)
        tensors[f"ip_adapter.{key_id}.to_v_ip.weight"] = randn(hidden, CROSS_DIM)
        key_id += 2
    save_file(tensors, str(models / IP_WEIGHT_NAME))
    return Path(folder)


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
