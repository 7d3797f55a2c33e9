"""Prompts of the ``diffusers`` face backend: a look and a planned image's variation in words.

The anchor prompt holds the stable look (demographics and every trait); a variant prompt adds the
image's shirt, background, expression, pose and light, translated from the variation the plan
already drew, plus a few words drawn from the image's own seed. Caption-relevant words come first,
since CLIP's text encoder reads 77 tokens at most.
"""

from __future__ import annotations

from typing import Any

from salmu.face_backends import Identity, PlannedImage
from salmu.looks import hair_phrase
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
