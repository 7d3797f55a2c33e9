"""salmu card: the dataset card of a benchmark directory matches its files and makes
`datasets.load_dataset(<dir>)` load the four released splits."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import polars as pl
import pytest
import yaml

from salmu import card
from salmu.cli import main
from salmu.io import write_json, write_parquet

from conftest import make_faces_and_captions

COUNTRIES = ["FR", "JP", "NG"]
CONFIG = {
    "run": "pytest-card",
    "seed": 1,
    "personas": {"n_identities": 12, "email_domains": ["example.com"]},
    "captions": {"paraphrase": "none"},
    "splits": {"holdout_identity_fraction": 0.25},
}
# The shape of `salmu face-filter`'s report: nested counts, long per-item lists.
FACE_REPORT = {
    "settings": {"embedder": "pixels", "min_images": 5, "min_similarity": 0.4, "checks": ["a"]},
    "before": {"images": 120, "identities": 14, "images_per_kind": {"sensitive": 100}},
    "dropped": {"images": 7, "by_reason": {"off_identity": 5, "gender": 2}},
    "dropped_identities": ["00000012", "00000013"],
    "kept_per_identity": {f"{i:08d}": {"sensitive": 9, "generic": 1} for i in range(30)},
    "dropped_images": [{"file_name": f"x{i}.jpg", "reasons": ["gender"]} for i in range(7)],
}


def identities(n: int, domain: str = "example.com") -> dict:
    return {
        f"{i:08d}": {
            "name": f"Person {i}",
            "country_code": COUNTRIES[i % len(COUNTRIES)],
            "emails": [f"person{i}@{domain}"],
        }
        for i in range(n)
    }


def make_benchmark(root: Path, domain: str = "example.com") -> Path:
    faces, captions = make_faces_and_captions()
    write_parquet(faces, root / "faces.parquet")
    write_parquet(captions, root / "captions.parquet")
    write_json(identities(12, domain), root / "ids.json")
    argv = ["splits", "--faces", str(root / "faces.parquet")]
    argv += ["--captions", str(root / "captions.parquet"), "--identities", str(root / "ids.json")]
    argv += ["--partial-forget-fraction", "0.5", "--fragile-fraction", "0.4"]
    assert main([*argv, "--seed", "1", "--out-dir", str(root / "bench")]) == 0
    return root / "bench"


def run_card(bench: Path, tmp: Path, *extra: str, config: dict = CONFIG) -> int:
    (tmp / "config.yaml").write_text(yaml.safe_dump(config))
    write_json(FACE_REPORT, tmp / "face_report.json")
    argv = ["card", "--benchmark", str(bench), "--config", str(tmp / "config.yaml")]
    argv += ["--face-report", str(tmp / "face_report.json")]
    return main([*argv, "--out", str(bench / "README.md"), *extra])


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("card")
    bench = make_benchmark(tmp)
    assert run_card(bench, tmp, "--git-commit", "0123abc") == 0
    return bench


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def table_rows(text: str) -> dict[str, dict[str, int]]:
    """The counts table, split -> column -> value."""
    lines = [line for line in text.splitlines() if line.startswith("| split |")]
    start = text.splitlines().index(lines[0])
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for line in text.splitlines()[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        name = cells[0].removesuffix(" (derived)")
        rows[name] = {h: int(c) for h, c in zip(header[1:], cells[1:])}
    return rows


def parquet(bench: Path, split: str) -> pl.DataFrame:
    return pl.read_parquet(bench / "data" / f"{split}-00000-of-00001.parquet")


def test_counts_match_the_parquet_files(bench):
    text = (bench / "README.md").read_text()
    rows = table_rows(text)
    meta = json.loads((bench / "sensitive_set_captions_metadata.json").read_text())
    for split in card.SPLITS:
        frame = parquet(bench, split)
        assert rows[split]["rows"] == frame.height > 0
        assert rows[split]["identities"] == frame["identity_id"].drop_nulls().n_unique()
        assert rows[split]["rows without identity_id"] == frame["identity_id"].null_count()
        fields = [meta[f]["data_field"] for f in frame["file_name"] if f in meta]
        for field in ("city", "job", "blood_type", "iban"):
            assert rows[split][field] == fields.count(field)
    assert rows["retain_synth"]["rows without identity_id"] == 10
    summary = json.loads((bench / "splits_summary.json").read_text())
    assert rows["retain_joint"]["rows"] == summary["retain_joint_rows"]
    assert rows["retain_disjoint"]["rows"] == summary["retain_disjoint_rows"]
    assert rows["fragile_set"]["rows"] == 4
    fully = summary["identities"]["forget_identity (fully forgotten)"]
    assert rows["forget_identity"]["identities"] == fully
    assert (
        rows["forget_identity"]["rows"] + rows["forget_association"]["rows"]
        == (rows["forget"]["rows"])
    )
    assert "- Countries: 3 (FR, JP, NG)" in text
    assert "- Identities in the sensitive splits: 12" in text


def test_front_matter_and_sections(bench):
    text = (bench / "README.md").read_text()
    meta = front_matter(text)
    assert meta["license"] == "cc-by-4.0" and meta["pretty_name"] and meta["tags"]
    files = meta["configs"][0]["data_files"]
    assert [f["split"] for f in files] == list(card.SPLITS)
    assert all(f["path"] == f"data/{f['split']}-*.parquet" for f in files)
    names = [f["name"] for f in meta["dataset_info"]["features"]]
    assert names == ["image", "text", "identity_id", "file_name"]
    assert meta["dataset_info"]["features"][0]["dtype"] == "image"
    for entry in meta["dataset_info"]["splits"]:
        assert entry["num_examples"] == parquet(bench, entry["name"]).height
    # Seed, config, versions, commit, face filter, the fictitious-data note.
    assert "- Seed: 1" in text and "- Git commit of the pipeline: 0123abc" in text
    config_block = text.split("```yaml\n")[1].split("```")[0]
    assert yaml.safe_load(config_block) == CONFIG
    for package in ("python", *card.VERSION_PACKAGES):
        assert f"| {package} | " in text
    for line in (
        "- **dropped_identities**: 00000012, 00000013",
        "  - by_reason: gender=2, off_identity=5",
        "  - images: 7",
        "  - images_per_kind: sensitive=100",
        "  - min_similarity: 0.4",
        "  - embedder: pixels",
        "- **kept_per_identity**: 30 entries",
        "- **dropped_images**: 7 entries",
    ):
        assert line in text.splitlines(), line
    assert "fictitious" in text and "example.com, all reserved by RFC 2606" in text
    for split in ("retain_joint", "retain_disjoint", "fragile_set", "forget_identity"):
        assert f"**{split}**" in text


def test_load_dataset_maps_the_four_splits(bench, tmp_path):
    import datasets

    ds = datasets.load_dataset(str(bench), cache_dir=str(tmp_path / "cache"))
    assert sorted(ds) == sorted(card.SPLITS)
    for split in card.SPLITS:
        assert ds[split].num_rows == parquet(bench, split).height
        assert isinstance(ds[split].features["image"], datasets.Image)
        assert list(ds[split].features) == ["image", "text", "identity_id", "file_name"]
    image = ds["forget"][0]["image"]
    assert image.size == (32, 32)

    # The card's loader snippet builds the derived splits with the card's counts.
    text = (bench / "README.md").read_text()
    snippet = text.split("```python\n")[1].split("```")[0]
    snippet = snippet.replace('Path(".")', f"Path({str(bench)!r})")
    snippet = snippet.replace("load_dataset(str(root))", "load_dataset(str(root), cache_dir=CACHE)")
    scope = {"CACHE": str(tmp_path / "cache")}
    exec(snippet, scope)
    rows = table_rows(text)
    for split in ("retain_joint", "retain_disjoint", "fragile_set", "forget_identity"):
        assert scope[split].num_rows == rows[split]["rows"], split


def test_card_is_deterministic_and_reads_the_git_commit(bench, tmp_path):
    first = (bench / "README.md").read_text()
    assert run_card(bench, tmp_path, "--git-commit", "0123abc") == 0
    assert (bench / "README.md").read_text() == first
    assert run_card(bench, tmp_path) == 0
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"],
        cwd=Path(card.__file__).parent,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    expected = head if head else "unknown"
    text = (bench / "README.md").read_text()
    assert f"- Git commit of the pipeline: {expected}" in text
    assert re.sub(r"pipeline: \S+", "", text) == re.sub(r"pipeline: \S+", "", first)
    # Restore the module fixture's card for the other tests.
    assert run_card(bench, tmp_path, "--git-commit", "0123abc") == 0


def test_errors_name_the_file_or_flag(bench, tmp_path, capsys):
    assert run_card(tmp_path / "nowhere", tmp_path) == 2
    assert "--benchmark" in capsys.readouterr().err
    assert run_card(bench, tmp_path, config={**CONFIG, "seed": 7}) == 2
    err = capsys.readouterr().err
    assert "seed 7" in err and "splits_summary.json" in err
    (tmp_path / "list.json").write_text("[1, 2]")
    argv = ["card", "--benchmark", str(bench), "--config", str(tmp_path / "list.json")]
    assert main([*argv, "--out", str(tmp_path / "README.md")]) == 2
    assert "--config" in capsys.readouterr().err

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "data").mkdir()
    assert run_card(broken, tmp_path) == 2
    assert "data/forget-*.parquet" in capsys.readouterr().err


def test_unreserved_email_domain_is_flagged(tmp_path):
    bench = make_benchmark(tmp_path, domain="gmail.com")
    assert run_card(bench, tmp_path, "--git-commit", "x") == 0
    text = (bench / "README.md").read_text()
    assert "**Warning:** gmail.com is not an RFC 2606 reserved domain" in text


def test_datasets_reads_the_cards_splits_with_their_sizes(bench):
    # datasets' own YAML reader: a split without num_bytes is "malformed" there.
    from datasets import DatasetInfo

    info = DatasetInfo._from_yaml_dict(
        front_matter((bench / "README.md").read_text())["dataset_info"]
    )
    for split in card.SPLITS:
        frame = parquet(bench, split)
        assert info.splits[split].num_examples == frame.height
        assert info.splits[split].num_bytes > 0
