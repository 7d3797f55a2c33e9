"""Settings of the face images (config section ``faces``, flags of ``salmu faces``), of the
diffusers backend (``faces.diffusers``: ``--diffusers-*`` flags of ``salmu faces``) and of the
consistency filter (``faces.filter``, flags of ``salmu face-filter``)."""

from __future__ import annotations

from dataclasses import dataclass

from salmu.settings import Settings, setting

FACE_BACKENDS = ("procedural", "diffusers")
DIFFUSERS_DTYPES = ("auto", "float32", "float16", "bfloat16")
EMBEDDERS = ("pixels", "clip")


@dataclass(frozen=True, kw_only=True)
class FacesSettings(Settings):
    section = "faces"
    # The workflow's: the fan-out (jobs, each job's runtime) and the two sub-sections.
    workflow_keys = ("diffusers", "filter", "jobs", "runtime")

    backend: str = setting(
        "procedural",
        "procedural (offline CPU renderer) or diffusers (an anchor portrait per identity from a "
        "text-to-image pipeline, then IP-Adapter identity-preserving variants)",
        choices=FACE_BACKENDS,
    )
    images_per_identity: int = setting(
        30, "sensitive images per persona, each with one attribute caption (paper: 25-99)"
    )
    generic_per_identity: int = setting(
        3, "further images per persona with non-sensitive captions (retain_joint)"
    )
    anonymous_identities: int = setting(
        400, "people who are not personas (retain_disjoint and the fragile set)"
    )
    images_per_anonymous: int = setting(4, "images per anonymous person")
    size: int = setting(64, "longest image side in pixels (paper release: 512)")
    aspect_range: list[float] = setting(
        [0.75, 1.33], "width/height drawn uniformly in [MIN, MAX] (paper: 0.33-3.00)"
    )
    jpeg_quality: int = setting(90, "JPEG quality")


@dataclass(frozen=True, kw_only=True)
class FaceDiffusersSettings(Settings):
    """The diffusers backend's constructor options (face_backends.diffusers). Weights are never
    downloaded at run time: a local folder, or a hub id already in the local HF cache."""

    section = "faces.diffusers"
    flag_prefix = "diffusers-"

    model: str | None = setting(
        None,
        "text-to-image pipeline (StableDiffusionPipeline-compatible): a folder saved with "
        "save_pretrained, or a hub id in the local HF cache",
    )
    ip_adapter: str | None = setting(
        None, "IP-Adapter repository (local folder or cached hub id), e.g. h94/IP-Adapter"
    )
    ip_adapter_subfolder: str = setting(
        "models", "folder inside ip_adapter holding the weight file ('' for its root)"
    )
    ip_adapter_weight_name: str | None = setting(
        "ip-adapter-plus-face_sd15.safetensors", "IP-Adapter weight file (.safetensors or .bin)"
    )
    ip_adapter_image_encoder: str = setting(
        "image_encoder",
        "image encoder folder: a name inside ip_adapter_subfolder, or a path with '/' from the "
        "ip_adapter root (diffusers' image_encoder_folder)",
    )
    ip_adapter_scale: float = setting(
        0.6, "how strongly the anchor face steers every variant (0: text only)"
    )
    steps: int = setting(30, "denoising steps per image")
    guidance_scale: float = setting(7.5, "classifier-free guidance")
    resolution: int = setting(512, "longest side generated; images are then resized to faces.size")
    size_multiple: int = setting(
        8, "generated sides are multiples of this (larger: fewer shapes, fuller batches)"
    )
    batch_size: int = setting(4, "images per pipeline call")
    dtype: str = setting("auto", "auto: float16 on CUDA, float32 on CPU", choices=DIFFUSERS_DTYPES)
    device: str = setting("auto", "auto (cuda if available), cpu, cuda, cuda:N")
    negative_prompt: str | None = setting(
        None, "negative prompt (null: the built-in one; empty string: none)"
    )


@dataclass(frozen=True, kw_only=True)
class FaceFilterSettings(Settings):
    """Consistency filter (paper: CLIP zero-shot annotation + consistency checks, 1,000 -> 774
    identities)."""

    section = "faces.filter"
    workflow_keys = ("runtime",)

    embedder: str = setting(
        "pixels",
        "pixels: a fixed colour/layout descriptor (enough for the procedural renderer, no "
        "model); clip: an open_clip model's image embeddings, which the demographic check needs",
        choices=EMBEDDERS,
    )
    clip_model: str | None = setting(
        None, "for clip: an open_clip model directory (open_clip_config.json) or an hf-hub: id"
    )
    clip_checkpoint: str | None = setting(None, "weights for clip_model (epoch_K.pt or state dict)")
    identity_threshold: float | None = setting(
        None,
        "drop an image whose cosine to its identity's reference image is below this (null: "
        "0.72, measured for pixels; clip needs a value)",
    )
    demographics: list[str] = setting(
        [], "zero-shot checks against the persona, clip only: any of gender, age_band"
    )
    demographic_margin: float = setting(
        0.0, "drop only when another class's cosine beats the expected one by more than this"
    )
    prompts: str | None = setting(
        None, "YAML/JSON {attribute: {class: [prompts]}} replacing the built-in prompts"
    )
    min_images: int = setting(
        20, "drop an identity (all its rows) left with fewer sensitive images than this"
    )
    device: str = setting("cpu", "torch device of the clip embedder")
    batch_size: int = setting(64, "images per clip forward pass")


def renderer_flags(faces: FacesSettings, diffusers: FaceDiffusersSettings) -> str:
    """The flags of ``salmu faces`` (and ``salmu throughput``): the diffusers ones only with that
    backend, so that the procedural images do not depend on settings they never read."""
    flags = faces.to_flags()
    if faces.backend == "diffusers":
        flags += " " + diffusers.to_flags()
    return flags
