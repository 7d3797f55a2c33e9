"""The stage's inputs: the faces table, the personas' demographics, the zero-shot prompts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from salmu.face_filter.decisions import add_person
from salmu.io import read_parquet, read_yaml, require_columns

KINDS = ("sensitive", "generic", "anonymous")
REQUIRED_COLUMNS = ("file_name", "identity_id", "kind", "image_idx", "image", "look")

DEMOGRAPHIC_CLASSES: dict[str, tuple[str, ...]] = {
    "gender": ("female", "male"),
    "age_band": ("young", "middle-aged", "older"),
}
DEFAULT_PROMPTS: dict[str, dict[str, list[str]]] = {
    "gender": {"female": ["a photo of a woman."], "male": ["a photo of a man."]},
    "age_band": {
        "young": ["a photo of a young person."],
        "middle-aged": ["a photo of a middle-aged person."],
        "older": ["a photo of an old person."],
    },
}


def load_faces(path: str | Path, allow_empty: bool = False) -> pl.DataFrame:
    """The faces table without its images (read in batches when needed), validated, with the
    derived ``person`` column appended last. A part of the table may be empty."""
    require_columns(path, REQUIRED_COLUMNS)
    frame = read_parquet(path, columns=[c for c in REQUIRED_COLUMNS if c != "image"], only=True)
    if frame.height == 0 and not allow_empty:
        raise ValueError(f"{path}: no images")
    bad_kind = sorted(set(frame["kind"].to_list()) - set(KINDS), key=str)
    if bad_kind:
        raise ValueError(f"{path}: kind {bad_kind[0]!r} not in {list(KINDS)}")
    inconsistent = frame.filter((pl.col("kind") == "anonymous") != pl.col("identity_id").is_null())
    if inconsistent.height:
        raise ValueError(
            f"{path}: {inconsistent['file_name'][0]}: identity_id must be null exactly for "
            "kind 'anonymous'"
        )
    if frame["file_name"].n_unique() != frame.height:
        raise ValueError(f"{path}: file_name values are not unique")
    if frame["image_idx"].null_count():
        raise ValueError(f"{path}: image_idx has nulls")
    return add_person(frame, str(path))


def load_prompts(path: str | Path | None) -> dict[str, dict[str, list[str]]]:
    """``DEFAULT_PROMPTS``, with the attributes a YAML/JSON file names replaced by its prompts.

    File layout: ``{attribute: {class: prompt or [prompts]}}``; every class of an attribute it
    names must be present (gender: female, male; age_band: young, middle-aged, older).
    """
    prompts = {
        attr: {c: list(p) for c, p in classes.items()} for attr, classes in DEFAULT_PROMPTS.items()
    }
    if path is None:
        return prompts
    data = read_yaml(path, "prompts file")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping attribute -> class -> prompts")
    for attribute, classes in data.items():
        if attribute not in DEMOGRAPHIC_CLASSES:
            raise ValueError(f"{path}: attribute {attribute!r} not in {list(DEMOGRAPHIC_CLASSES)}")
        expected = DEMOGRAPHIC_CLASSES[attribute]
        if not isinstance(classes, dict) or set(classes) != set(expected):
            raise ValueError(f"{path}: {attribute}: expected the classes {list(expected)}")
        parsed = {}
        for name in expected:
            texts = classes[name]
            texts = [texts] if isinstance(texts, str) else texts
            if (
                not isinstance(texts, list)
                or not texts
                or not all(isinstance(t, str) and t.strip() for t in texts)
            ):
                raise ValueError(f"{path}: {attribute}.{name}: expected a non-empty prompt list")
            parsed[name] = texts
        prompts[attribute] = parsed
    return prompts


def expected_demographics(
    faces: pl.DataFrame, personas_path: str | Path, attributes: Sequence[str], faces_path: str
) -> dict[str, list[str]]:
    """Per attribute, each row's expected class: the persona's, or the anonymous look's."""
    personas = read_parquet(personas_path, columns=["identity_id", *attributes])
    table = {row["identity_id"]: row for row in personas.iter_rows(named=True)}
    out: dict[str, list[str]] = {a: [] for a in attributes}
    for file_name, ident, look in faces.select("file_name", "identity_id", "look").iter_rows():
        if ident is not None:
            if ident not in table:
                raise ValueError(f"{personas_path}: no persona {ident} (needed by {faces_path})")
            source, values = str(personas_path), table[ident]
        else:
            source = f"{faces_path}: {file_name}: look"
            try:
                values = json.loads(look)
            except (TypeError, json.JSONDecodeError):
                raise ValueError(f"{source}: not valid JSON") from None
        for attribute in attributes:
            value = values.get(attribute) if isinstance(values, dict) else None
            if value not in DEMOGRAPHIC_CLASSES[attribute]:
                raise ValueError(
                    f"{source}: {attribute} {value!r} not in {list(DEMOGRAPHIC_CLASSES[attribute])}"
                )
            out[attribute].append(value)
    return out
