"""Faker personas with culturally consistent, fictitious, globally unique PII (docs/protocol.md §1.1 step 4).

One persona = one seeded ``Faker(locale)`` instance, so name, city, phone number, IBAN, passport
and credit card all come from the same locale. Names are in Latin script because the captions are
English (the release has "Al'Bina Kireeva", "Siqi Yue"); the locale table
(``resources/locales.yaml``) says per locale how to get one. Jobs come from ``Faker("en_US")`` for
the same reason. E-mail domains default to the RFC 2606 reserved ones, so no address can belong to
a real person.

Uniqueness is enforced, not hoped for: a persona whose name or any PII value was already used is
redrawn with the next attempt number. Persona ``i`` depends only on personas ``< i``, so a larger
``--n-identities`` keeps the first personas unchanged.
"""

from __future__ import annotations

import argparse
import functools
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from faker import Faker

from salmu.io import read_yaml, write_json, write_parquet
from salmu.sections.personas import PersonasSettings
from salmu.seeding import derive_seed, stream
from salmu.transliteration import TRANSLITERATORS, ascii_fold, is_latin, transliterate

GENDERS = ("female", "male")
AGE_BANDS = ("young", "middle-aged", "older")
BLOOD_TYPES = ("A+", "A-", "B+", "B-", "AB+", "AB-", "O+", "O-")
COLUMNS = (
    "identity_id",
    "name",
    "gender",
    "age_band",
    "locale",
    "country_code",
    "country",
    "city",
    "job",
    "blood_type",
    "phone_number",
    "email",
    "iban",
    "credit_card",
    "passport",
)
# Fields no two personas may share (compared on a normalized key, see `unique_key`).
UNIQUE_FIELDS = ("name", "phone_number", "email", "iban", "credit_card", "passport")
NAME_METHODS = ("native", "romanized", "transliterate", "en_US")
MAX_ATTEMPTS = 500
DEFAULT_IBAN_LENGTH = 22  # the release's example "CM98 7411 9112 4845 5134 71"


# --------------------------------------------------------------------------------------------
# Locale table


@dataclass(frozen=True)
class LocaleSpec:
    locale: str
    country_code: str
    country: str
    name: str
    script: str | None
    city: str | tuple[str, ...]
    phone: str
    iban: str
    iban_length: int
    first_name_endings: tuple[tuple[str, tuple[str, ...]], ...] = ()


def _spec_from_entry(locale: str, entry: object, path: Path) -> LocaleSpec:
    where = f"{path}: locale {locale!r}"
    if not isinstance(entry, dict):
        # ValueError, not TypeError: bad input files get cli.py's one-line message.
        raise ValueError(f"{where}: expected a mapping, got {type(entry).__name__}")  # noqa: TRY004
    missing = [
        k for k in ("country_code", "country", "name", "city", "phone", "iban") if k not in entry
    ]
    if missing:
        raise ValueError(f"{where}: missing keys {missing}")
    code = entry["country_code"]
    if not (isinstance(code, str) and re.fullmatch(r"[A-Z]{2}", code)):
        raise ValueError(f"{where}: country_code must be ISO alpha-2 (two capitals), got {code!r}")
    if entry["name"] not in NAME_METHODS:
        raise ValueError(
            f"{where}: name must be one of {list(NAME_METHODS)}, got {entry['name']!r}"
        )
    script = entry.get("script")
    if entry["name"] == "transliterate" and script not in TRANSLITERATORS:
        raise ValueError(
            f"{where}: name: transliterate needs script in {sorted(TRANSLITERATORS)}, got {script!r}"
        )
    city = entry["city"]
    if isinstance(city, list):
        if not city or not all(isinstance(c, str) and c for c in city):
            raise ValueError(f"{where}: city list must hold non-empty strings")
        city = tuple(city)
    elif city != "faker":
        raise ValueError(f"{where}: city must be 'faker' or a list of city names, got {city!r}")
    phone = entry["phone"]
    if not (phone == "faker" or (isinstance(phone, str) and ("#" in phone or "%" in phone))):
        raise ValueError(f"{where}: phone must be 'faker' or a '#'/'%' pattern, got {phone!r}")
    if entry["iban"] not in ("faker", "generated"):
        raise ValueError(f"{where}: iban must be 'faker' or 'generated', got {entry['iban']!r}")
    iban_length = entry.get("iban_length", DEFAULT_IBAN_LENGTH)
    if not (isinstance(iban_length, int) and 15 <= iban_length <= 34):
        raise ValueError(
            f"{where}: iban_length must be an integer in [15, 34], got {iban_length!r}"
        )
    endings = entry.get("first_name_endings", {})
    if not (
        isinstance(endings, dict)
        and set(endings) <= set(GENDERS)
        and all(
            isinstance(v, list) and v and all(isinstance(e, str) for e in v)
            for v in endings.values()
        )
    ):
        raise ValueError(
            f"{where}: first_name_endings must map female/male to lists of endings, got {endings!r}"
        )
    return LocaleSpec(
        locale=locale,
        country_code=code,
        country=str(entry["country"]),
        name=entry["name"],
        script=script,
        city=city,
        phone=phone,
        iban=entry["iban"],
        iban_length=iban_length,
        first_name_endings=tuple((g, tuple(endings[g])) for g in sorted(endings)),
    )


def load_locale_table(path: str | Path) -> dict[str, LocaleSpec]:
    """Parse and validate the locale table (see the comments at the top of resources/locales.yaml)."""
    path = Path(path)
    data = read_yaml(path, "locale table")
    if not isinstance(data, dict) or not isinstance(data.get("locales"), dict):
        raise ValueError(f"{path}: expected a top-level 'locales:' mapping")  # noqa: TRY004
    return {loc: _spec_from_entry(loc, entry, path) for loc, entry in data["locales"].items()}


def resolve_locales(
    locales: list[str] | None, table: dict[str, LocaleSpec], table_path: str | Path
) -> list[LocaleSpec]:
    """The requested locales (all of the table when none are given), sorted so flag order is moot."""
    if not locales:
        locales = list(table)
    dupes = sorted({loc for loc in locales if locales.count(loc) > 1})
    if dupes:
        raise ValueError(f"--locales: duplicated locale(s) {dupes}")
    unknown = [loc for loc in locales if loc not in table]
    if unknown:
        raise ValueError(
            f"--locales: unknown locale(s) {unknown}: not in the locale table {table_path} "
            f"(known: {', '.join(sorted(table))})"
        )
    return [table[loc] for loc in sorted(locales)]


def assign_locales(n: int, specs: list[LocaleSpec], seed: int) -> list[LocaleSpec]:
    """Round-robin over a seeded shuffle, so every locale gets n/len(specs) personas (+-1)."""
    order = stream(seed, "personas", "locale-order").permutation(len(specs))
    return [specs[order[i % len(specs)]] for i in range(n)]


# --------------------------------------------------------------------------------------------
# One persona


@functools.cache
def faker_for(locale: str) -> Faker:
    """One Faker per locale, re-seeded before every persona (seed_instance resets all its state,
    so this equals a fresh ``Faker(locale)`` per persona, without paying the start-up each time)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. deprecation notices of aliased locales
        try:
            return Faker(locale)
        except AttributeError as err:
            raise ValueError(f"locale {locale!r}: Faker does not support it ({err})") from None


def latin_name(fake: Faker, spec: LocaleSpec, gender: str) -> tuple[str, str]:
    """(first, last) in Latin script, gendered where the locale's lists are."""
    if spec.name == "romanized":
        first_method = f"first_romanized_name_{gender}"
        if not hasattr(fake, first_method):
            first_method = "first_romanized_name"
        first, last = getattr(fake, first_method)(), fake.last_romanized_name()
        return first.title(), last.title()
    first = getattr(fake, f"first_name_{gender}")()
    endings = dict(spec.first_name_endings).get(gender)
    for _ in range(100):  # ungendered Faker lists: redraw until the ending fits the gender
        if not endings or first.endswith(endings):
            break
        first = getattr(fake, f"first_name_{gender}")()
    last = getattr(fake, f"last_name_{gender}")()  # Kireeva / Kireev, Kučerová / Kučera
    if spec.name == "transliterate":
        return transliterate(first, spec.script), transliterate(last, spec.script)
    # A few Faker entries are all lower-case ("volk" in sl_SI); "van Dijk" keeps its particle.
    return tuple(p[:1].upper() + p[1:] if p == p.lower() else p for p in (first, last))


def iban_check_digits(country_code: str, bban: str) -> str:
    """ISO 13616 / ISO 7064 mod-97-10 check digits."""
    digits = "".join(str(int(ch, 36)) for ch in (bban + country_code + "00").upper())
    return f"{98 - int(digits) % 97:02d}"


def make_iban(fake: Faker, spec: LocaleSpec, table_path: str | Path) -> str:
    if spec.iban == "faker":
        iban = fake.iban()
        if not iban.startswith(spec.country_code):
            # The table promised a country IBAN; a Faker upgrade must not silently give GB ones.
            raise ValueError(
                f"{table_path}: locale {spec.locale!r} says iban: faker, but Faker gave {iban[:2]} "
                f"IBANs, not {spec.country_code}; set iban: generated"
            )
        return iban
    bban = fake.numerify("#" * (spec.iban_length - 4))
    return f"{spec.country_code}{iban_check_digits(spec.country_code, bban)}{bban}"


def email_address(fake: Faker, first: str, last: str, domains: list[str]) -> str:
    """Local part derived from the name ("Fatime Fossi" -> "ffossi"), on a fictitious domain."""
    given, family = ascii_fold(first), ascii_fold(last)
    formats = [f"{given[:1]}{family}", f"{given}.{family}", f"{given}{family}"]
    local = fake.random_element(formats) or "user"
    return f"{local}@{fake.random_element(domains)}"


def normalize_job(raw: str) -> str | None:
    """Faker job -> an English noun phrase for captions ("Buyer, retail" -> "retail buyer").

    None for titles that read badly in a sentence (parentheses, several commas); the caller draws
    again. Lower-cased unless the title holds a proper noun or acronym ("Chief Executive Officer").
    """
    if "(" in raw or raw.count(",") > 1:
        return None
    if "," in raw:
        head, modifier = (part.strip() for part in raw.split(","))
        head = head if head.isupper() else head[:1].lower() + head[1:]
        raw = f"{modifier} {head}"
    words = raw.split()
    keep_case = any(w[:1].isupper() for w in words[1:]) or words[0].isupper()
    keep_case = keep_case or words[0] in ("English", "Scotland")
    return raw if keep_case else raw[:1].lower() + raw[1:]


def english_job(seed: int, index: int) -> str:
    fake = faker_for("en_US")
    fake.seed_instance(derive_seed(seed, "persona-job", index))
    for _ in range(1000):  # about 1 in 4 Faker titles is redrawn (see normalize_job)
        if (job := normalize_job(fake.job())) is not None:
            return job
    raise ValueError("Faker('en_US').job() gave no usable job title in 1000 draws")


def demographics(seed: int, index: int) -> dict[str, str]:
    """Gender (50/50), age band and blood type: fixed per identity, not redrawn on a clash."""
    rng = stream(seed, "persona-demographics", index)
    return {
        "gender": GENDERS[int(rng.integers(len(GENDERS)))],
        "age_band": AGE_BANDS[int(rng.integers(len(AGE_BANDS)))],
        "blood_type": BLOOD_TYPES[int(rng.integers(len(BLOOD_TYPES)))],
    }


def draw_persona(
    index: int,
    attempt: int,
    spec: LocaleSpec,
    seed: int,
    domains: list[str],
    fixed: dict[str, str],
    table_path: str | Path,
) -> dict[str, str]:
    """One candidate persona; every locale-dependent field comes from the same seeded instance."""
    fake = faker_for(spec.locale)
    fake.seed_instance(derive_seed(seed, "persona", index, attempt))
    first, last = latin_name(fake, spec, fixed["gender"])
    city = fake.city() if spec.city == "faker" else fake.random_element(list(spec.city))
    phone = fake.phone_number() if spec.phone == "faker" else fake.numerify(spec.phone)
    return {
        "identity_id": f"{index:08d}",
        "name": f"{first} {last}",
        "gender": fixed["gender"],
        "age_band": fixed["age_band"],
        "locale": spec.locale,
        "country_code": spec.country_code,
        "country": spec.country,
        "city": city,
        "job": fixed["job"],
        "blood_type": fixed["blood_type"],
        "phone_number": phone,
        "email": email_address(fake, first, last, domains),
        "iban": make_iban(fake, spec, table_path),
        "credit_card": fake.credit_card_number(),
        "passport": fake.passport_number(),
    }


def unique_key(field: str, value: str) -> str:
    """Compare PII loosely, so "José Garcia"/"Jose Garcia" or "+45 94 89" / "+4594 89" clash."""
    if field in ("name", "email"):
        return ascii_fold(value) if field == "name" else value.lower()
    return re.sub(r"[^0-9A-Za-z]", "", value).upper()


def generate_personas(
    n: int,
    specs: list[LocaleSpec],
    domains: list[str],
    seed: int,
    table_path: str | Path = "locales table",
) -> pl.DataFrame:
    """n globally unique personas, columns COLUMNS, sorted by identity_id."""
    if n < 1:
        raise ValueError(f"--n-identities must be >= 1, got {n}")
    used: dict[str, set[str]] = {field: set() for field in UNIQUE_FIELDS}
    rows = []
    for index, spec in enumerate(assign_locales(n, specs, seed)):
        fixed = {**demographics(seed, index), "job": english_job(seed, index)}
        for attempt in range(MAX_ATTEMPTS):
            persona = draw_persona(index, attempt, spec, seed, domains, fixed, table_path)
            keys = {f: unique_key(f, persona[f]) for f in UNIQUE_FIELDS}
            # Redraw on any clash, or when a locale's data slips out of Latin script.
            latin = is_latin(persona["name"]) and is_latin(persona["city"])
            if latin and not any(keys[f] in used[f] for f in UNIQUE_FIELDS):
                break
        else:
            raise ValueError(
                f"persona {index:08d} (locale {spec.locale}): no unique Latin-script persona in "
                f"{MAX_ATTEMPTS} attempts; add locales or e-mail domains"
            )
        for field, key in keys.items():
            used[field].add(key)
        rows.append(persona)
    return pl.DataFrame(rows, schema={c: pl.String for c in COLUMNS}).sort("identity_id")


def personas_metadata(frame: pl.DataFrame) -> dict[str, dict]:
    """The official identities_metadata.json shape: identity_id -> profile (emails is a list)."""
    metadata = {}
    for row in frame.iter_rows(named=True):
        profile = {k: v for k, v in row.items() if k not in ("identity_id", "email")}
        profile["emails"] = [row["email"]]
        metadata[row["identity_id"]] = profile
    return metadata


def check_domains(domains: list[str]) -> list[str]:
    for domain in domains:
        if not re.fullmatch(
            r"(?i)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+", domain
        ):
            raise ValueError(f"--email-domains: {domain!r} is not a domain name")
    # Sorted and de-duplicated so the flag order does not change the draws.
    return sorted(set(domains))


# --------------------------------------------------------------------------------------------
# CLI


def configure_parser(parser: argparse.ArgumentParser) -> None:
    PersonasSettings.add_arguments(parser)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out-parquet", required=True, help="personas.parquet")
    parser.add_argument("--out-metadata", required=True, help="identities_metadata.json")


def run(args: argparse.Namespace) -> None:
    table = load_locale_table(args.locales_table)
    specs = resolve_locales(args.locales, table, args.locales_table)
    domains = check_domains(args.email_domains)
    frame = generate_personas(args.n_identities, specs, domains, args.seed, args.locales_table)
    write_parquet(frame, args.out_parquet)
    write_json(personas_metadata(frame), args.out_metadata)
    print(f"{frame.height} personas over {frame['country_code'].n_unique()} countries")
