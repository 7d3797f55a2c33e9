"""Face renderers behind one interface, chosen by name (``salmu faces --backend NAME``).

``salmu.faces`` owns *what* to draw: every identity's look (from ``salmu.look_draws``), and per
image a ``PlannedImage`` (size, per-image variation, seed). A backend owns *how*: it gets one
identity at a time, with all of that identity's planned images, and returns one image per plan row.
Working per identity lets a generative backend make one anchor portrait per identity and then batch the
identity's variants; a per-image renderer just loops.

Backends are registered as ``"module:Class"`` strings and imported only when asked for, so the
procedural path never imports torch or diffusers.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from PIL import Image


@dataclass(frozen=True)
class Identity:
    """One person to render: a persona or an anonymous person (not a persona).

    ``anchor_seed`` is derived from the config seed and the identity only (``salmu.seeding``), so
    a backend that draws a reference portrait per identity gets the same one in every run.
    """

    number: int  # persona id as an int, or 90000000 + k for anonymous people
    is_persona: bool
    gender: str
    age_band: str
    country: str | None  # from the personas table when it has the column; None for anonymous
    anchor_seed: int

    @property
    def label(self) -> str:
        return f"{self.number:08d}"


@dataclass(frozen=True)
class PlannedImage:
    """One image to render, fully decided before any backend runs.

    The output must be exactly ``width`` x ``height``. ``variation`` holds the named per-image
    nuisance values (background, shirt colour, pose, lighting, ...); ``seed`` is this image's own
    derived seed for backends that sample noise.
    """

    number: int
    is_persona: bool
    kind: str  # "sensitive" | "generic" | "anonymous"
    image_idx: int
    width: int
    height: int
    variation: dict[str, Any]
    seed: int


class FaceBackend(Protocol):
    """Renders all planned images of one identity.

    ``render_identity`` returns one RGB image per entry of ``images``, in the same order, each of
    the planned size. The result must be a pure function of the arguments and the backend's
    construction options (determinism contract: same inputs, same pixels).
    """

    name: str

    def render_identity(
        self, look: dict[str, Any], identity: Identity, images: Sequence[PlannedImage]
    ) -> list[Image.Image]: ...


# name -> "module:Class"; imported lazily by get_backend.
BACKENDS: dict[str, str] = {
    "procedural": "salmu.face_backends.procedural:ProceduralFaceBackend",
    "diffusers": "salmu.face_backends.diffusers:DiffusersFaceBackend",
}


def backend_class(name: str) -> type:
    if name not in BACKENDS:
        raise ValueError(
            f"--backend {name!r}: unknown face backend; choose one of {sorted(BACKENDS)}"
        )
    module_name, _, class_name = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def get_backend(name: str, **options: Any) -> FaceBackend:
    """Instantiate a registered backend; ``options`` go to its constructor (model paths, ...)."""
    return backend_class(name)(**options)
