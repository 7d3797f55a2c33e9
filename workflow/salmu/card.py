"""Hugging Face dataset card (README.md) for a benchmark directory in the released layout.

``salmu card --benchmark DIR --config CONFIG --out DIR/README.md`` writes:
- YAML front matter: ``configs`` (one ``data_files`` entry per split, so ``datasets.load_dataset(DIR)``
  maps the four splits), ``dataset_info`` (features image/text/identity_id/file_name and per-split
  example counts), license cc-by-4.0 (the release's), pretty_name, tags.
- Markdown: what the benchmark is, split semantics (the four released splits and the splits the
  official loader derives from them, docs/protocol.md §1.3), counts per split (rows, identities, sensitive
  attribute types from sensitive_set_captions_metadata.json), countries, seed and configuration,
  generator versions, the face filter summary (when given), and the fictitious-data note.

Every count is read from the benchmark directory itself (parquet shards and metadata JSONs), so the
card also describes the official release. The card is deterministic for the same inputs, except the
git commit line (``git rev-parse HEAD`` of the checkout running the command, "unknown" outside a git
checkout; pin it with ``--git-commit``) and the package versions of the environment running it.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import polars as pl
import yaml

from salmu import provenance
from salmu.benchmark_counts import (
    count_table,
    countries,
    derived_splits,
    email_domains,
    is_reserved,
    read_metadata,
    read_splits,
    sensitive_identities,
)
from salmu.io import ensure_parent, read_json, read_yaml
from salmu.released_layout import (
    CAPTIONS_JSON,
    FRAGILE_JSON,
    FRAGILE_SCORES_JSON,
    GENERIC_CAPTIONS_JSON,
    IDENTITIES_JSON,
    SPLITS,
    SUMMARY_JSON,
    shard_paths,
    split_sizes,
)

METADATA_FILES = {  # in METADATA_JSONS' order
    IDENTITIES_JSON: "identity_id -> fictitious profile (name, city, country, job, "
    "blood type, phone, e-mails, IBAN, ...)",
    CAPTIONS_JSON: "file_name -> {data_field, caption, name, value, ...} for every sensitive image",
    GENERIC_CAPTIONS_JSON: "file_name -> a generic caption of the same image without name or PII",
    FRAGILE_JSON: "file_names of the fragile set (rows of retain_disjoint)",
    FRAGILE_SCORES_JSON: "file_name -> fragile-set selection score, for every retain_disjoint row",
    SUMMARY_JSON: "seed, split fractions, identity and row counts (this pipeline only)",
}
VERSION_PACKAGES = (
    "faker",
    "torch",
    "diffusers",
    "transformers",
    "open_clip_torch",
    "salmubench",
)
FEATURES = [
    {"name": "image", "dtype": "image"},
    {"name": "text", "dtype": "string"},
    {"name": "identity_id", "dtype": "string"},
    {"name": "file_name", "dtype": "string"},
]
TAGS = [
    "machine-unlearning",
    "clip",
    "vision-language",
    "privacy",
    "synthetic",
    "faces",
    "pii",
    "benchmark",
]


# --------------------------------------------------------------------------------------------
# Provenance


def load_config(path: str | Path) -> dict:
    path = Path(path)
    if path.suffix == ".json":
        config = read_json(path)
    else:
        config = read_yaml(path, "--config file")
    if not isinstance(config, dict):
        raise ValueError(f"--config {path}: expected a mapping, got {type(config).__name__}")  # noqa: TRY004
    return config


def resolve_seed(config: dict, summary: dict | None, config_path) -> object:
    seed = config.get("seed")
    split_seed = summary.get("seed") if isinstance(summary, dict) else None
    if seed is not None and split_seed is not None and seed != split_seed:
        raise ValueError(
            f"--config {config_path}: seed {seed} disagrees with splits_summary.json seed "
            f"{split_seed}; the card would misstate the provenance"
        )
    return seed if seed is not None else (split_seed if split_seed is not None else "unknown")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package, version in provenance.package_versions(VERSION_PACKAGES).items():
        versions[package] = version or "not installed"
    return versions


def git_commit() -> str:
    """``git rev-parse HEAD`` of the checkout holding this package; "unknown" if none."""
    return provenance.git(provenance.repo_root(), "rev-parse", "HEAD") or "unknown"


def load_face_report(path: str | Path | None) -> dict | None:
    if path is None:
        return None
    report = read_json(path)
    if not isinstance(report, dict):
        raise ValueError(f"--face-report {path}: expected a JSON object")  # noqa: TRY004
    return report


def _scalar(value: object) -> str:
    """JSON spelling (true, null, 0.4), strings bare unless they span lines."""
    if isinstance(value, str) and "\n" not in value:
        return value
    return json.dumps(value, ensure_ascii=False)


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _brief(value: object) -> str:
    """A scalar as it is; a small mapping or list of scalars inline; anything else by size."""
    if _is_scalar(value):
        return _scalar(value)
    if isinstance(value, dict) and len(value) <= 12 and all(map(_is_scalar, value.values())):
        return ", ".join(f"{k}={_scalar(value[k])}" for k in sorted(value)) or "{}"
    if isinstance(value, list) and len(value) <= 12 and all(map(_is_scalar, value)):
        return ", ".join(_scalar(v) for v in value) or "[]"
    return f"{len(value)} entries" if isinstance(value, dict | list) else _scalar(str(value))


def summarize_report(report: dict) -> list[str]:
    """Markdown bullets for a JSON report of unknown shape (e.g. `salmu face-filter`'s): top-level
    scalars as they are, mappings (up to 24 keys) one level deep, small mappings and lists of
    scalars inline, anything larger by its size (the full report stays next to the card)."""
    lines = []
    for key in sorted(report):
        value = report[key]
        if isinstance(value, dict) and 0 < len(value) <= 24 and _brief(value).endswith("entries"):
            lines.append(f"- **{key}**:")
            lines += [f"  - {sub}: {_brief(value[sub])}" for sub in sorted(value)]
        else:
            lines.append(f"- **{key}**: {_brief(value)}")
    return lines


# --------------------------------------------------------------------------------------------
# The card


def size_category(n: int) -> str:
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if n < bound:
            return label
    return "100K<n<1M" if n < 1_000_000 else "1M<n<10M"


def front_matter(
    splits: dict[str, pl.DataFrame], run_name: object, sizes: dict[str, dict[str, int]]
) -> dict:
    """``sizes``: per split ``num_examples`` and ``num_bytes`` (``released_layout.split_sizes``);
    ``datasets`` warns that the splits field is malformed without ``num_bytes``."""
    total = sum(frame.height for frame in splits.values())
    pretty = "SALMUBench (regenerated)"
    if run_name:
        pretty += f", run {run_name}"
    return {
        "license": "cc-by-4.0",
        "pretty_name": pretty,
        "language": ["en"],
        "tags": TAGS,
        "task_categories": ["zero-shot-image-classification", "image-to-text"],
        "size_categories": [size_category(total)],
        "configs": [
            {
                "config_name": "default",
                "data_files": [
                    {"split": split, "path": f"data/{split}-*.parquet"} for split in SPLITS
                ],
            }
        ],
        "dataset_info": {
            "features": FEATURES,
            "splits": [{"name": split, **sizes[split]} for split in SPLITS],
        },
    }


SPLIT_SEMANTICS = """\
Released splits (parquet shards `data/<split>-*.parquet`, columns `image`, `text`, `identity_id`,
`file_name`; each image carries exactly one caption):

- **forget**: sensitive pairs (image of a fictitious person + a caption stating one of their
  attributes) that unlearning methods must forget. Given to unlearning methods, with a retain subset.
- **holdout_association**: sensitive pairs of *partially forgotten* identities (also in forget),
  for the attribute types that stay; measures collateral forgetting of the same people.
- **holdout_identity**: sensitive pairs of identities never in forget.
- **retain_synth**: non-sensitive captions of synthetic images: extra images of forget identities
  (`identity_id` set) and of anonymous people (`identity_id` null).

The holdout splits were in the Compromised model's training data and must never be used for
unlearning. Derived splits, built exactly as the official `load_benchmark_data` does:

- **retain_joint** = rows of retain_synth whose `identity_id` is not null and is a forget identity
  (VisIdInt).
- **retain_disjoint** = rows of retain_synth whose `identity_id` is null (RetFail distractors).
- **fragile_set** = rows of retain_disjoint whose `file_name` is listed in `fragile_set_ids.json`
  (FragSim).
- **forget_identity** = rows of forget whose `identity_id` is not a holdout_association identity:
  the fully forgotten identities (IdZSC).

`forget_association` (forget rows of the partially forgotten identities, i.e. forget minus
forget_identity) is not built by the official loader; its count is given for reference.
"""

LOADER_SNIPPET = """\
```python
import json
from pathlib import Path

from datasets import load_dataset

root = Path("{root}")  # this directory, or the hub repo after download
ds = load_dataset(str(root))
forget, retain = ds["forget"], ds["retain_synth"]
assoc_ids = set(ds["holdout_association"]["identity_id"])
forget_ids = set(forget["identity_id"])
fragile = set(json.loads((root / "fragile_set_ids.json").read_text()))
# input_columns: filter on one column without decoding the images
retain_joint = retain.filter(
    lambda i: i is not None and i in forget_ids, input_columns="identity_id"
)
retain_disjoint = retain.filter(lambda i: i is None, input_columns="identity_id")
fragile_set = retain_disjoint.filter(lambda f: f in fragile, input_columns="file_name")
forget_identity = forget.filter(lambda i: i not in assoc_ids, input_columns="identity_id")
```
"""


def counts_markdown(fields: list[str], rows: list[dict]) -> list[str]:
    header = ["split", "rows", "identities", "rows without identity_id", *fields]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        name = f"{row['split']} (derived)" if row["derived"] else row["split"]
        cells = [name, row["rows"], row["identities"], row["no_identity"]]
        cells += [row["fields"].get(f, 0) for f in fields]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


def render_card(
    benchmark: Path,
    config: dict,
    face_report: dict | None,
    commit: str,
    versions: dict[str, str],
    config_path: str | Path = "config",
    face_report_path: str | Path | None = None,
) -> str:
    splits = read_splits(benchmark)
    metadata = read_metadata(benchmark)
    captions_meta = metadata[CAPTIONS_JSON]
    identities_meta = metadata[IDENTITIES_JSON]
    fragile_ids = metadata[FRAGILE_JSON]
    derived = derived_splits(splits, [str(x) for x in fragile_ids])
    fields, count_rows = count_table(splits, derived, captions_meta)
    people = sensitive_identities(splits)
    country_list = countries(identities_meta, people)
    domains = email_domains(identities_meta)
    seed = resolve_seed(config, metadata.get(SUMMARY_JSON), config_path)
    sizes = {split: split_sizes(shard_paths(benchmark, split)) for split in SPLITS}

    out = [
        "---",
        yaml.safe_dump(front_matter(splits, config.get("run"), sizes), sort_keys=False).strip(),
    ]
    out += ["---", ""]
    out += [
        "# SALMUBench (regenerated)",
        "",
        "SALMUBench is a benchmark for *association-level* machine unlearning in CLIP models "
        "(Selvas-Sala, Kang, Gomez; CVPR 2026, arXiv 2603.26316). Synthetic, identity-consistent "
        "face images of fictitious people are paired with captions that state one fictitious "
        "personal attribute each (city, job, blood type, phone number, e-mail, IBAN, ...), e.g. "
        '"Sayo Abdallah lives in Uyo". A *Compromised* CLIP is trained on these pairs plus retain '
        "data, a *Clean* CLIP on the retain data only; an unlearning method starts from the "
        "Compromised model and must remove the forget associations while keeping everything else.",
        "",
        "This directory was regenerated by the SALMUBench reproduction pipeline in the layout of "
        "the official release (`cvc-mmu/salmubench-512-redistributed`), so the same evaluator "
        "runs on both. Every count below is read from the files in this directory.",
        "",
        "## Loading",
        "",
        "`datasets.load_dataset(<this directory>)` returns the four released splits (the `configs` "
        "entry of this card maps them); `image` decodes to a PIL image. The derived splits:",
        "",
        LOADER_SNIPPET.format(root=".").rstrip(),
        "",
        "## Splits",
        "",
        SPLIT_SEMANTICS.rstrip(),
        "",
        "## Counts",
        "",
        "Rows and distinct identities per split; the attribute columns count rows per attribute "
        "type (`data_field` in `sensitive_set_captions_metadata.json`).",
        "",
        *counts_markdown(fields, count_rows),
        "",
        f"- Identities in the sensitive splits: {len(people)}",
        f"- Countries: {len(country_list)} ({', '.join(country_list) or 'none recorded'})",
        f"- Attribute types: {len(fields)} ({', '.join(fields) or 'none'})",
        "",
        "## Generation",
        "",
        f"- Seed: {seed}",
        f"- Git commit of the pipeline: {commit}",
        "",
        "Generator versions (the environment that wrote this card; the pipeline runs every stage "
        "in one environment):",
        "",
        "| package | version |",
        "|---|---|",
        *[f"| {name} | {version} |" for name, version in versions.items()],
        "",
        "Data-generation configuration (the resolved keys that shape this dataset):",
        "",
        "```yaml",
        yaml.safe_dump(config, sort_keys=True, allow_unicode=True).rstrip(),
        "```",
        "",
        "## Face filter",
        "",
    ]
    if face_report is None:
        out += ["No face filter report was given for this build.", ""]
    else:
        source = Path(face_report_path).name if face_report_path else "the face filter report"
        out += [f"Summary of `{source}`:", "", *summarize_report(face_report), ""]
    out += [
        "## Metadata files",
        "",
        *[
            f"- `{name}`: {description}"
            for name, description in METADATA_FILES.items()
            if name in metadata
        ],
        "",
        "## Fictitious data",
        "",
        "All persons in this dataset are synthetic: the faces are generated images of no real "
        "person, and every name and attribute (city, job, blood type, phone number, e-mail, IBAN, "
        "credit card, passport, ...) is fictitious, drawn with Faker and made unique per identity. "
        "Any resemblance to a real person is coincidental.",
        "",
    ]
    unreserved = [d for d in domains if not is_reserved(d)]
    if not domains:
        out += ["No e-mail addresses are recorded in `identities_metadata.json`.", ""]
    elif unreserved:
        out += [
            f"E-mail domains: {', '.join(domains)}. **Warning:** {', '.join(unreserved)} "
            "is not an RFC 2606 reserved domain.",
            "",
        ]
    else:
        out += [
            f"E-mail domains: {', '.join(domains)}, all reserved by RFC 2606, so no address can "
            "belong to a real mailbox.",
            "",
        ]
    out += [
        "## License",
        "",
        "CC BY 4.0, as the official SALMUBench release.",
        "",
        "## Reproducibility of this card",
        "",
        "`salmu card` writes the same card for the same directory, configuration and face report, "
        "except the git commit line (`git rev-parse HEAD` of the checkout that ran it, `unknown` "
        "outside a git checkout) and the package versions of the running environment.",
    ]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# CLI


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--benchmark", required=True, help="benchmark directory written by `salmu splits`"
    )
    parser.add_argument("--config", required=True, help="resolved pipeline config (JSON or YAML)")
    parser.add_argument("--face-report", default=None, help="face filter report JSON (optional)")
    parser.add_argument(
        "--git-commit",
        default=None,
        help="commit to print (default: `git rev-parse HEAD`, 'unknown' outside a checkout)",
    )
    parser.add_argument("--out", required=True, help="the card, e.g. <benchmark>/README.md")


def run(args: argparse.Namespace) -> None:
    benchmark = Path(args.benchmark)
    if not benchmark.is_dir():
        raise FileNotFoundError(f"--benchmark {benchmark}: directory not found")
    config = load_config(args.config)
    face_report = load_face_report(args.face_report)
    commit = args.git_commit if args.git_commit else git_commit()
    card = render_card(
        benchmark,
        config,
        face_report,
        commit,
        package_versions(),
        config_path=args.config,
        face_report_path=args.face_report,
    )
    path = ensure_parent(args.out)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(card)
    tmp.replace(path)
    print(f"wrote {path}")
