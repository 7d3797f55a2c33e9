"""open_clip's training transform, cut where its randomness ends.

Unlearning decodes and preprocesses images in worker threads, yet a seed must give the same
batches with workers as without. The transform's random crop draws from torch's global RNG, which
the methods draw from too, so those draws must stay on the calling thread, in the order the
transform would make them. ``SplitTransform.draw`` does only that (a RandomResizedCrop's
parameters, a few RNG calls); ``finish`` does the rest (crop, resize, tensor, normalise), which is
deterministic and runs anywhere. A transform that cannot be cut (another random step) runs whole
in ``draw``, on the calling thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Steps that draw nothing: safe in a worker, after the crop. By class name, so that open_clip's own
# wrappers (MaybeConvertMode, MaybeToTensor) need no import here.
DETERMINISTIC = {
    "MaybeConvertMode",
    "MaybeToTensor",
    "ToTensor",
    "PILToTensor",
    "ConvertImageDtype",
    "Normalize",
    "Resize",
    "CenterCrop",
    "ResizeKeepRatio",
    "CenterCropOrPad",
}


def _is_deterministic(step: Any) -> bool:
    return type(step).__name__ in DETERMINISTIC or getattr(step, "__name__", "") == (
        "_convert_to_rgb"
    )


class SplitTransform:
    """``finish(image, draw(image))`` is ``transform(image)``, bit for bit, given the same RNG."""

    def __init__(self, transform: Callable) -> None:
        from torchvision import transforms

        steps = list(getattr(transform, "transforms", []))
        self.transform = transform
        self.crop = None
        self.rest: list | None = None
        if steps and all(_is_deterministic(s) for s in steps):
            self.rest = steps  # nothing random: all of it in the worker
        elif (
            steps
            and isinstance(steps[0], transforms.RandomResizedCrop)
            and all(_is_deterministic(s) for s in steps[1:])
        ):
            self.crop, self.rest = steps[0], steps[1:]

    @property
    def parallel(self) -> bool:
        """Whether ``finish`` does the work (else ``draw`` ran the whole transform)."""
        return self.rest is not None

    def draw(self, image) -> Any:
        """The random part, on the calling thread, in batch order."""
        if self.rest is None:
            return self.transform(image)
        if self.crop is None:
            return None
        return self.crop.get_params(image, self.crop.scale, self.crop.ratio)

    def finish(self, image, drawn: Any):
        """The deterministic rest, given what ``draw`` returned."""
        if self.rest is None:
            return drawn
        if self.crop is not None:
            from torchvision.transforms import functional

            top, left, height, width = drawn
            image = functional.resized_crop(
                image,
                top,
                left,
                height,
                width,
                self.crop.size,
                self.crop.interpolation,
                antialias=self.crop.antialias,
            )
        for step in self.rest:
            image = step(image)
        return image
