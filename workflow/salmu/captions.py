"""Sensitive and generic captions for every image (docs/protocol.md §1.2).

Every image gets exactly one caption (``text``):
- kind ``sensitive``: one attribute (``data_field``) of its persona, written from the template bank
  in one of five linguistic styles ("Sayo Abdallah lives in Uyo", "Uyo is where Sayo Abdallah makes
  her home"). Within an identity, the images sorted by ``image_idx`` take the attributes round-robin
  over a per-identity seeded shuffle, so each (identity, attribute) pair gets n/len(attributes)
  images, +-1: an association is always learned from several images.
- kind ``generic`` / ``anonymous``: a description of how the person looks, with no name or PII.
Every image also gets that generic description as ``generic_text`` (the official
``sensitive_set_generic_captions.json``).

Paraphrasing (the paper's Gemma3-12B step) is pluggable (salmu/paraphrase.py): ``--paraphrase none``
(the default) keeps the template captions; ``--paraphrase transformers --paraphrase-model <hub id or
dir>`` rewrites each sensitive caption in its style with a causal LM and keeps a rewrite only if it
passes the guard rails (name and value verbatim, one line, not too long); otherwise the template
caption stays. Columns and row order are the same for every backend.
"""

from __future__ import annotations

import argparse
import json
import string
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from salmu import paraphrase
from salmu.english import english_join, with_article
from salmu.io import read_parquet, read_yaml, write_json, write_parquet
from salmu.looks import IDENTITY_LOOK_KEYS, IMAGE_LOOK_KEYS, hair_phrase
from salmu.sections.captions import CaptionsSettings
from salmu.seeding import stream

STYLES = ("plain", "formal", "records", "conversational", "inverted")
KINDS = ("sensitive", "generic", "anonymous")
COLUMNS = (
    "file_name",
    "identity_id",
    "kind",
    "data_field",
    "value",
    "name",
    "style",
    "text",
    "generic_text",
)
LOOK_KEYS = IDENTITY_LOOK_KEYS + IMAGE_LOOK_KEYS
# Pronoun placeholders keyed by the female form; capitalised keys give capitalised pronouns.
PRONOUNS = {
    "female": {"she": "she", "her": "her", "her_obj": "her", "hers": "hers", "herself": "herself"},
    "male": {"she": "he", "her": "his", "her_obj": "him", "hers": "his", "herself": "himself"},
}
VALUE_FIELDS = ("value", "a_value", "A_value")
SENSITIVE_FIELDS = frozenset(
    ("name", *VALUE_FIELDS, *PRONOUNS["female"], *(k.capitalize() for k in PRONOUNS["female"]))
)
GENERIC_FIELDS = frozenset(("a_person", "features", "details", "a_shirt_color", "a_background"))


# --------------------------------------------------------------------------------------------
# Template bank


@dataclass(frozen=True)
class TemplateBank:
    attributes: dict[str, dict[str, tuple[str, ...]]]  # data_field -> style -> templates
    generic: tuple[str, ...]


def template_fields(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}


def _check_template(template: object, allowed: frozenset[str], where: str) -> str:
    if not isinstance(template, str) or not template.strip():
        raise ValueError(f"{where}: templates must be non-empty strings, got {template!r}")
    try:
        fields = template_fields(template)
    except ValueError as err:
        raise ValueError(f"{where}: malformed template {template!r} ({err})") from None
    unknown = sorted(fields - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown placeholder(s) {unknown} in {template!r}")
    return template


def load_templates(path: str | Path) -> TemplateBank:
    """Parse and validate the template bank (format: comments of resources/caption_templates.yaml)."""
    path = Path(path)
    data = read_yaml(path, "template bank")
    # Bad input files raise ValueError (not TypeError) so cli.py prints them as one line.
    if not isinstance(data, dict) or not isinstance(data.get("attributes"), dict):
        raise ValueError(f"{path}: expected a top-level 'attributes:' mapping")  # noqa: TRY004
    attributes = {}
    for field, styles in data["attributes"].items():
        where = f"{path}: attribute {field!r}"
        if not isinstance(styles, dict):
            raise ValueError(f"{where}: expected style -> templates mapping")  # noqa: TRY004
        missing = [s for s in STYLES if not styles.get(s)]
        if missing:
            raise ValueError(f"{where}: missing style(s) {missing}; every attribute needs {STYLES}")
        attributes[field] = {}
        for style in STYLES:
            templates = styles[style]
            templates = [templates] if isinstance(templates, str) else templates
            checked = []
            for template in templates:
                template = _check_template(template, SENSITIVE_FIELDS, f"{where}, style {style}")
                fields = template_fields(template)
                # The caption must state the association it teaches: name and value.
                if "name" not in fields or not fields & set(VALUE_FIELDS):
                    raise ValueError(
                        f"{where}, style {style}: {template!r} needs {{name}} and one of "
                        f"{{value}}, {{a_value}}, {{A_value}}"
                    )
                checked.append(template)
            attributes[field][style] = tuple(checked)
    generic = data.get("generic")
    if not isinstance(generic, list) or not generic:
        raise ValueError(f"{path}: expected a non-empty 'generic:' list of templates")
    generic = tuple(_check_template(t, GENERIC_FIELDS, f"{path}: generic") for t in generic)
    return TemplateBank(attributes=attributes, generic=generic)


# --------------------------------------------------------------------------------------------
# Sensitive captions


def display_value(field: str, raw: str) -> str:
    """The value as the caption writes it; IBANs in groups of four, as in the release."""
    if field == "iban":
        compact = raw.replace(" ", "")
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
    return raw


def render_sensitive(template: str, name: str, gender: str, value: str) -> str:
    if gender not in PRONOUNS:
        raise ValueError(
            f"persona {name!r}: gender must be one of {sorted(PRONOUNS)}, got {gender!r}"
        )
    pronouns = PRONOUNS[gender]
    a_value = with_article(value)
    fields = {
        "name": name,
        "value": value,
        "a_value": a_value,
        "A_value": a_value[:1].upper() + a_value[1:],
        **pronouns,
        **{k.capitalize(): v.capitalize() for k, v in pronouns.items()},
    }
    # No automatic capitalisation: "ffossi@example.com is ..." must keep the value verbatim.
    return template.format(**fields)


def assign_fields(n_images: int, identity_id: str, attributes: list[str], seed: int) -> list[str]:
    """Attributes for an identity's sensitive images (in image_idx order): round-robin over a
    per-identity seeded shuffle, so every (identity, attribute) pair gets n/len images, +-1."""
    order = stream(seed, "captions", "fields", identity_id).permutation(len(attributes))
    return [attributes[order[k % len(attributes)]] for k in range(n_images)]


def pick_template(bank: TemplateBank, field: str, file_name: str, seed: int) -> tuple[str, str]:
    """(style, template), seeded per image so captions do not depend on row order."""
    rng = stream(seed, "captions", "style", file_name)
    style = STYLES[int(rng.integers(len(STYLES)))]
    templates = bank.attributes[field][style]
    return style, templates[int(rng.integers(len(templates)))]


# --------------------------------------------------------------------------------------------
# Generic captions


def _flag(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1")
    return bool(value)


def parse_look(raw: str | None, file_name: str) -> dict:
    try:
        look = json.loads(raw) if raw is not None else None
    except json.JSONDecodeError as err:
        raise ValueError(f"faces: {file_name}: look is not valid JSON ({err})") from None
    if not isinstance(look, dict):
        raise ValueError(f"faces: {file_name}: look must be a JSON object, got {raw!r}")  # noqa: TRY004
    missing = [k for k in LOOK_KEYS if k not in look]
    if missing:
        raise ValueError(f"faces: {file_name}: look lacks key(s) {missing}")
    return look


def describe_look(look: dict) -> dict[str, str]:
    """Phrases for the generic templates, only from appearance (never identity or PII)."""
    noun = {"female": "woman", "male": "man"}.get(str(look["gender"]), "person")
    person = " ".join(p for p in (str(look["age_band"] or ""), noun) if p)
    hair = hair_phrase(look, articles=True)
    extras = (["a beard"] if _flag(look["beard"]) else []) + (
        ["glasses"] if _flag(look["glasses"]) else []
    )
    skin = f"{look['skin_tone']} skin" if look["skin_tone"] else ""
    eyes = f"{look['eye_color']} eyes" if look["eye_color"] else ""
    return {
        "a_person": with_article(person),
        "features": english_join([hair, *extras]),
        "details": english_join([skin, eyes, hair, *extras]),
        "a_shirt_color": with_article(str(look["shirt_color"])),
        "a_background": with_article(str(look["background"])),
    }


def generic_caption(bank: TemplateBank, look: dict, file_name: str, seed: int) -> str:
    rng = stream(seed, "captions", "generic", file_name)
    template = bank.generic[int(rng.integers(len(bank.generic)))]
    return template.format(**describe_look(look))


# --------------------------------------------------------------------------------------------
# All captions


def check_attributes(
    attributes: list[str], bank: TemplateBank, templates_path, persona_columns: list[str]
) -> list[str]:
    """Validated attributes, sorted so the flag order does not change the assignment."""
    dupes = sorted({a for a in attributes if attributes.count(a) > 1})
    if dupes:
        raise ValueError(f"--attributes: duplicated attribute(s) {dupes}")
    for field in attributes:
        if field not in bank.attributes:
            raise ValueError(
                f"--attributes: {field!r} has no templates in {templates_path} "
                f"(has: {', '.join(sorted(bank.attributes))})"
            )
        if field not in persona_columns:
            raise ValueError(f"--attributes: {field!r} is not a persona column ({persona_columns})")
    return sorted(attributes)


def check_faces(faces: pl.DataFrame, personas: dict[str, dict], source: str) -> None:
    dupes = faces.filter(pl.col("file_name").is_duplicated())["file_name"].unique().sort()
    if len(dupes):
        raise ValueError(f"{source}: duplicated file_name(s) {dupes.to_list()[:5]}")
    bad_kinds = sorted(set(faces["kind"].to_list()) - set(KINDS))
    if bad_kinds:
        raise ValueError(f"{source}: unknown kind(s) {bad_kinds}; expected one of {KINDS}")
    for file_name, identity_id, kind in faces.select("file_name", "identity_id", "kind").rows():
        if kind == "anonymous" and identity_id is not None:
            raise ValueError(
                f"{source}: {file_name}: anonymous image with identity_id {identity_id}"
            )
        if kind == "sensitive" and identity_id is None:
            raise ValueError(f"{source}: {file_name}: sensitive image without identity_id")
        if identity_id is not None and identity_id not in personas:
            raise ValueError(
                f"{source}: {file_name}: identity_id {identity_id!r} is not in the personas"
            )


def build_captions(
    faces: pl.DataFrame,
    personas: pl.DataFrame,
    bank: TemplateBank,
    attributes: list[str],
    seed: int,
    source: str = "faces",
) -> pl.DataFrame:
    """One caption per image; columns COLUMNS, sorted by file_name."""
    people = {row["identity_id"]: row for row in personas.iter_rows(named=True)}
    check_faces(faces, people, source)
    if not attributes:
        raise ValueError("--attributes: at least one attribute type is needed")
    faces = faces.sort("file_name")

    # Attribute per sensitive image: identity by identity, in image_idx order.
    field_of: dict[str, str] = {}
    sensitive = faces.filter(pl.col("kind") == "sensitive").sort(
        ["identity_id", "image_idx", "file_name"]
    )
    for (identity_id,), group in sensitive.group_by("identity_id", maintain_order=True):
        names = group["file_name"].to_list()
        field_of.update(zip(names, assign_fields(len(names), identity_id, attributes, seed)))

    rows = []
    for file_name, identity_id, kind, look in faces.select(
        "file_name", "identity_id", "kind", "look"
    ).rows():
        generic = generic_caption(bank, parse_look(look, file_name), file_name, seed)
        person = people.get(identity_id)
        row = {
            "file_name": file_name,
            "identity_id": identity_id,
            "kind": kind,
            "data_field": None,
            "value": None,
            "name": person["name"] if person else None,
            "style": None,
            "text": generic,
            "generic_text": generic,
        }
        if kind == "sensitive":
            field = field_of[file_name]
            if person.get(field) in (None, ""):
                raise ValueError(f"personas: identity {identity_id} has no {field!r} value")
            value = display_value(field, str(person[field]))
            style, template = pick_template(bank, field, file_name, seed)
            text = render_sensitive(template, person["name"], person["gender"], value)
            row.update(data_field=field, value=value, style=style, text=text)
        rows.append(row)
    return pl.DataFrame(rows, schema={c: pl.String for c in COLUMNS})


# --------------------------------------------------------------------------------------------
# Paraphrasing


def apply_paraphrases(
    captions: pl.DataFrame, generate: paraphrase.Generate, settings: paraphrase.Settings
) -> tuple[pl.DataFrame, paraphrase.Stats]:
    """Rewrite the sensitive captions with a paraphrase backend; rows the guard rejects keep their
    template caption. Only ``text`` changes (``generic_text`` and the other columns stay)."""
    is_sensitive = captions["kind"] == "sensitive"
    rows = captions.filter(is_sensitive).to_dicts()
    texts, stats = paraphrase.paraphrase_rows(
        rows,
        generate,
        settings.prompt,
        settings.max_length_ratio,
        dedupe=settings.temperature == 0,
    )
    new_text = dict(zip((r["file_name"] for r in rows), texts))
    column = [
        new_text.get(name, text) for name, text in zip(captions["file_name"], captions["text"])
    ]
    return captions.with_columns(pl.Series("text", column, dtype=pl.String)), stats


def paraphrase_settings(args: argparse.Namespace) -> paraphrase.Settings:
    return paraphrase.Settings(
        model=args.paraphrase_model,
        device=args.paraphrase_device,
        threads=args.paraphrase_threads,
        batch_size=args.paraphrase_batch_size,
        max_new_tokens=args.paraphrase_max_new_tokens,
        temperature=args.paraphrase_temperature,
        top_p=args.paraphrase_top_p,
        dtype=args.paraphrase_dtype,
        chat_template=args.paraphrase_chat_template,
        prompt=paraphrase.load_prompt(args.paraphrase_prompt),
        max_length_ratio=args.paraphrase_max_length_ratio,
        seed=args.seed,
    )


# --------------------------------------------------------------------------------------------
# CLI


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--personas", required=True, help="personas.parquet from `salmu personas`")
    parser.add_argument("--faces", required=True, help="faces.parquet from `salmu faces`")
    CaptionsSettings.add_arguments(parser)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument(
        "--paraphrase-threads",
        type=int,
        default=0,
        help="torch.set_num_threads for generation (0: leave torch's default)",
    )
    parser.add_argument(
        "--paraphrase-report",
        default=None,
        help="optional JSON report: settings, accepted/fallback counts, acceptance rate",
    )
    parser.add_argument("--out", required=True, help="captions.parquet")


def run(args: argparse.Namespace) -> None:
    # Every flag is checked before any input is read or any model is loaded.
    settings = paraphrase_settings(args)
    paraphrase.check_settings(args.paraphrase, settings)
    bank = load_templates(args.templates)
    personas = read_parquet(args.personas, ["identity_id", "name", "gender"])
    attributes = check_attributes(args.attributes, bank, args.templates, personas.columns)
    # Column projection: the captions never need the image bytes.
    faces = read_parquet(
        args.faces, ["file_name", "identity_id", "kind", "image_idx", "look"], only=True
    )
    captions = build_captions(faces, personas, bank, attributes, args.seed, source=str(args.faces))
    generate = paraphrase.load_backend(args.paraphrase, settings)
    stats = None
    if generate is not None:
        captions, stats = apply_paraphrases(captions, generate, settings)
    write_parquet(captions, args.out)
    if args.paraphrase_report:
        write_json(paraphrase.report(args.paraphrase, settings, stats), args.paraphrase_report)
    counts = captions.group_by("kind").len().sort("kind").rows()
    print(json.dumps(dict(counts)))
    if stats is not None:
        print(stats.summary())
