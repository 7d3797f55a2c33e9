"""The look vocabulary: the named traits a face is made of, and how a look reads in English.

Looks are backend-independent named values (``salmu.look_draws`` draws them, the procedural renderer
turns the palettes' colours into pixels, the diffusers backend and the captions turn the names
into words), so the trait names and their phrases live here, once.
"""

from __future__ import annotations

from typing import Any

from salmu.english import with_article

RGB = tuple[int, int, int]

# ---------------------------------------------------------------------------------------------
# Named trait palettes. Colours are chosen to stay distinct after down-scaling to 32 px.
# ---------------------------------------------------------------------------------------------

SKIN_TONES: dict[str, RGB] = {
    "porcelain": (255, 226, 212),
    "fair": (240, 196, 164),
    "olive": (200, 164, 112),
    "golden": (222, 162, 100),
    "tan": (184, 128, 86),
    "brown": (146, 96, 60),
    "dark brown": (104, 64, 40),
    "deep": (66, 42, 30),
}

HAIR_COLORS: dict[str, RGB] = {
    "black": (22, 20, 22),
    "dark brown": (64, 40, 26),
    "chestnut": (118, 64, 32),
    "auburn": (150, 48, 24),
    "copper red": (212, 92, 36),
    "golden blonde": (214, 168, 78),
    "platinum blonde": (236, 222, 168),
    "gray": (138, 138, 142),
    "white": (242, 242, 240),
    "dyed blue": (40, 92, 210),
    "dyed pink": (232, 96, 176),
    "dyed green": (46, 160, 92),
}

HAIR_STYLES = (
    "bald",
    "buzz cut",
    "short",
    "side part",
    "spiky",
    "curly",
    "afro",
    "mohawk",
    "bob",
    "long straight",
    "long wavy",
    "ponytail",
    "bun",
)

EYE_COLORS: dict[str, RGB] = {
    "dark brown": (58, 34, 20),
    "brown": (112, 70, 36),
    "hazel": (142, 112, 52),
    "green": (62, 134, 72),
    "blue": (56, 112, 200),
    "gray": (128, 140, 152),
}

# name -> (width scale, height scale, superellipse exponent, chin taper)
FACE_SHAPES: dict[str, tuple[float, float, float, float]] = {
    "oval": (1.00, 1.00, 2.0, 0.20),
    "round": (1.12, 0.94, 2.2, 0.06),
    "long": (0.86, 1.08, 2.1, 0.16),
    "square": (1.05, 0.97, 3.4, 0.08),
    "heart": (1.10, 1.00, 2.4, 0.52),
}

_BACKGROUND_BASE: dict[str, RGB] = {
    "white": (238, 238, 236),
    "light gray": (188, 188, 192),
    "charcoal": (62, 64, 70),
    "sky blue": (136, 184, 228),
    "navy": (36, 50, 96),
    "teal": (40, 128, 128),
    "sage green": (150, 174, 134),
    "forest green": (40, 84, 50),
    "cream": (236, 226, 198),
    "peach": (244, 194, 160),
    "lavender": (184, 170, 220),
    "maroon": (110, 36, 46),
    "mustard": (208, 170, 62),
    "brick red": (168, 70, 56),
}


def _mute(color: RGB, amount: float) -> RGB:
    return tuple(int(round(amount * 128 + (1 - amount) * c)) for c in color)


# Backgrounds are pulled 30% towards mid-gray: still clearly named colours, but a white or navy
# backdrop no longer outweighs the face in pixel space.
BACKGROUNDS: dict[str, RGB] = {k: _mute(v, 0.3) for k, v in _BACKGROUND_BASE.items()}

SHIRT_COLORS: dict[str, RGB] = {
    "white": (236, 236, 236),
    "black": (28, 28, 30),
    "gray": (128, 128, 130),
    "navy": (32, 44, 90),
    "royal blue": (40, 80, 200),
    "red": (200, 36, 40),
    "burgundy": (120, 24, 48),
    "green": (40, 140, 70),
    "olive": (110, 112, 52),
    "yellow": (236, 206, 60),
    "orange": (236, 128, 40),
    "purple": (112, 56, 160),
    "pink": (236, 150, 180),
    "beige": (210, 190, 150),
    "teal": (30, 130, 136),
}

EXPRESSIONS = ("neutral", "smile")

# Traits compared for distinctness: the ones most visible at 32 px.
# Keys of the `look` JSON column: per identity, then per image. Captions and splits read these.
IDENTITY_LOOK_KEYS = (
    "gender",
    "age_band",
    "skin_tone",
    "hair_color",
    "hair_style",
    "eye_color",
    "glasses",
    "beard",
)
IMAGE_LOOK_KEYS = ("background", "shirt_color")
DISTINCT_TRAITS = ("skin_tone", "hair_color", "hair_style", "glasses")

# Hair styles that are not adjectives ("buzz cut black hair" would be wrong); every other style
# ("short", "curly", "long wavy", ...) reads as "<style> <color> hair". {a} and {a_color} take an
# indefinite article in running text (captions) and none in a list of traits (prompts).
HAIR_PHRASES = {
    "bald": "{a}bald head",
    "buzz cut": "{a_color} buzz cut",
    "side part": "side-parted {color} hair",
    "afro": "{a_color} afro",
    "mohawk": "{a_color} mohawk",
    "bob": "{a_color} bob",
    "ponytail": "{color} hair in a ponytail",
    "bun": "{color} hair in a bun",
}


def hair_phrase(look: dict[str, Any], *, articles: bool) -> str:
    """The look's hair in words: "a black buzz cut" (``articles``) or "black buzz cut"."""
    style, color = str(look["hair_style"] or ""), str(look["hair_color"] or "")
    if style in HAIR_PHRASES:
        return HAIR_PHRASES[style].format(
            a="a " if articles else "",
            color=color,
            a_color=with_article(color) if articles else color,
        )
    return " ".join(p for p in (style, color, "hair") if p)
