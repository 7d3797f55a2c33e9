"""salmu personas: Faker personas with culturally consistent, fictitious, globally unique PII."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from salmu import cli, personas, transliteration
from salmu.io import read_json, read_parquet

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "resources" / "locales.yaml"
RESERVED = ("example.com", "example.org", "example.net")
# A spread of name methods: native, en_US fallback, romanized, transliterated.
LOCALES = ["en_US", "fr_FR", "de_DE", "ja_JP", "zh_CN", "ru_RU", "el_GR", "ko_KR", "en_AU", "lt_LT"]


def iban_valid(iban: str) -> bool:
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def run_cli(tmp_path: Path, *extra: str, n: int = 30, locales=LOCALES, seed: int = 7):
    out = tmp_path / "personas.parquet"
    meta = tmp_path / "identities_metadata.json"
    argv = ["personas", "--n-identities", str(n), "--locales", *locales]
    argv += ["--locales-table", str(TABLE), "--seed", str(seed)]
    argv += ["--out-parquet", str(out), "--out-metadata", str(meta), *extra]
    return cli.main(argv), out, meta


@pytest.fixture(scope="module")
def table():
    return personas.load_locale_table(TABLE)


@pytest.fixture(scope="module")
def many(table):
    specs = personas.resolve_locales(LOCALES, table, TABLE)
    return personas.generate_personas(200, specs, list(RESERVED), seed=3)


def test_cli_writes_byte_identical_files(tmp_path):
    rc1, out1, meta1 = run_cli(tmp_path / "a")
    rc2, out2, meta2 = run_cli(tmp_path / "b")
    assert rc1 == rc2 == 0
    assert out1.read_bytes() == out2.read_bytes()
    assert meta1.read_bytes() == meta2.read_bytes()
    # The flag order of --locales does not matter either.
    rc3, out3, _ = run_cli(tmp_path / "c", locales=list(reversed(LOCALES)))
    assert rc3 == 0 and out3.read_bytes() == out1.read_bytes()
    # A different seed gives different people.
    _, out4, _ = run_cli(tmp_path / "d", seed=8)
    assert read_parquet(out4)["name"].to_list() != read_parquet(out1)["name"].to_list()


def test_every_locale_is_independent_of_the_hash_seed(tmp_path):
    """Faker data built from sets (it_IT cities) would make regeneration depend on
    PYTHONHASHSEED; run every table locale in two processes with different hash seeds."""
    code = (
        "import sys; from salmu import personas as P\n"
        f"t = P.load_locale_table({str(TABLE)!r})\n"
        "df = P.generate_personas(len(t) * 3, list(t.values()), ['example.com'], seed=2)\n"
        "sys.stdout.write(df.write_csv())\n"
    )
    outputs = []
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1]


def test_parquet_and_metadata_layout(tmp_path):
    rc, out, meta = run_cli(tmp_path, n=12)
    assert rc == 0
    frame = read_parquet(out)
    assert tuple(frame.columns) == personas.COLUMNS
    assert frame["identity_id"].to_list() == [f"{i:08d}" for i in range(12)]
    metadata = read_json(meta)
    assert sorted(metadata) == frame["identity_id"].to_list()
    row = frame.row(0, named=True)
    profile = metadata[row["identity_id"]]
    assert profile["emails"] == [row["email"]]
    assert "email" not in profile and "identity_id" not in profile
    assert set(profile) == set(personas.COLUMNS) - {"identity_id", "email"} | {"emails"}


def test_uniqueness_over_200_personas(many):
    assert many.height == 200
    for field in personas.UNIQUE_FIELDS:
        keys = [personas.unique_key(field, v) for v in many[field]]
        assert len(set(keys)) == len(keys), field


def test_fields_are_plausible(many):
    assert set(many["gender"]) == set(personas.GENDERS)
    assert set(many["age_band"]) <= set(personas.AGE_BANDS)
    assert set(many["blood_type"]) <= set(personas.BLOOD_TYPES)
    assert all(iban_valid(i) for i in many["iban"])
    for job in many["job"]:
        assert job and "(" not in job and "," not in job
    # Round-robin: every locale gets 200 / 10 personas.
    assert set(many.group_by("locale").len()["len"]) == {20}


def test_growing_n_keeps_earlier_personas(table):
    specs = personas.resolve_locales(LOCALES, table, TABLE)
    small = personas.generate_personas(15, specs, list(RESERVED), seed=3)
    large = personas.generate_personas(25, specs, list(RESERVED), seed=3)
    assert large.head(15).equals(small)


def test_locale_consistency(many, table):
    for row in many.iter_rows(named=True):
        spec = table[row["locale"]]
        assert row["country_code"] == spec.country_code
        assert row["country"] == spec.country
        assert row["iban"].startswith(spec.country_code)
        if isinstance(spec.city, tuple):
            assert row["city"] in spec.city


def test_names_are_latin_script(many):
    for name in many["name"]:
        assert transliteration.is_latin(name), name
        assert len(name.split()) >= 2 and not re.search(r"\d", name), name


def test_emails_are_fictitious_and_derived_from_names(many):
    for name, email in zip(many["name"], many["email"]):
        local, domain = email.split("@")
        assert domain in RESERVED
        assert re.fullmatch(r"[a-z0-9.]+", local)
        assert transliteration.ascii_fold(name.split()[-1]) in local


def test_transliteration_matches_release_style():
    assert transliteration.transliterate("Альбина Киреева", "cyrillic") == "Al'Bina Kireeva"
    assert transliteration.transliterate("Ζαφείρης Μπαλτατζή", "greek") == "Zafeiris Baltatzi"
    assert transliteration.transliterate("კონსტანტინე", "georgian") == "Konstantine"
    assert transliteration.transliterate("Ցրտատարյան", "armenian") == "Tsrtataryan"
    assert transliteration.transliterate("김 성민", "hangul") == "Kim Seongmin"
    assert transliteration.ascii_fold("Łukasz Zięcik") == "lukaszziecik"


def test_job_normalization():
    assert personas.normalize_job("Buyer, retail") == "retail buyer"
    assert personas.normalize_job("Engineer, civil (consulting)") is None
    assert personas.normalize_job("Sales professional, IT") == "IT sales professional"
    assert personas.normalize_job("Chief Executive Officer") == "Chief Executive Officer"


def test_every_table_locale_works_with_installed_faker(table):
    """Each locale instantiates and, over several draws, gives what the table promises."""
    assert len(table) >= 60
    assert len({s.country_code for s in table.values()}) >= 60
    for locale, spec in table.items():
        frame = personas.generate_personas(4, [spec], list(RESERVED), seed=11)
        for row in frame.iter_rows(named=True):
            assert transliteration.is_latin(row["name"]) and transliteration.is_latin(
                row["city"]
            ), locale
            assert row["iban"].startswith(spec.country_code), locale
            assert iban_valid(row["iban"]), locale
            assert len(row["iban"]) == (
                spec.iban_length if spec.iban == "generated" else len(row["iban"])
            )
            assert row["phone_number"] and row["passport"] and row["credit_card"], locale


def test_unknown_locale_is_a_one_line_cli_error(tmp_path, capsys):
    rc, out, _ = run_cli(tmp_path, locales=["en_US", "xx_XX"])
    assert rc == 2 and not out.exists()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "xx_XX" in err and str(TABLE) in err


def test_bad_inputs(tmp_path, table):
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        personas.load_locale_table(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "locales:\n  en_US: {country_code: usa, country: X, name: native,"
        " city: faker, phone: faker, iban: faker}\n"
    )
    with pytest.raises(ValueError, match="en_US.*country_code"):
        personas.load_locale_table(bad)
    with pytest.raises(ValueError, match="--email-domains"):
        personas.check_domains(["not a domain"])
    with pytest.raises(ValueError, match="--n-identities"):
        personas.generate_personas(0, [table["en_US"]], list(RESERVED), seed=0)


def test_default_email_domains_are_rfc2606_reserved():
    parser = argparse.ArgumentParser()
    personas.configure_parser(parser)
    args = parser.parse_args(
        ["--n-identities", "3", "--seed", "0", "--out-parquet", "p", "--out-metadata", "m"]
    )
    assert sorted(args.email_domains) == sorted(RESERVED)
    assert args.locales_table == "resources/locales.yaml"
