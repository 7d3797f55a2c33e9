"""Each identity's stable look and each image's variation, drawn seeded from named values.

A look is a dict of named traits (``salmu.looks`` holds the vocabulary); no two identities share
the most visible ones, and of a few free prior draws the one that renders most differently from
everyone so far wins. A variation is the per-image nuisance (pose, framing, lighting, background,
shirt, noise), small on purpose so that identity dominates. Both are backend-independent: the
procedural renderer draws them, the diffusers backend turns them into prompts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from salmu.looks import (
    BACKGROUNDS,
    DISTINCT_TRAITS,
    EXPRESSIONS,
    EYE_COLORS,
    FACE_SHAPES,
    HAIR_COLORS,
    RGB,
    SHIRT_COLORS,
    SKIN_TONES,
)
from salmu.seeding import stream

GENDERS = ("female", "male")
AGE_BANDS = ("young", "middle-aged", "older")

# Anonymous people are numbered from here so their file names never collide with persona ids.
ANONYMOUS_BASE = 90_000_000

# Prior weights. Style depends on gender, hair colour on age: plausible people, while the
# distinctness search below still spreads identities over the whole trait space.
_STYLE_WEIGHTS: dict[str, dict[str, float]] = {
    "female": {
        "buzz cut": 0.3,
        "short": 1.5,
        "side part": 0.5,
        "spiky": 0.2,
        "curly": 1.5,
        "afro": 1.0,
        "mohawk": 0.1,
        "bob": 2.0,
        "long straight": 2.5,
        "long wavy": 2.0,
        "ponytail": 2.0,
        "bun": 1.5,
    },
    "male": {
        "bald": 1.0,
        "buzz cut": 2.0,
        "short": 2.5,
        "side part": 2.0,
        "spiky": 1.0,
        "curly": 1.5,
        "afro": 1.0,
        "mohawk": 0.4,
        "bob": 0.1,
        "long straight": 0.5,
        "long wavy": 0.3,
        "ponytail": 0.4,
        "bun": 0.4,
    },
}
_HAIR_WEIGHTS: dict[str, dict[str, float]] = {
    "young": {
        "black": 3,
        "dark brown": 3,
        "chestnut": 2,
        "auburn": 1.5,
        "copper red": 1,
        "golden blonde": 2,
        "platinum blonde": 1,
        "dyed blue": 0.6,
        "dyed pink": 0.6,
        "dyed green": 0.4,
    },
    "middle-aged": {
        "black": 3,
        "dark brown": 3,
        "chestnut": 2,
        "auburn": 1.2,
        "copper red": 0.8,
        "golden blonde": 1.5,
        "platinum blonde": 0.7,
        "gray": 1.5,
        "white": 0.2,
        "dyed blue": 0.15,
        "dyed pink": 0.15,
        "dyed green": 0.1,
    },
    "older": {
        "black": 1,
        "dark brown": 1,
        "chestnut": 0.5,
        "auburn": 0.3,
        "copper red": 0.2,
        "golden blonde": 0.3,
        "platinum blonde": 1,
        "gray": 4,
        "white": 3,
        "dyed blue": 0.05,
        "dyed pink": 0.05,
        "dyed green": 0.05,
    },
}
_GLASSES_P = {"young": 0.3, "middle-aged": 0.4, "older": 0.55}
_BEARD_P = 0.45
# A new identity takes the most different of this many prior draws (see assign_looks).
_LOOK_CANDIDATES = 4
_MAX_LOOK_ATTEMPTS = 200


def _weighted(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _pick(rng: np.random.Generator, names) -> str:
    names = list(names)
    return names[int(rng.integers(len(names)))]


# ---------------------------------------------------------------------------------------------
# Identity looks
# ---------------------------------------------------------------------------------------------


def draw_look(rng: np.random.Generator, gender: str, age_band: str) -> dict[str, Any]:
    """One prior draw of an identity's stable traits (named values only)."""
    if gender not in GENDERS:
        raise ValueError(f"gender {gender!r}: expected one of {list(GENDERS)}")
    if age_band not in AGE_BANDS:
        raise ValueError(f"age_band {age_band!r}: expected one of {list(AGE_BANDS)}")
    style_weights = dict(_STYLE_WEIGHTS[gender])
    if gender == "male" and age_band == "older":
        style_weights["bald"] = 3.0  # pattern baldness is common in older men
    if age_band != "young":
        style_weights["mohawk"] = style_weights.get("mohawk", 0) * 0.25
    return {
        "gender": gender,
        "age_band": age_band,
        "skin_tone": _pick(rng, SKIN_TONES),
        "hair_color": _weighted(rng, _HAIR_WEIGHTS[age_band]),
        "hair_style": _weighted(rng, style_weights),
        "eye_color": _pick(rng, EYE_COLORS),
        "face_shape": _pick(rng, FACE_SHAPES),
        "glasses": bool(rng.random() < _GLASSES_P[age_band]),
        "beard": bool(gender == "male" and rng.random() < _BEARD_P),
    }


def look_key(look: dict[str, Any]) -> tuple:
    """The most visible traits; no two identities may share this tuple."""
    return tuple(look[t] for t in DISTINCT_TRAITS)


def _color_gap(a: RGB, b: RGB) -> float:
    return float(np.linalg.norm(np.subtract(a, b, dtype=np.float64))) / 255.0


def look_distance(a: dict[str, Any], b: dict[str, Any]) -> float:
    """How differently two looks render at low resolution (bigger = easier to tell apart)."""
    # Colour traits use pixel distance: "fair" vs "porcelain" is a much smaller change than
    # "fair" vs "deep", which a plain equal/unequal count would miss.
    return (
        2.0 * _color_gap(SKIN_TONES[a["skin_tone"]], SKIN_TONES[b["skin_tone"]])
        + 2.0 * _color_gap(HAIR_COLORS[a["hair_color"]], HAIR_COLORS[b["hair_color"]])
        + 1.0 * (a["hair_style"] != b["hair_style"])
        + 1.0 * (a["glasses"] != b["glasses"])
        + 0.5 * (a["beard"] != b["beard"])
        + 0.3 * (a["face_shape"] != b["face_shape"])
        + 0.1 * (a["eye_color"] != b["eye_color"])
    )


def assign_looks(people: list[tuple[int, str, str]], seed: int) -> dict[int, dict[str, Any]]:
    """Give each ``(identity_number, gender, age_band)`` a look, in the given order.

    Draws come from ``stream(seed, "faces", "look", number, attempt)``; candidates whose
    distinct-trait tuple is taken are skipped, and of the first few free candidates the one farthest
    from every look assigned so far wins. Earlier people never depend on later ones, so anonymous
    people listed after the personas do not change the personas' looks.
    """
    looks: dict[int, dict[str, Any]] = {}
    used: set[tuple] = set()
    for number, gender, age_band in people:
        candidates: list[dict[str, Any]] = []
        for attempt in range(_MAX_LOOK_ATTEMPTS):
            look = draw_look(stream(seed, "faces", "look", number, attempt), gender, age_band)
            if look_key(look) not in used:
                candidates.append(look)
                if len(candidates) == _LOOK_CANDIDATES:
                    break
        if not candidates:
            raise ValueError(
                f"identity {number:08d}: no distinct look left after {_MAX_LOOK_ATTEMPTS} draws "
                f"(too many identities for the trait space {DISTINCT_TRAITS})"
            )
        best = max(
            candidates,
            key=lambda c: min((look_distance(c, other) for other in looks.values()), default=0.0),
        )
        looks[number] = best
        used.add(look_key(best))
    return looks


def anonymous_people(count: int, seed: int) -> list[tuple[int, str, str]]:
    """Anonymous people (not personas): numbers 90000000 + k, gender and age band drawn seeded."""
    people = []
    for k in range(count):
        rng = stream(seed, "faces", "anonymous", k)
        people.append((ANONYMOUS_BASE + k, _pick(rng, GENDERS), _pick(rng, AGE_BANDS)))
    return people


# ---------------------------------------------------------------------------------------------
# Per-image variation
# ---------------------------------------------------------------------------------------------


def draw_variation(rng: np.random.Generator) -> dict[str, Any]:
    """Per-image nuisance: pose, framing, lighting, background, shirt, expression, noise.

    Ranges are small on purpose: identity must dominate what changes between two images.
    """
    return {
        "background": _pick(rng, BACKGROUNDS),
        "background_shade": float(rng.uniform(0.6, 1.0)),  # far end of the gradient
        "gradient_angle": float(rng.uniform(0.0, 360.0)),
        "shirt_color": _pick(rng, SHIRT_COLORS),
        "expression": _pick(rng, EXPRESSIONS),
        "zoom": float(rng.uniform(0.9, 1.1)),
        "offset_x": float(rng.uniform(-0.06, 0.06)),  # fractions of the short side
        "offset_y": float(rng.uniform(-0.05, 0.05)),
        "tilt": float(rng.uniform(-9.0, 9.0)),  # degrees
        "yaw": float(rng.uniform(-0.14, 0.14)),  # features shift sideways, a cheap head turn
        "brightness": float(rng.uniform(0.85, 1.15)),
        "contrast": float(rng.uniform(0.85, 1.15)),
        "tint": [float(t) for t in rng.uniform(-0.06, 0.06, size=3)],
        "light_angle": float(rng.uniform(0.0, 360.0)),
        "light_strength": float(rng.uniform(0.0, 0.15)),
        "noise_sigma": float(rng.uniform(0.0, 4.0)),
        "noise_seed": int(rng.integers(0, 2**31 - 1)),
    }
