"""salmu captions: one caption per image, balanced attributes, generic captions without PII."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from salmu import captions, cli, english, personas
from salmu.io import read_parquet, write_parquet

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "resources" / "caption_templates.yaml"
ATTRIBUTES = ["city", "job", "blood_type", "phone_number", "email", "iban"]
ALL_ATTRIBUTES = [*ATTRIBUTES, "credit_card", "passport"]
PER_IDENTITY = 14  # not a multiple of 6: the balance must hold to +-1


def look(i: int, j: int) -> str:
    # The faces stage's vocabulary (salmu/faces.py), per identity i and image j.
    return json.dumps(
        {
            "gender": ["female", "male"][i % 2],
            "age_band": ["young", "middle-aged", "older"][i % 3],
            "skin_tone": ["porcelain", "olive", "dark brown"][i % 3],
            "hair_color": ["auburn", "black", "golden blonde", "gray"][i % 4],
            "hair_style": ["long wavy", "buzz cut", "bald", "ponytail", "afro"][i % 5],
            "eye_color": ["hazel", "blue"][i % 2],
            "glasses": bool(i % 2),
            "beard": i % 4 == 1,
            "background": ["sky blue", "olive", "navy", "white"][j % 4],
            "shirt_color": ["orange", "red", "teal"][j % 3],
        },
        sort_keys=True,
    )


def make_faces(identity_ids: list[str], n_anonymous: int = 3) -> pl.DataFrame:
    rows = []

    def add(identity, number, idx, kind):
        rows.append(
            {
                "file_name": f"{number:08d}_{idx:03d}_ar-1.00.jpg",
                "identity_id": identity,
                "kind": kind,
                "image_idx": idx,
                "aspect": 1.0,
                "width": 8,
                "height": 8,
                "image": b"\xff\xd8jpeg",
                "look": look(number, idx),
            }
        )

    for identity in identity_ids:
        for idx in range(PER_IDENTITY):
            add(identity, int(identity), idx, "sensitive")
        for idx in range(PER_IDENTITY, PER_IDENTITY + 2):
            add(identity, int(identity), idx, "generic")
    for k in range(n_anonymous):
        for idx in range(2):
            add(None, 90000000 + k, idx, "anonymous")
    # Row order must not matter: shuffle it deterministically.
    return pl.DataFrame(rows).sort("look", "file_name", descending=[False, True])


@pytest.fixture(scope="module")
def people() -> pl.DataFrame:
    table = personas.load_locale_table(ROOT / "resources" / "locales.yaml")
    specs = personas.resolve_locales(["en_US", "fr_FR", "ru_RU", "zh_CN"], table, "table")
    return personas.generate_personas(6, specs, ["example.com"], seed=5)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, people):
    tmp = tmp_path_factory.mktemp("inputs")
    write_parquet(people, tmp / "personas.parquet")
    write_parquet(make_faces(people["identity_id"].to_list()), tmp / "faces.parquet")
    return tmp / "personas.parquet", tmp / "faces.parquet"


def run_cli(inputs, out: Path, *extra: str, attributes=ATTRIBUTES) -> int:
    personas_path, faces_path = inputs
    argv = ["captions", "--personas", str(personas_path), "--faces", str(faces_path)]
    argv += ["--templates", str(TEMPLATES), "--attributes", *attributes, "--seed", "3"]
    return cli.main([*argv, "--out", str(out), *extra])


@pytest.fixture(scope="module")
def result(inputs, tmp_path_factory) -> pl.DataFrame:
    out = tmp_path_factory.mktemp("out") / "captions.parquet"
    assert run_cli(inputs, out) == 0
    return read_parquet(out)


def test_layout_one_caption_per_image(result, inputs):
    faces = read_parquet(inputs[1])
    assert tuple(result.columns) == captions.COLUMNS
    assert result["file_name"].to_list() == sorted(faces["file_name"].to_list())
    assert result["text"].null_count() == 0 and result["generic_text"].null_count() == 0
    assert result.filter(pl.col("kind") == "anonymous")["name"].null_count() == 6
    non_sensitive = result.filter(pl.col("kind") != "sensitive")
    for column in ("data_field", "value", "style"):
        assert non_sensitive[column].null_count() == non_sensitive.height
    assert (non_sensitive["text"] == non_sensitive["generic_text"]).all()


def test_sensitive_captions_state_name_and_value(result, people):
    by_id = {row["identity_id"]: row for row in people.iter_rows(named=True)}
    sensitive = result.filter(pl.col("kind") == "sensitive")
    assert sensitive.height == people.height * PER_IDENTITY
    for row in sensitive.iter_rows(named=True):
        person = by_id[row["identity_id"]]
        assert row["data_field"] in ATTRIBUTES and row["style"] in captions.STYLES
        assert row["name"] == person["name"] and row["name"] in row["text"]
        assert row["value"] == captions.display_value(row["data_field"], person[row["data_field"]])
        assert row["value"] in row["text"]
    assert set(sensitive["style"]) == set(captions.STYLES)


def test_fields_are_balanced_per_identity(result):
    sensitive = result.filter(pl.col("kind") == "sensitive")
    for _, group in sensitive.group_by("identity_id"):
        counts = Counter(group["data_field"].to_list())
        assert set(counts) == set(ATTRIBUTES)
        assert max(counts.values()) - min(counts.values()) <= 1


def test_generic_captions_carry_no_name_or_pii(result, people):
    secrets = [v for col in ["name", *ALL_ATTRIBUTES] for v in people[col].to_list()]
    secrets += [part for name in people["name"] for part in name.split() if len(part) > 2]
    for text in result["generic_text"]:
        assert text.startswith(("a ", "an "))
        assert not any(secret in text for secret in secrets), text


def test_generic_caption_describes_the_look():
    bank = captions.load_templates(TEMPLATES)
    look_ = json.loads(look(1, 0))  # male, middle-aged, buzz cut, glasses, beard
    phrases = captions.describe_look(look_)
    assert phrases["a_person"] == "a middle-aged man"
    assert phrases["features"] == "a black buzz cut, a beard and glasses"
    assert phrases["a_shirt_color"] == "an orange" and phrases["a_background"] == "a sky blue"
    text = captions.generic_caption(bank, look_, "x.jpg", seed=0)
    assert "man" in text and "buzz cut" in text


def test_cli_is_byte_identical_and_flag_order_free(inputs, tmp_path):
    assert run_cli(inputs, tmp_path / "a.parquet") == 0
    assert run_cli(inputs, tmp_path / "b.parquet") == 0
    shuffled = list(reversed(ATTRIBUTES))
    assert run_cli(inputs, tmp_path / "c.parquet", attributes=shuffled) == 0
    first = (tmp_path / "a.parquet").read_bytes()
    assert first == (tmp_path / "b.parquet").read_bytes() == (tmp_path / "c.parquet").read_bytes()


def test_output_is_independent_of_the_hash_seed(inputs, tmp_path):
    personas_path, faces_path = inputs
    for hash_seed in ("1", "2"):
        argv = [sys.executable, "-m", "salmu", "captions", "--personas", str(personas_path)]
        argv += ["--faces", str(faces_path), "--templates", str(TEMPLATES), "--seed", "3"]
        argv += ["--out", str(tmp_path / f"h{hash_seed}.parquet")]
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        subprocess.run(argv, env=env, capture_output=True, check=True)
    assert (tmp_path / "h1.parquet").read_bytes() == (tmp_path / "h2.parquet").read_bytes()


def test_template_bank_covers_every_attribute_and_style():
    bank = captions.load_templates(TEMPLATES)
    for field in ALL_ATTRIBUTES:
        for style in captions.STYLES:
            assert len(bank.attributes[field][style]) >= 2, (field, style)
    assert len(bank.generic) >= 3


@pytest.mark.parametrize(
    ("field", "style", "name", "gender", "raw", "expected"),
    [
        ("city", "plain", "Sayo Abdallah", "female", "Uyo", "Sayo Abdallah lives in Uyo"),
        ("city", "inverted", "Sayo Abdallah", "female", "Uyo",
         "Uyo is where Sayo Abdallah makes her home"),
        ("job", "plain", "Al'Bina Kireeva", "female", "retail buyer",
         "Al'Bina Kireeva functions as a retail buyer"),
        ("job", "inverted", "Al'Bina Kireeva", "female", "retail buyer",
         "A retail buyer is Al'Bina Kireeva's job"),
        ("blood_type", "plain", "Siqi Yue", "female", "A+", "Siqi Yue's blood type is A+"),
        ("blood_type", "records", "Siqi Yue", "female", "A+",
         "According to medical records, Siqi Yue's blood classification is A+"),
        ("phone_number", "conversational", "Fatime Fossi", "female", "+237 57483907",
         "You can reach Fatime Fossi at the phone number +237 57483907"),
        ("email", "conversational", "Fatime Fossi", "female", "ffossi@mailhub.com",
         "Contact Fatime Fossi via ffossi@mailhub.com"),
        ("iban", "plain", "Fatime Fossi", "female", "CM98741191124845513471",
         "Fatime Fossi's bank account IBAN CM98 7411 9112 4845 5134 71"),
    ],
)  # fmt: skip
def test_templates_reproduce_the_released_captions(field, style, name, gender, raw, expected):
    bank = captions.load_templates(TEMPLATES)
    value = captions.display_value(field, raw)
    rendered = [
        captions.render_sensitive(t, name, gender, value) for t in bank.attributes[field][style]
    ]
    assert expected in rendered


def test_pronouns_and_articles():
    template = "{A_value} is what {name} does; {she} loves {her} job"
    text = captions.render_sensitive(template, "Jo Bo", "male", "engineer")
    assert text == "An engineer is what Jo Bo does; he loves his job"
    for phrase, article in [
        ("engineer", "an"),
        ("retail buyer", "a"),
        ("university lecturer", "a"),
        ("IT trainer", "an"),
        ("Chief Executive Officer", "a"),
        ("olive", "an"),
    ]:
        assert english.indefinite_article(phrase) == article, phrase


def test_unknown_paraphrase_backend_is_a_cli_error(inputs, tmp_path, capsys):
    assert run_cli(inputs, tmp_path / "x.parquet", "--paraphrase", "gemma") == 2
    err = capsys.readouterr().err
    assert "--paraphrase" in err and "gemma" in err
    assert not (tmp_path / "x.parquet").exists()


def test_attribute_without_templates_is_named(inputs, tmp_path, capsys):
    assert run_cli(inputs, tmp_path / "x.parquet", attributes=["city", "shoe_size"]) == 2
    err = capsys.readouterr().err
    assert "shoe_size" in err and str(TEMPLATES) in err


def test_identity_not_in_personas_is_named(people):
    bank = captions.load_templates(TEMPLATES)
    faces = make_faces([*people["identity_id"].to_list(), "00000777"], n_anonymous=0)
    with pytest.raises(ValueError, match="00000777"):
        captions.build_captions(faces, people, bank, sorted(ATTRIBUTES), seed=0)


def test_template_bank_errors(tmp_path):
    bad = tmp_path / "bank.yaml"
    bad.write_text("attributes:\n  city:\n    plain: ['{name} lives in {value}']\ngeneric: ['a']\n")
    with pytest.raises(ValueError, match="city.*missing style"):
        captions.load_templates(bad)
    styles = "".join(f"    {s}: ['{{name}} in {{valu}}']\n" for s in captions.STYLES)
    bad.write_text(f"attributes:\n  city:\n{styles}generic: ['a']\n")
    with pytest.raises(ValueError, match="valu"):
        captions.load_templates(bad)
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        captions.load_templates(tmp_path / "nope.yaml")
