"""What a benchmark directory holds, counted from its own files (for the dataset card).

Rows, identities and attribute types per split (released and derived), the countries of the
sensitive identities and the e-mail domains of every profile. Everything is read from the
directory, so the counts describe this pipeline's output and the official release alike.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from salmu.io import read_json, read_parquet
from salmu.released_layout import (
    CAPTIONS_JSON,
    FRAGILE_JSON,
    IDENTITIES_JSON,
    METADATA_JSONS,
    REQUIRED_JSONS,
    SENSITIVE_SPLITS,
    SPLITS,
    derive_splits,
    shard_paths,
)

# RFC 2606 / RFC 6761 reserved names: no address under them can belong to a real person.
RESERVED_DOMAINS = ("example.com", "example.net", "example.org")
RESERVED_TLDS = (".test", ".example", ".invalid", ".localhost")


def read_splits(benchmark: Path) -> dict[str, pl.DataFrame]:
    """identity_id and file_name of every row of the four released splits (shards in order)."""
    frames = {}
    for split in SPLITS:
        frame = pl.concat(
            [
                read_parquet(s, ["identity_id", "file_name"], only=True)
                for s in shard_paths(benchmark, split)
            ]
        )
        frames[split] = frame.with_columns(pl.col("identity_id").cast(pl.String))
    return frames


def read_metadata(benchmark: Path) -> dict[str, object]:
    """The metadata JSONs present at the root, checked for the shape readers expect."""
    metadata = {}
    for name in METADATA_JSONS:
        path = benchmark / name
        if path.exists():
            metadata[name] = read_json(path)
        elif name in REQUIRED_JSONS:
            raise FileNotFoundError(f"--benchmark {benchmark}: {name} not found")
    for name, kind in ((CAPTIONS_JSON, dict), (IDENTITIES_JSON, dict), (FRAGILE_JSON, list)):
        if not isinstance(metadata[name], kind):
            what = "a JSON object" if kind is dict else "a JSON list"
            raise ValueError(f"--benchmark {benchmark}: {name} must be {what}")  # noqa: TRY004
    return metadata


def derived_splits(splits: dict[str, pl.DataFrame], fragile_ids: list[str]) -> dict:
    """The official loader's derived splits (docs/protocol.md §1.3), plus forget_association."""
    derived = {
        name: frame
        for name, frame in derive_splits(splits, fragile_ids).items()
        if name not in splits
    }
    assoc_ids = sorted(set(splits["holdout_association"]["identity_id"].drop_nulls()))
    derived["forget_association"] = splits["forget"].filter(pl.col("identity_id").is_in(assoc_ids))
    return derived


def field_counts(frame: pl.DataFrame, captions_meta: dict) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in frame["file_name"]:
        entry = captions_meta.get(name)
        field = entry.get("data_field") if isinstance(entry, dict) else None
        if field is not None:
            counts[str(field)] = counts.get(str(field), 0) + 1
    return counts


def count_table(splits: dict, derived: dict, captions_meta: dict) -> tuple[list[str], list[dict]]:
    """(attribute types, one row per split): rows, identities, rows without identity, per field."""
    rows = []
    for name, frame in [*splits.items(), *derived.items()]:
        rows.append(
            {
                "split": name,
                "derived": name in derived,
                "rows": frame.height,
                "identities": frame["identity_id"].drop_nulls().n_unique(),
                "no_identity": frame["identity_id"].null_count(),
                "fields": field_counts(frame, captions_meta),
            }
        )
    fields = sorted({f for row in rows for f in row["fields"]})
    return fields, rows


def sensitive_identities(splits: dict[str, pl.DataFrame]) -> list[str]:
    ids = set()
    for split in SENSITIVE_SPLITS:
        ids |= set(splits[split]["identity_id"].drop_nulls())
    return sorted(ids)


def countries(identities_meta: dict, identity_ids: list[str]) -> list[str]:
    found = set()
    for identity_id in identity_ids:
        profile = identities_meta.get(identity_id)
        if isinstance(profile, dict):
            code = profile.get("country_code") or profile.get("country")
            if code:
                found.add(str(code))
    return sorted(found)


def email_domains(identities_meta: dict) -> list[str]:
    domains = set()
    for profile in identities_meta.values():
        if not isinstance(profile, dict):
            continue
        emails = profile.get("emails") or profile.get("email") or []
        for email in [emails] if isinstance(emails, str) else emails:
            if isinstance(email, str) and "@" in email:
                domains.add(email.rsplit("@", 1)[1].lower())
    return sorted(domains)


def is_reserved(domain: str) -> bool:
    return domain in RESERVED_DOMAINS or domain.endswith(
        tuple(f".{d}" for d in RESERVED_DOMAINS) + RESERVED_TLDS
    )
