"""The ``diffusers`` face backend: an anchor portrait per identity, then IP-Adapter variants.

Per identity (the paper's generation pipeline, docs/protocol.md §1.1, with a text-to-image anchor in place of
an SFHQ face):

1. **Anchor.** A square, frontal, neutral studio portrait from a text-to-image pipeline
   (``DiffusionPipeline.from_pretrained``; any pipeline whose call takes ``ip_adapter_image``,
   i.e. Stable Diffusion 1.x/2.x/XL). The prompt is built from the persona's demographics (gender,
   age band, country) and the identity's look traits; the noise comes from the identity's
   ``anchor_seed``. The IP-Adapter is switched off while the anchor is drawn, so the anchor is
   plain text-to-image. The anchor is conditioning only; it is not written to the table.
2. **Variants.** Every planned image of the identity is generated with the same pipeline, the
   IP-Adapter loaded (``load_ip_adapter``, ``set_ip_adapter_scale``) and the anchor passed as
   ``ip_adapter_image``. Prompts vary pose, expression, clothing, background and lighting,
   translated from the per-image variation the plan already drew (background and shirt colour
   exactly, since captions mention them; pose from yaw/tilt/zoom, light from the lighting values)
   plus a few words drawn from the image's own seed (garment cut, expression wording).

Aspect ratio: each image is generated at the plan's aspect ratio with its longest side
``resolution`` and both sides rounded to multiples of ``size_multiple`` (so never square-then-crop,
which would cut the face at extreme aspects), then resized to cover the planned
``width`` x ``height`` and centre-cropped by the few pixels the rounding left over. Images of one
identity that share a generation size are batched (``batch_size``); a larger ``size_multiple`` gives
fewer distinct sizes, hence fuller batches.

Determinism: every image's initial noise comes from its own CPU ``torch.Generator`` seeded with
the image's derived seed, so the noise does not depend on the device or on the other images of its
batch. Pixels are byte-identical across runs with the same options on the same machine type; they
can differ across devices, dtypes and batch sizes (floating-point order of operations).

Weights are never downloaded implicitly in offline mode: ``model`` and ``ip_adapter`` must be local
folders or hub ids already in the local Hugging Face cache (or reachable when the hub is online),
and this is checked before torch/diffusers are even imported, with an error naming the CLI flag and
the config key to fix.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from salmu.face_backends import Identity, PlannedImage
from salmu.io import read_json
from salmu.looks import hair_phrase
from salmu.sections.faces import DIFFUSERS_DTYPES as DTYPES
from salmu.sections.faces import FaceDiffusersSettings
from salmu.seeding import stream

DEFAULT_NEGATIVE_PROMPT = (
    "cartoon, anime, drawing, painting, illustration, 3d render, deformed face, disfigured, "
    "blurry, low quality, watermark, text, two people, nsfw"
)

AGE_WORDS = {"young": "young adult", "middle-aged": "middle-aged", "older": "elderly"}
GENDER_NOUNS = {"female": "woman", "male": "man"}
GARMENTS = ("shirt", "t-shirt", "button-up shirt", "polo shirt", "collared shirt")
SMILES = ("smiling", "slight smile", "broad smile", "laughing")
NEUTRALS = ("neutral expression", "calm expression", "serious expression", "relaxed expression")


def source(option: str) -> str:
    """``--flag (config key faces.diffusers.option)`` for error messages."""
    flag = FaceDiffusersSettings.flag(option)
    return f"{flag} (config key {FaceDiffusersSettings.section}.{option})"


# ---------------------------------------------------------------------------------------------
# Prompts
# ---------------------------------------------------------------------------------------------


def person_phrase(identity: Identity) -> str:
    person = f"{AGE_WORDS.get(identity.age_band, identity.age_band)} "
    person += GENDER_NOUNS.get(identity.gender, "person")
    return f"{person} from {identity.country}" if identity.country else person


def identity_traits(look: dict[str, Any], *, full: bool = True) -> list[str]:
    """The stable look as prompt phrases. ``full`` adds face shape and "clean-shaven" (anchor only:
    variants get the face from the anchor, and CLIP reads 77 tokens at most)."""
    traits = [
        f"{look['skin_tone']} skin",
        hair_phrase(look, articles=False),
        f"{look['eye_color']} eyes",
    ]
    if full:
        traits.append(f"{look['face_shape']} face")
    if look["glasses"]:
        traits.append("glasses")
    if look["beard"]:
        traits.append("full beard")
    elif full and look["gender"] == "male":
        traits.append("clean-shaven")
    return traits


def anchor_prompt(look: dict[str, Any], identity: Identity) -> str:
    return ", ".join(
        [
            f"close-up studio portrait photo of a {person_phrase(identity)}",
            *identity_traits(look),
            "neutral expression, looking straight at the camera",
            "plain light gray background, soft even lighting, sharp focus, photorealistic",
        ]
    )


def _pose(variation: dict[str, Any]) -> str:
    turn = variation["yaw"] / 0.14  # the plan draws yaw in [-0.14, 0.14]
    side = "left" if turn < 0 else "right"
    if abs(turn) < 0.25:
        pose = "facing the camera"
    elif abs(turn) < 0.65:
        pose = f"head turned slightly {side}"
    else:
        pose = f"three-quarter view to the {side}"
    if abs(variation["tilt"]) > 5.0:
        pose += ", head tilted"
    return pose


def _framing(variation: dict[str, Any]) -> str:
    if variation["zoom"] < 0.96:
        return "head and shoulders shot"
    if variation["zoom"] > 1.04:
        return "tight close-up"
    return "portrait"


def _lighting(variation: dict[str, Any]) -> str:
    angle = variation["light_angle"] % 360.0  # image coordinates: 90 degrees points down
    direction = ("the right", "below", "the left", "above")[int(((angle + 45.0) % 360.0) // 90.0)]
    light = "dramatic" if variation["light_strength"] > 0.1 else "soft"
    tone = variation["tint"][0] - variation["tint"][2]  # red minus blue
    warmth = " warm" if tone > 0.04 else " cool" if tone < -0.04 else ""
    level = (
        "bright "
        if variation["brightness"] > 1.07
        else "dim "
        if variation["brightness"] < 0.93
        else ""
    )
    return f"{level}{light}{warmth} light from {direction}"


def variant_prompt(look: dict[str, Any], identity: Identity, image: PlannedImage) -> str:
    """One planned image as a prompt: the stable look plus this image's variation."""
    var = image.variation
    rng = stream(image.seed, "prompt")  # extra wording, independent of the plan's draws
    garment = GARMENTS[int(rng.integers(len(GARMENTS)))]
    expressions = SMILES if var["expression"] == "smile" else NEUTRALS
    expression = expressions[int(rng.integers(len(expressions)))]
    # Caption-relevant words first (look, shirt, background): CLIP truncates at 77 tokens.
    return ", ".join(
        [
            f"{_framing(var)} photo of a {person_phrase(identity)}",
            *identity_traits(look, full=False),
            f"{var['shirt_color']} {garment}",
            f"{var['background']} background",
            expression,
            _pose(var),
            _lighting(var),
            "photorealistic",
        ]
    )


# ---------------------------------------------------------------------------------------------
# Sizes
# ---------------------------------------------------------------------------------------------


def generation_size(width: int, height: int, resolution: int, multiple: int) -> tuple[int, int]:
    """(width, height) to generate: the planned aspect, longest side ``resolution``, both sides
    multiples of ``multiple``."""

    def snap(x: float) -> int:
        return max(multiple, int(round(x / multiple)) * multiple)

    if width >= height:
        return resolution, snap(resolution * height / width)
    return snap(resolution * width / height), resolution


def fit(image: Image.Image, width: int, height: int) -> Image.Image:
    """Resize to cover ``width`` x ``height`` (aspect kept), then centre-crop the excess."""
    image = image.convert("RGB")
    scale = max(width / image.width, height / image.height)
    w = max(width, round(image.width * scale))
    h = max(height, round(image.height * scale))
    image = image.resize((w, h), Image.LANCZOS)
    left, top = (w - width) // 2, (h - height) // 2
    return image.crop((left, top, left + width, top + height))


# ---------------------------------------------------------------------------------------------
# Finding the weights (no torch / diffusers import, no network when offline)
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# The backend
# ---------------------------------------------------------------------------------------------


def _batched(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class DiffusersFaceBackend:
    """Anchor portrait per identity (text-to-image) + identity-preserving IP-Adapter variants."""

    name = "diffusers"

    def __init__(
        self,
        model: str | None = None,
        ip_adapter: str | None = None,
        ip_adapter_subfolder: str = "",
        ip_adapter_weight_name: str | None = None,
        ip_adapter_image_encoder: str | None = "image_encoder",
        ip_adapter_scale: float = 0.6,
        steps: int = 30,
        guidance_scale: float = 7.5,
        resolution: int = 512,
        size_multiple: int = 8,
        batch_size: int = 4,
        dtype: str = "auto",
        device: str = "auto",
        negative_prompt: str | None = None,
        log=None,
    ):
        self.log = log if log is not None else sys.stdout
        self._check_numbers(
            ip_adapter_scale, steps, guidance_scale, resolution, size_multiple, batch_size, dtype
        )
        # 1. Weights first: a missing model fails here, before torch or diffusers is imported.
        self.model = locate_model(model)
        self.ip_adapter = locate_ip_adapter(
            ip_adapter, ip_adapter_subfolder or "", ip_adapter_weight_name, ip_adapter_image_encoder
        )
        self.ip_adapter_subfolder = ip_adapter_subfolder or ""
        self.ip_adapter_weight_name = ip_adapter_weight_name
        self.ip_adapter_image_encoder = ip_adapter_image_encoder
        self.ip_adapter_scale = float(ip_adapter_scale)
        self.steps = int(steps)
        self.guidance_scale = float(guidance_scale)
        self.resolution = int(resolution)
        self.size_multiple = int(size_multiple)
        self.batch_size = int(batch_size)
        self.negative_prompt = (
            DEFAULT_NEGATIVE_PROMPT if negative_prompt is None else negative_prompt
        )
        # 2. Then the device and the pipeline.
        import torch

        self.torch = torch
        self.device = self._pick_device(device)
        self.dtype = self._pick_dtype(dtype, self.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = False  # autotuning picks kernels run to run
            torch.backends.cudnn.deterministic = True
        start = time.perf_counter()
        self.pipe = self._load()
        self.anchors = 0
        self.generated = 0
        print(
            f"faces: diffusers {type(self.pipe).__name__} from {self.model.ref} + IP-Adapter "
            f"{self.ip_adapter.ref} ({Path(self.ip_adapter_subfolder, str(ip_adapter_weight_name))}"
            f", scale {self.ip_adapter_scale}) on {self.device} ({self.dtype}), loaded in "
            f"{time.perf_counter() - start:.1f}s",
            file=self.log,
        )

    # -- options ------------------------------------------------------------------------------

    @staticmethod
    def _check_numbers(scale, steps, guidance, resolution, multiple, batch, dtype) -> None:
        if scale < 0:
            raise ValueError(f"{source('ip_adapter_scale')} {scale}: expected >= 0")
        if steps < 1:
            raise ValueError(f"{source('steps')} {steps}: expected >= 1")
        if guidance < 0:
            raise ValueError(f"{source('guidance_scale')} {guidance}: expected >= 0")
        if multiple < 1:
            raise ValueError(f"{source('size_multiple')} {multiple}: expected >= 1")
        if resolution < multiple or resolution % multiple:
            raise ValueError(
                f"{source('resolution')} {resolution}: expected a multiple of "
                f"{source('size_multiple')} {multiple}"
            )
        if batch < 1:
            raise ValueError(f"{source('batch_size')} {batch}: expected >= 1")
        if dtype not in DTYPES:
            raise ValueError(f"{source('dtype')} {dtype!r}: expected one of {list(DTYPES)}")

    def _pick_device(self, device: str):
        torch = self.torch
        name = "cuda" if device == "auto" and torch.cuda.is_available() else device
        name = "cpu" if name == "auto" else name
        try:
            picked = torch.device(name)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"{source('device')} {device!r}: not a torch device ({err})") from None
        if picked.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"{source('device')} {device!r}: CUDA is not available here")
        if picked.type not in ("cpu", "cuda", "mps", "xpu"):
            raise ValueError(f"{source('device')} {device!r}: expected cpu, cuda[:N] or auto")
        return picked

    def _pick_dtype(self, dtype: str, device):
        torch = self.torch
        if dtype == "auto":
            return torch.float16 if device.type == "cuda" else torch.float32
        if dtype == "float16" and device.type == "cpu":
            raise ValueError(
                f"{source('dtype')} float16 needs a GPU; on CPU use float32 (or bfloat16)"
            )
        return getattr(torch, dtype)

    # -- loading --------------------------------------------------------------------------------

    def _load(self):
        from diffusers import DiffusionPipeline
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        diffusers_logging.disable_progress_bar()  # per-component loading bars: log noise
        transformers_logging.disable_progress_bar()
        extra: dict[str, Any] = {}
        if self.model.folder is None or "safety_checker" in read_json(
            self.model.folder / "model_index.json"
        ):
            # A false positive would replace a portrait with a black square; prompts are
            # clothed head-and-shoulders portraits and the negative prompt excludes nsfw.
            extra.update(safety_checker=None, requires_safety_checker=False)
        try:
            pipe = DiffusionPipeline.from_pretrained(
                self.model.ref, dtype=self.dtype, local_files_only=self.model.local_only, **extra
            )
        except Exception as err:
            raise ValueError(
                f"{source('model')}: cannot load {self.model.ref!r} as a diffusers pipeline "
                f"({type(err).__name__}: {_first_line(err)})"
            ) from err
        import inspect

        call = inspect.signature(pipe.__call__).parameters
        unet = getattr(pipe, "unet", None)
        if unet is None or not hasattr(pipe, "load_ip_adapter") or "ip_adapter_image" not in call:
            raise ValueError(
                f"{source('model')}: {type(pipe).__name__} is not a UNet text-to-image pipeline "
                "that takes an IP-Adapter image; use a Stable Diffusion (1.x/2.x/XL) one"
            )
        pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        # Text-only attention, kept to draw the anchors with the adapter switched off.
        self._plain_processors = dict(pipe.unet.attn_processors)
        try:
            pipe.load_ip_adapter(
                self.ip_adapter.ref,
                subfolder=self.ip_adapter_subfolder,
                weight_name=self.ip_adapter_weight_name,
                image_encoder_folder=self.ip_adapter_image_encoder,
                local_files_only=self.ip_adapter.local_only,
            )
        except Exception as err:
            raise ValueError(
                f"{source('ip_adapter')}: cannot load IP-Adapter {self.ip_adapter.ref!r} "
                f"({self.ip_adapter_subfolder}/{self.ip_adapter_weight_name}) into "
                f"{type(pipe).__name__} ({type(err).__name__}: {_first_line(err)})"
            ) from err
        pipe.set_ip_adapter_scale(self.ip_adapter_scale)
        self._adapter_processors = dict(pipe.unet.attn_processors)
        self._adapter_projection = pipe.unet.encoder_hid_proj
        return pipe

    @contextlib.contextmanager
    def _adapter_off(self) -> Iterator[None]:
        """Plain text-to-image for the duration (the loaded adapter stays in memory)."""
        unet = self.pipe.unet
        unet.set_attn_processor(dict(self._plain_processors))
        unet.encoder_hid_proj = None
        try:
            yield
        finally:
            unet.set_attn_processor(dict(self._adapter_processors))
            unet.encoder_hid_proj = self._adapter_projection

    # -- generation -----------------------------------------------------------------------------

    def _generate(self, prompts: list[str], seeds: list[int], width: int, height: int, **kw):
        torch = self.torch
        generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        negative = [self.negative_prompt] * len(prompts) if self.negative_prompt else None
        with torch.inference_mode():
            result = self.pipe(
                prompt=prompts,
                negative_prompt=negative,
                height=height,
                width=width,
                num_inference_steps=self.steps,
                guidance_scale=self.guidance_scale,
                generator=generators,
                output_type="pil",
                **kw,
            )
        return result.images

    def anchor(self, look: dict[str, Any], identity: Identity) -> Image.Image:
        """The identity's reference portrait (square, ``resolution`` px), adapter off."""
        with self._adapter_off():
            (image,) = self._generate(
                [anchor_prompt(look, identity)],
                [identity.anchor_seed],
                self.resolution,
                self.resolution,
            )
        self.anchors += 1
        return image.convert("RGB")

    def render_identity(
        self, look: dict[str, Any], identity: Identity, images: Sequence[PlannedImage]
    ) -> list[Image.Image]:
        if not images:
            return []
        reference = self.anchor(look, identity)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, item in enumerate(images):  # plan order, so batches are the same every run
            size = generation_size(item.width, item.height, self.resolution, self.size_multiple)
            groups.setdefault(size, []).append(i)
        out: list[Image.Image | None] = [None] * len(images)
        for (width, height), members in groups.items():
            for chunk in _batched(members, self.batch_size):
                generated = self._generate(
                    [variant_prompt(look, identity, images[i]) for i in chunk],
                    [images[i].seed for i in chunk],
                    width,
                    height,
                    ip_adapter_image=reference,
                )
                for i, image in zip(chunk, generated):
                    out[i] = fit(image, images[i].width, images[i].height)
        self.generated += len(images)
        return out  # type: ignore[return-value]


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else ""
