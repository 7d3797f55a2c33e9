"""Released-artifacts mode: outside benchmark and reference models, nothing generated or trained."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml
from test_card import make_benchmark

from salmu import releases, vs_paper
from salmu.import_benchmark import import_benchmark
from salmu.io import write_json
from salmu.released_layout import SPLITS
from salmu.shards import MANIFEST

from helpers import ROOT, job_counts, put_in_hub_cache, snakemake

TINY_MODEL = ROOT / "resources" / "models" / "tiny-clip"
GENERATION_RULES = ("personas", "faces", "face_filter", "captions", "splits", "retain", "train")


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> dict[str, Path]:
    """A benchmark in the released layout and two weight files of the tiny architecture."""
    import torch

    from salmu.clip_model import load_clip

    tmp = tmp_path_factory.mktemp("outside")
    bench = make_benchmark(tmp)
    files = {"benchmark": bench}
    for seed, role in enumerate(("clean", "compromised")):
        torch.manual_seed(seed)
        model, _, _ = load_clip(TINY_MODEL)
        from safetensors.torch import save_file

        files[role] = tmp / f"{role}.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(files[role]))
    return files


def released_overlay(outside: dict[str, Path], **changes) -> dict:
    overlay = {
        "run": "pytest-released",
        "artifacts": {
            "benchmark": str(outside["benchmark"]),
            "clean": {"model": str(TINY_MODEL), "checkpoint": str(outside["clean"])},
            "compromised": {"model": str(TINY_MODEL), "checkpoint": str(outside["compromised"])},
        },
        "evaluate": {"distractors": 2},
        "unlearn": {"only": ["finetune", "neg_grad"], "seeds": [0], "budgets": [5]},
    }
    for key, value in changes.items():
        section, _, name = key.partition(".")
        overlay.setdefault(section, {})[name] = value
    return overlay


def dry_run(tmp_path: Path, overlay: dict, check: bool = True):
    path = tmp_path / "released.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return snakemake("-n", "--configfile", str(path), check=check)


def test_dry_run_of_released_mode_generates_and_trains_nothing(outside, tmp_path):
    counts = job_counts(dry_run(tmp_path, released_overlay(outside)).stdout)
    assert not set(GENERATION_RULES) & set(counts), counts
    assert counts["import_benchmark"] == 1 and counts["import_model"] == 2
    assert counts["unlearn"] == 2 and counts["evaluate"] == 4
    assert counts["leakcheck_unlearn"] == 1 and counts["vs_paper"] == 1
    assert "card" not in counts  # an outside benchmark keeps its own card


def broken_benchmark(outside, tmp_path, drop: str) -> Path:
    bench = tmp_path / "bench"
    shutil.copytree(outside["benchmark"], bench)
    for path in bench.rglob(drop):
        path.unlink()
    return bench


BAD = {
    "a split missing": (
        lambda o, t: {"artifacts.benchmark": str(broken_benchmark(o, t, "holdout_identity-*"))},
        "has no data/holdout_identity-*.parquet",
    ),
    "a metadata file missing": (
        lambda o, t: {"artifacts.benchmark": str(broken_benchmark(o, t, "fragile_set_ids.json"))},
        "has no fragile_set_ids.json; the metrics need it",
    ),
    "generic captions for Generic Captions": (
        lambda o, t: {
            "artifacts.benchmark": str(
                broken_benchmark(o, t, "sensitive_set_generic_captions.json")
            ),
            "unlearn.only": ["generic_captions"],
        },
        "which the generic_captions method trains on",
    ),
    "a hub file not in the cache": (
        lambda o, t: {
            "artifacts.compromised": {
                "model": "ViT-B-16",
                "checkpoint": "hf-hub:cvc-mmu/clip-vit-b-16-salmu-compromised/weights.bin",
            }
        },
        "artifacts.compromised.checkpoint: weights.bin of cvc-mmu/clip-vit-b-16-salmu-compromised "
        "is not in the local Hugging Face cache; pre-fetch it where there is internet "
        "(hf download cvc-mmu/clip-vit-b-16-salmu-compromised)",
    ),
    "a benchmark hub id not in the cache": (
        lambda o, t: {"artifacts.benchmark": "hf-hub:cvc-mmu/salmubench-512-redistributed"},
        "hf download cvc-mmu/salmubench-512-redistributed --repo-type dataset",
    ),
    "an architecture name without weights": (
        lambda o, t: {"artifacts.clean": {"model": "ViT-B-16"}},
        "artifacts.clean.checkpoint: not set, but the architecture name ViT-B-16 holds no weights",
    ),
    "a retain folder without samples": (
        lambda o, t: {"artifacts.retain_shards": [str(empty_shards(t))]},
        "holds no samples",
    ),
    "a retain folder that is no shard folder": (
        lambda o, t: {"artifacts.retain_shards": [str(t)]},
        f"has no {MANIFEST}; expected a shard folder written by `salmu shards`",
    ),
    "a local artifact under results/": (
        lambda o, t: {"artifacts.genknow": str(in_results(t))},
        "lies under results/, which this workflow writes",
    ),
    "genknow outside released mode": (
        lambda o, t: {"artifacts.benchmark": None, "artifacts.genknow": str(o["clean"])},
        "config key artifacts.genknow: only read in released-artifacts mode",
    ),
    "a benchmark without its reference models": (
        lambda o, t: {"artifacts.clean": None},
        "config key artifacts.clean: not set, but artifacts.benchmark is",
    ),
}


def in_results(tmp_path: Path) -> Path:
    path = ROOT / "results" / "pytest-released-artifact" / "genknow.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def empty_shards(tmp_path: Path) -> Path:
    folder = tmp_path / "empty_shards"
    write_json({"num_samples": 0, "shards": [], "samples": []}, folder / MANIFEST)
    return folder


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_released_input_fails_before_any_job(outside, tmp_path, case):
    changes, message = BAD[case]
    result = dry_run(tmp_path, released_overlay(outside, **changes(outside, tmp_path)), check=False)
    assert result.returncode != 0
    assert message in result.stderr + result.stdout, result.stderr[-2000:]


def test_import_joins_shards_in_name_order_and_fills_absent_optional_files(outside, tmp_path):
    source = broken_benchmark(outside, tmp_path, "fragile_set_all_similarities.json")
    forget = pl.read_parquet(source / "data" / "forget-00000-of-00001.parquet")
    (source / "data" / "forget-00000-of-00001.parquet").unlink()
    half = forget.height // 2
    forget[:half].write_parquet(source / "data" / "forget-00000-of-00002.parquet")
    forget[half:].write_parquet(source / "data" / "forget-00001-of-00002.parquet")
    out = tmp_path / "imported"
    summary = import_benchmark(source, out)
    assert pl.read_parquet(out / "data" / "forget-00000-of-00001.parquet").equals(forget)
    single = "holdout_identity-00000-of-00001.parquet"
    assert (out / "data" / single).read_bytes() == (source / "data" / single).read_bytes()
    assert json.loads((out / "fragile_set_all_similarities.json").read_text()) == {}
    assert summary["absent_in_source"] == ["fragile_set_all_similarities.json"]
    assert set(summary["rows"]) == set(SPLITS) and summary["imported_from"] == str(source)


def test_import_model_from_a_hub_cache_records_where_it_came_from(outside, tmp_path, monkeypatch):
    import torch
    from huggingface_hub import constants

    from salmu.clip_model import read_state_dict
    from salmu.import_model import import_model

    cache = tmp_path / "hub"
    put_in_hub_cache(
        cache,
        "someone/tiny-clean",
        {
            "open_clip_config.json": TINY_MODEL / "open_clip_config.json",
            "open_clip_model.safetensors": outside["clean"],
        },
        revision="b" * 40,
    )
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    record = import_model("hf-hub:someone/tiny-clean", None, "clean", tmp_path / "clean")
    assert record["weights_hub_id"] == "someone/tiny-clean"
    assert record["weights_revision"] == "b" * 40
    assert record["released"] is None and "not the released weights" in record["description"]
    assert record["weights_sha256"] in record["description"]
    config = (tmp_path / "clean" / "open_clip_config.json").read_bytes()
    assert config == (TINY_MODEL / "open_clip_config.json").read_bytes()
    ours = read_state_dict(tmp_path / "clean" / "checkpoint.pt")
    theirs = read_state_dict(outside["clean"])
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_weights_of_another_architecture_are_refused(outside, tmp_path):
    from salmu.import_model import import_model

    with pytest.raises(ValueError, match="weights do not fit"):
        import_model("ViT-B-32", str(outside["clean"]), "clean", tmp_path / "clean")


def test_the_release_is_recognised_by_its_weights_not_its_name():
    clean = releases.MODELS[0]
    assert releases.describe("clean", clean.sha256).startswith("released Clean (cvc-mmu/")
    assert "released Compromised weights" in releases.describe("clean", releases.MODELS[1].sha256)
    assert "not the released weights" in releases.describe("clean", "0" * 64)


def test_vs_paper_puts_each_metric_beside_its_published_value(tmp_path):
    summary = pl.DataFrame(
        {
            "method": ["clean", "compromised", "delete", "delete", "salun"],
            "budget": [None, None, 5.0, 1.0, 5.0],
            "RetFail_MRR": [0.002, 0.3, 0.01, 0.2, 0.1],
            "RetFail_MRR_seed_low": [None, None, 0.0, 0.1, 0.0],
            "RetFail_MRR_seed_high": [None, None, 0.02, 0.3, 0.2],
            "GenKnow": [-1.0, 0.6, 0.6, 0.6, 0.6],
        }
    )
    source = tmp_path / "source.json"
    write_json({"role": "compromised", "description": "compromised: not the release"}, source)
    frame = vs_paper.compare(summary, [source])
    # Published rows only: delete at 5x, not at 1x; salun has none.
    assert set(frame["model"]) == {"clean", "compromised", "delete"}
    delete = frame.filter((pl.col("model") == "delete") & (pl.col("metric") == "RetFail_MRR"))
    assert delete["paper"].item() == 0.001 and delete["paper_source"].item() == "paper 5x"
    assert delete["difference"].item() == pytest.approx(0.009)
    assert delete["paper_in_interval"].item() is True
    # Clean: the official evaluator's value (the same models) wins over the paper's rounding.
    clean = frame.filter((pl.col("model") == "clean") & (pl.col("metric") == "RetFail_MRR"))
    assert clean["paper"].item() == 0.0008147
    assert clean["weights"].item() == "clean: trained by this run"
    assert set(frame.filter(pl.col("model") == "compromised")["weights"]) == {
        "compromised: not the release"
    }
    # GenKnow -1 is "not measured": no value, no difference.
    genknow = frame.filter((pl.col("model") == "clean") & (pl.col("metric") == "GenKnow"))
    assert genknow["ours"].item() is None and genknow["difference"].item() is None
    assert "| delete | 5x | RetFail_MRR | 0.0100 |" in vs_paper.to_markdown(frame)


def test_the_released_overlay_plans_the_paper_fan_out_on_the_cached_releases(
    outside, tmp_path, monkeypatch
):
    """resources/tiers/released.yaml as a user runs it, on a cache laid out like the three
    pre-fetched repositories at their pinned revisions (stand-in files of the right names)."""
    cache = tmp_path / "hub"
    bench = outside["benchmark"]
    put_in_hub_cache(
        cache,
        releases.BENCHMARK_ID,
        {p.name: p for p in bench.iterdir()},
        revision=releases.BENCHMARK_REVISION,
        kind="datasets",
    )
    for model in releases.MODELS:
        weights = {model.weights_file: outside[model.role]}
        put_in_hub_cache(cache, model.hub_id, weights, revision=model.revision)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    small_pools = tmp_path / "pools.yaml"
    small_pools.write_text(yaml.safe_dump({"evaluate": {"distractors": 2}}))
    tiers = ("resources/tiers/paper.yaml", "resources/tiers/released.yaml", str(small_pools))
    result = snakemake("-n", "--profile", "slurm", "--configfile", *tiers)
    counts = job_counts(result.stdout)
    assert not set(GENERATION_RULES) & set(counts), counts
    assert counts["import_model"] == 2 and counts["import_benchmark"] == 1
    paper = yaml.safe_load((ROOT / "resources/tiers/paper.yaml").read_text())["unlearn"]
    fan_out = len(paper["methods"]) * len(paper["budgets"]) * len(paper["seeds"])
    assert counts["unlearn"] == fan_out and counts["evaluate"] == fan_out + 2
