"""Random-weight diffusers pipelines and IP-Adapters of a named architecture, built offline.

No weights can be downloaded where the pipeline is tested, yet its diffusers backend must run on
real code. This module builds, with random weights, what ``faces.diffusers.model`` and
``faces.diffusers.ip_adapter`` point at, in the layouts the backend loads:

- ``tiny``: a few-channel UNet, VAE and text encoder that run in well under a second on a CPU (the
  tests);
- ``sd15``: Stable Diffusion 1.5's architecture (UNet 860M, VAE, CLIP ViT-L/14 text encoder) and a
  plain IP-Adapter (4 image tokens) with a CLIP ViT-H/14 image encoder, so that ``salmu gpu-check``
  times the paper tier's face generation without its weights. The paper tier uses IP-Adapter Plus
  Face, whose resampler gives 16 image tokens instead of 4: a few more keys in each cross-attention.

The tokenizer is the real CLIP BPE vocabulary, built from the copy open_clip bundles, so prompts
tokenize exactly as in Stable Diffusion.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

IP_SUBFOLDER = "models"

# Per architecture: the UNet, VAE, text encoder and IP-Adapter image encoder configurations.
ARCHITECTURES: dict[str, dict] = {
    "tiny": {
        "unet": {
            "block_out_channels": (32, 64),
            "layers_per_block": 1,
            "sample_size": 32,
            "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
            "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
            "cross_attention_dim": 32,
            "attention_head_dim": 8,
        },
        "vae": {"block_out_channels": [32, 64], "layers_per_block": 1, "sample_size": 64},
        "text": {"hidden_size": 32, "intermediate_size": 37, "heads": 4, "layers": 2},
        "image_encoder": {
            "hidden_size": 32,
            "intermediate_size": 37,
            "heads": 4,
            "layers": 2,
            "image_size": 32,
            "patch_size": 8,
            "projection_dim": 32,
        },
    },
    "sd15": {
        "unet": {
            "block_out_channels": (320, 640, 1280, 1280),
            "layers_per_block": 2,
            "sample_size": 64,
            "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            "cross_attention_dim": 768,
            "attention_head_dim": 8,
        },
        "vae": {
            "block_out_channels": [128, 256, 512, 512],
            "layers_per_block": 2,
            "sample_size": 512,
        },
        "text": {"hidden_size": 768, "intermediate_size": 3072, "heads": 12, "layers": 12},
        "image_encoder": {
            "hidden_size": 1280,
            "intermediate_size": 5120,
            "heads": 16,
            "layers": 32,
            "image_size": 224,
            "patch_size": 14,
            "projection_dim": 1024,
        },
    },
}


def ip_weight_name(arch: str) -> str:
    return f"ip-adapter_{arch}.safetensors"


def architecture(arch: str) -> dict:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}: expected one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch]


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


def build_sd(folder: Path, arch: str = "tiny", device: str = "cpu", dtype=None):
    """Save a random StableDiffusionPipeline of ``arch`` to ``folder``; returns the pipeline.
    ``device``: where the weights are initialised (a GPU does a large UNet in a moment);
    ``dtype``: the dtype they are saved in."""
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    spec = architecture(arch)
    folder = Path(folder)
    tokenizer = CLIPTokenizer.from_pretrained(
        build_clip_tokenizer_files(folder.parent / f"{folder.name}_tokenizer_src"),
        model_max_length=77,
    )
    text = spec["text"]
    with torch.device(device):
        torch.manual_seed(0)
        unet = UNet2DConditionModel(
            in_channels=4, out_channels=4, norm_num_groups=32, **spec["unet"]
        )
        torch.manual_seed(0)
        vae_spec = spec["vae"]
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=["DownEncoderBlock2D"] * len(vae_spec["block_out_channels"]),
            up_block_types=["UpDecoderBlock2D"] * len(vae_spec["block_out_channels"]),
            latent_channels=4,
            norm_num_groups=32,
            **vae_spec,
        )
        torch.manual_seed(0)
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=49408,
                hidden_size=text["hidden_size"],
                intermediate_size=text["intermediate_size"],
                num_attention_heads=text["heads"],
                num_hidden_layers=text["layers"],
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
    if dtype is not None:
        pipe.to(dtype=dtype)
    pipe.save_pretrained(folder)
    return pipe


def build_ip_adapter(
    folder: Path, unet, arch: str = "tiny", std: float = 0.3, device: str = "cpu", dtype=None
) -> Path:
    """Save a random plain IP-Adapter (4 image tokens) for ``unet`` under ``folder``, laid out
    like ``h94/IP-Adapter``: ``models/<ip_weight_name(arch)>`` (flat ``image_proj.*`` /
    ``ip_adapter.*`` keys) and ``models/image_encoder/``.

    ``std``: the tiny tests use a large one, so that the adapter's effect on a tiny UNet shows.
    ``device`` and ``dtype``: where the image encoder is initialised, the dtype it is saved in.
    """
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    spec = architecture(arch)["image_encoder"]
    cross = unet.config.cross_attention_dim
    models = Path(folder) / IP_SUBFOLDER
    torch.manual_seed(1)
    with torch.device(device):
        encoder = CLIPVisionModelWithProjection(
            CLIPVisionConfig(
                hidden_size=spec["hidden_size"],
                intermediate_size=spec["intermediate_size"],
                num_attention_heads=spec["heads"],
                num_hidden_layers=spec["layers"],
                image_size=spec["image_size"],
                patch_size=spec["patch_size"],
                projection_dim=spec["projection_dim"],
            )
        )
    if dtype is not None:
        encoder.to(dtype=dtype)
    encoder.save_pretrained(models / "image_encoder")
    gen = torch.Generator().manual_seed(2)

    def randn(*shape):
        return torch.randn(*shape, generator=gen) * std

    proj_dim = encoder.config.projection_dim
    tensors = {
        "image_proj.proj.weight": randn(4 * cross, proj_dim),
        "image_proj.proj.bias": randn(4 * cross),
        "image_proj.norm.weight": torch.ones(cross),
        "image_proj.norm.bias": torch.zeros(cross),
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
        tensors[f"ip_adapter.{key_id}.to_k_ip.weight"] = randn(hidden, cross)
        tensors[f"ip_adapter.{key_id}.to_v_ip.weight"] = randn(hidden, cross)
        key_id += 2
    save_file(tensors, str(models / ip_weight_name(arch)))
    return Path(folder)
