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
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from salmu.face_backends import Identity, PlannedImage
from salmu.face_backends.diffusers_prompts import (
    DEFAULT_NEGATIVE_PROMPT,
    anchor_prompt,
    variant_prompt,
)
from salmu.face_backends.diffusers_weights import locate_ip_adapter, locate_model, source
from salmu.io import read_json
from salmu.sections.faces import DIFFUSERS_DTYPES as DTYPES

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
