"""English for generated text: indefinite articles and lists ("a, b and c")."""

from __future__ import annotations


def indefinite_article(phrase: str) -> str:
    """ "a" or "an" by sound: "an engineer", "a university lecturer", "an IT trainer", "an hour"."""
    word = phrase.split()[0] if phrase.split() else ""
    if len(word) > 1 and word.isupper():  # acronyms are spelled out: an IT..., a TEFL...
        return "an" if word[0] in "AEFHILMNORSX" else "a"
    lower = word.lower()
    if lower.startswith(("uni", "use", "usu", "uro", "eu", "one", "once")):
        return "a"
    if lower.startswith(("hour", "honest", "honor", "honour", "heir")):
        return "an"
    return "an" if lower[:1] in ("a", "e", "i", "o", "u") else "a"


def with_article(phrase: str) -> str:
    return f"{indefinite_article(phrase)} {phrase}"


def english_join(items: list[str]) -> str:
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"
