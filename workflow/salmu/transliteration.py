"""Latin-script checks, ASCII folding and romanization of names (Cyrillic, Greek, Georgian,
Armenian, Hangul), for personas whose Faker locale writes names in another script.

The letter tables are data, not code: ``salmu/tables/transliteration.yaml``.
"""

from __future__ import annotations

import functools
import unicodedata
from importlib import resources

import yaml


@functools.cache
def tables() -> dict:
    text = resources.files("salmu").joinpath("tables/transliteration.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def is_latin(text: str) -> bool:
    """True when every letter is a Latin letter (accents allowed: "Zięcik", "Ó Treabhair")."""
    return all(not ch.isalpha() or unicodedata.name(ch, "").startswith("LATIN") for ch in text)


def ascii_fold(text: str) -> str:
    """Lower-case ASCII letters and digits only ("Zięcik" -> "ziecik"), for e-mail local parts."""
    special = tables()["ascii_special"]
    text = "".join(special.get(ch, ch) for ch in text.lower())
    text = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in text if ch.isascii() and ch.isalnum())


def _strip_marks(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFD", text) if not unicodedata.combining(ch))


def _translit_cyrillic(word: str) -> str:
    letters = tables()["cyrillic"]
    return "".join(letters.get(ch, ch) for ch in word.lower())


def _translit_greek(word: str) -> str:
    t = tables()
    word = _strip_marks(word.lower())
    out, i = [], 0
    while i < len(word):
        pair = word[i : i + 2]
        if i == 0 and pair in t["greek_initial"]:
            out.append(t["greek_initial"][pair])
            i += 2
        elif pair in t["greek_digraphs"]:
            out.append(t["greek_digraphs"][pair])
            i += 2
        else:
            out.append(t["greek"].get(word[i], word[i]))
            i += 1
    return "".join(out)


def _translit_georgian(word: str) -> str:
    letters = tables()["georgian"]
    return "".join(letters.get(ch, ch) for ch in word)


def _translit_armenian(word: str) -> str:
    letters = tables()["armenian"]
    word = word.lower().replace("ու", "u").replace("և", "ev")
    out = []
    for i, ch in enumerate(word):
        if i == 0 and ch == "ե":
            out.append("ye")
        elif i == 0 and ch == "ո":
            out.append("vo")
        else:
            out.append(letters.get(ch, ch))
    return "".join(out)


def _translit_hangul(word: str) -> str:
    t = tables()
    if word in t["korean_surnames"]:
        return t["korean_surnames"][word]
    parts = (t["hangul_initials"], t["hangul_medials"], t["hangul_finals"])
    out = []
    for ch in word:
        code = ord(ch) - 0xAC00
        if not 0 <= code < 11172:
            out.append(ch)
            continue
        indices = (code // 588, (code % 588) // 28, code % 28)
        for table, index in zip(parts, indices, strict=True):
            out.append("" if table[index] == "-" else table[index])
    return "".join(out)


TRANSLITERATORS = {
    "cyrillic": _translit_cyrillic,
    "greek": _translit_greek,
    "georgian": _translit_georgian,
    "armenian": _translit_armenian,
    "hangul": _translit_hangul,
}


def transliterate(text: str, script: str) -> str:
    """Romanize a name word by word and title-case it ("Альбина Киреева" -> "Al'Bina Kireeva")."""
    convert = TRANSLITERATORS[script]
    words = [convert(word) for word in text.split()]
    return " ".join(w[:1].upper() + w[1:] if script == "hangul" else w.title() for w in words)
