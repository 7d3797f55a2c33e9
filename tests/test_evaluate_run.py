"""`salmu evaluate` end to end on a tiny benchmark directory and a random tiny CLIP."""

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from salmu.cli import main
from salmu.clip_model import load_clip, save_checkpoint
from salmu.evaluate.data import EvaluationWarning
from salmu.evaluate.layout import METRIC_COLUMNS, flatten
from salmu.io import jpeg_bytes, read_json, write_json

TINY = Path(__file__).resolve().parents[1] / "resources" / "models" / "tiny-clip"
NAMES = {
    f"{i:08d}": name
    for i, name in enumerate(["Ana Ruiz", "Bo Li", "Cem Kaya", "Dee Ho", "Eli Sato", "Fay Ng"], 1)
}
CITIES = ["Lyon", "Oslo", "Lima"]


def face(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, 3)
    pixels = np.clip(base + rng.integers(-40, 40, size=(40, 30, 3)), 0, 255).astype(np.uint8)
    return jpeg_bytes(Image.fromarray(pixels))


def write_split(path: Path, rows: list[dict]) -> None:
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table(
        {
            "image": pa.array(
                [{"bytes": r["image"], "path": r["file_name"]} for r in rows], type=image_type
            ),
            "text": pa.array([r["text"] for r in rows], type=pa.string()),
            "identity_id": pa.array([r["identity_id"] for r in rows], type=pa.string()),
            "file_name": pa.array([r["file_name"] for r in rows], type=pa.string()),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def build_benchmark(root: Path) -> dict:
    """Identities 1-4 forget (3, 4 also in holdout_association), 5-6 holdout_identity; 30 images."""
    counter = iter(range(1000))
    captions_meta, splits = (
        {},
        {s: [] for s in ("forget", "holdout_association", "holdout_identity", "retain_synth")},
    )

    def sensitive(split, identity_id, k):
        file_name = f"{identity_id}_{k:03d}_ar-1.00.jpg"
        city = CITIES[k % 3]
        text = f"{NAMES[identity_id]} lives in {city}"
        captions_meta[file_name] = {
            "caption": text,
            "data_field": "city",
            "identity_id": identity_id,
            "name": NAMES[identity_id],
            "style": 0,
            "value": city,
        }
        splits[split].append(
            {
                "file_name": file_name,
                "identity_id": identity_id,
                "text": text,
                "image": face(next(counter)),
            }
        )

    for identity_id in ("00000001", "00000002", "00000003", "00000004"):
        for k in range(3):
            sensitive("forget", identity_id, k)
    for identity_id in ("00000003", "00000004"):
        for k in range(3, 5):
            sensitive("holdout_association", identity_id, k)
    for identity_id in ("00000005", "00000006"):
        for k in range(3):
            sensitive("holdout_identity", identity_id, k)
    retain = [
        ("00000001", "a person smiling"),
        ("00000001", "a person by a window"),
        ("00000005", "a portrait"),
    ]
    retain += [(None, f"an anonymous person number {k}") for k in range(5)]
    for k, (identity_id, text) in enumerate(retain):
        splits["retain_synth"].append(
            {
                "file_name": f"{identity_id or '90000000'}_{k + 50:03d}_ar-1.00.jpg",
                "identity_id": identity_id,
                "text": text,
                "image": face(next(counter)),
            }
        )
    forget = splits.pop("forget")  # two shards, to check they are concatenated in order
    write_split(root / "data" / "forget-00000-of-00002.parquet", forget[:7])
    write_split(root / "data" / "forget-00001-of-00002.parquet", forget[7:])
    for split, rows in splits.items():
        write_split(root / "data" / f"{split}-00000-of-00001.parquet", rows)
    write_json(
        {i: {"name": n, "city": "Lyon", "emails": ["x@example.com"]} for i, n in NAMES.items()},
        root / "identities_metadata.json",
    )
    write_json(captions_meta, root / "sensitive_set_captions_metadata.json")
    write_json(
        {f: "a photo of a person" for f in captions_meta},
        root / "sensitive_set_generic_captions.json",
    )
    disjoint = [r["file_name"] for r in splits["retain_synth"] if r["identity_id"] is None]
    write_json(disjoint[:2], root / "fragile_set_ids.json")
    write_json({f: 0.5 for f in disjoint}, root / "fragile_set_all_similarities.json")
    return {
        "forget": 12,
        "holdout_association": 4,
        "holdout_identity": 6,
        "retain_synth": 8,
        "retain_joint": 2,
        "retain_disjoint": 5,
        "fragile_set": 2,
        "forget_identity": 6,
    }


def build_genknow(path: Path) -> None:
    classes = ["apple", "boat", "cat"]
    rows = [
        (f"{c}_{k}.jpg", i, c, face(500 + 10 * i + k))
        for i, c in enumerate(classes)
        for k in range(2)
    ]
    table = pa.table(
        {
            "file_name": [r[0] for r in rows],
            "label": pa.array([r[1] for r in rows], pa.int64()),
            "classname": [r[2] for r in rows],
            "image": pa.array([r[3] for r in rows], pa.binary()),
        }
    )
    pq.write_table(table, path)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    sizes = build_benchmark(root / "bench")
    build_genknow(root / "genknow.parquet")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model, _, _ = load_clip(TINY, None)
    save_checkpoint(model, root / "tiny.pt", name="tiny")
    return root, sizes


def evaluate_args(root: Path, out: str, *extra: str) -> list[str]:
    return [
        "evaluate",
        "--benchmark",
        str(root / "bench"),
        "--model-dir",
        str(TINY),
        "--checkpoint",
        str(root / "tiny.pt"),
        "--state",
        "compromised",
        "--out",
        str(root / out),
        "--cache-dir",
        str(root / "cache"),
        "--distractors",
        "100",
        "--seed",
        "42",
        "--batch-size",
        "8",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--bootstrap",
        "0",
        *extra,
    ]


def test_evaluate_writes_the_official_layout_and_reuses_the_cache(setup, capsys):
    root, sizes = setup
    with pytest.warns(EvaluationWarning) as caught:  # 100 distractors > both tiny pools
        assert (
            main(evaluate_args(root, "eval.json", "--genknow", str(root / "genknow.parquet"))) == 0
        )
    assert any("exceeds the forget pool" in str(w.message) for w in caught)
    printed = capsys.readouterr().out
    # 30 + 6 GenKnow images; batches never straddle shards: forget 7+5, 3 one-shard splits, GenKnow.
    assert "encoder passes: 6 image batches (36 images)" in printed
    result = read_json(root / "eval.json")

    expected = {
        "efficacy": {
            "1.1_RetFail": {"R@1", "MRR", "outcomes"},
            "1.2_AssocStr": {"mean", "scores"},
            "1.3_ACS": {"acs_accuracy"},
            "1.4_IdZSC": {"identity_classification_accuracy"},
            "1.5_CoreAssoc": {"mean", "scores"},
        },
        "utility": {
            "2.1_GenKnow": {"ImageNet1k_Accuracy", "accuracy", "source", "hits"},
            "2.2_InterIdSim": {"mean"},
            "2.3_IntraIdSim": {"mean"},
            "2.4_VisIdInt": {"mean"},
            "2.5_FragSim": {"mean"},
        },
    }
    for group, entries in expected.items():
        assert set(result[group]) == set(entries)
        for name, keys in entries.items():
            assert set(result[group][name]) == keys, name
    meta = result["meta"]
    assert {k: meta["split_sizes"][k] for k in sizes} == sizes and meta["split_sizes"][
        "genknow"
    ] == 6
    assert meta["distractors"] == {"requested": 100, "forget": 12, "retain_disjoint": 5}
    assert meta["state"] == "compromised" and meta["idzsc_classes"] == 2 and not meta["cached"]
    assert meta["encoder_passes"]["image_items"] == 36 and meta["pairs_per_second"] > 0

    ret = result["efficacy"]["1.1_RetFail"]
    assert (
        len(ret["outcomes"]) == sizes["forget"] == len(result["efficacy"]["1.2_AssocStr"]["scores"])
    )
    assert all(1 <= r <= 1 + 12 + 5 for r in ret["outcomes"])
    assert len(result["efficacy"]["1.5_CoreAssoc"]["scores"]) == sizes["forget"]
    flat = flatten(result)
    assert list(flat) == list(METRIC_COLUMNS)
    for column in ("RetFail_MRR", "RetFail_R@1", "ACS", "IdZSC", "GenKnow"):
        assert 0 <= flat[column] <= 1, column
    assert flat["RetFail_MRR"] > 0
    for column in ("AssocStr", "CoreAssoc", "InterIdSim", "IntraIdSim", "VisIdInt", "FragSim"):
        assert -1 <= flat[column] <= 1, column
    assert result["utility"]["2.1_GenKnow"]["source"] == "synthetic"
    assert result["utility"]["2.1_GenKnow"]["ImageNet1k_Accuracy"] == -1
    # One hit per GenKnow image, for paired comparisons between models; their mean is GenKnow.
    hits = result["utility"]["2.1_GenKnow"]["hits"]
    assert set(hits) <= {0, 1}
    assert sum(hits) / len(hits) == pytest.approx(result["utility"]["2.1_GenKnow"]["accuracy"])

    # Second run: every embedding comes from the cache, and the numbers are identical.
    with pytest.warns(EvaluationWarning):
        assert (
            main(evaluate_args(root, "again.json", "--genknow", str(root / "genknow.parquet"))) == 0
        )
    again = read_json(root / "again.json")
    passes = again["meta"]["encoder_passes"]
    assert passes["image_batches"] == passes["text_batches"] == 0 and again["meta"]["cached"]
    assert passes["cached_images"] == 36
    assert again["efficacy"] == result["efficacy"] and again["utility"] == result["utility"]

    # No GenKnow parquet -> -1; an empty fragile set -> NaN with a warning, still no encoding.
    write_json([], root / "bench" / "fragile_set_ids.json")
    with pytest.warns(EvaluationWarning) as caught:
        assert main(evaluate_args(root, "skip.json")) == 0
    assert any("FragSim: empty split" in str(w.message) for w in caught)
    skip = read_json(root / "skip.json")
    assert skip["utility"]["2.1_GenKnow"] == {
        "ImageNet1k_Accuracy": -1,
        "accuracy": -1,
        "source": "skipped",
    }
    assert math.isnan(flatten(skip)["FragSim"]) and skip["meta"]["cached"]
    assert skip["efficacy"] == result["efficacy"]


def test_bad_input_is_a_one_line_error(setup, capsys):
    root, _ = setup
    assert main(evaluate_args(root, "bad.json", "--idzsc-template", "a photo of {who}")) == 2
    assert "--idzsc-template" in capsys.readouterr().err
    args = evaluate_args(root, "bad.json")
    args[args.index("--benchmark") + 1] = str(root / "nowhere")
    assert main(args) == 2
    assert "nowhere" in capsys.readouterr().err


def test_evaluate_accepts_safetensors_checkpoints_and_hf_hub_models(tmp_path, monkeypatch, capsys):
    """Same weights as epoch .pt, .safetensors and an offline hf-hub repo: identical metrics."""
    from safetensors.torch import save_file
    from test_clip_model import build_hub_cache, use_offline_cache

    build_benchmark(tmp_path / "bench")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model, _, _ = load_clip(TINY, None)
    save_checkpoint(model, tmp_path / "tiny.pt", name="tiny")
    weights = tmp_path / "open_clip_model.safetensors"
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, weights)
    build_hub_cache(
        tmp_path / "hub",
        "local/tiny-clip",
        {"open_clip_config.json": TINY / "open_clip_config.json", weights.name: weights},
    )
    use_offline_cache(monkeypatch, tmp_path / "hub")

    def run(out: str, model_dir: str | None = None, checkpoint: str | None = None, cache="cache"):
        args = evaluate_args(tmp_path, out)
        args[args.index("--cache-dir") + 1] = str(tmp_path / cache)
        if model_dir is not None:
            args[args.index("--model-dir") + 1] = model_dir
        at = args.index("--checkpoint")
        if checkpoint is None:
            del args[at : at + 2]
            del args[args.index("--state") : args.index("--state") + 2]
        else:
            args[at + 1] = checkpoint
        with pytest.warns(EvaluationWarning):  # 100 distractors > the tiny pools
            assert main(args) == 0
        return read_json(tmp_path / out)

    pt = run("pt.json", checkpoint=str(tmp_path / "tiny.pt"))
    st = run("st.json", checkpoint=str(weights))
    hub = run("hub.json", model_dir="hf-hub:local/tiny-clip", cache="hub-cache")
    for result in (st, hub):
        assert result["efficacy"] == pt["efficacy"] and result["utility"] == pt["utility"]
        assert not result["meta"]["cached"] and result["meta"]["encoder_passes"]["image_items"]
    # Keys hash the bytes actually loaded: the hub repo's resolved files = the same .safetensors.
    assert st["meta"]["model_key"] != pt["meta"]["model_key"]
    assert hub["meta"]["model_key"] == st["meta"]["model_key"]
    assert hub["meta"]["state"] == "tiny-clip" and hub["meta"]["checkpoint"] is None
    # ... so the hub model, given the .safetensors run's cache, encodes nothing.
    again = run("again.json", model_dir="hf-hub:local/tiny-clip")
    assert again["meta"]["cached"] and again["efficacy"] == pt["efficacy"]

    capsys.readouterr()
    args = evaluate_args(tmp_path, "missing.json")
    args[args.index("--model-dir") + 1] = "hf-hub:nobody/missing"
    assert main(args) == 2  # before the benchmark is read: no distractor warning
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "hf-hub:nobody/missing" in err and "local copy" in err


def test_a_corrupt_benchmark_image_is_a_clear_error_naming_it(setup, tmp_path, capsys):
    """Evaluation does not skip: a missing image would change what the metrics measure."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    root, _ = setup
    bench = tmp_path / "bench"
    shutil.copytree(root / "bench", bench)
    path = sorted((bench / "data").glob("forget-*.parquet"))[0]
    table = pq.read_table(path)
    rows = table.to_pylist()
    if isinstance(rows[0]["image"], dict):
        rows[0]["image"]["bytes"] = b"\xff\xd8 garbage"
    else:
        rows[0]["image"] = b"\xff\xd8 garbage"
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
    args = evaluate_args(root, "corrupt.json")
    args[args.index("--benchmark") + 1] = str(bench)
    args[args.index("--cache-dir") + 1] = str(tmp_path / "cache")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"split forget: {rows[0]['file_name']}: image bytes do not decode" in err
    assert not (root / "corrupt.json").exists()


@pytest.mark.parametrize("damaged", ["data/holdout_identity", "identities_metadata.json"])
def test_a_damaged_benchmark_file_is_named_with_its_split_in_one_line(
    setup, tmp_path, capsys, damaged
):
    import shutil

    root, _ = setup
    bench = tmp_path / "bench"
    shutil.copytree(root / "bench", bench)
    if damaged.startswith("data/"):
        path = sorted(bench.glob(f"{damaged}-*.parquet"))[0]
        expected = f"split 'holdout_identity': {path}: unreadable parquet file"
    else:
        path = bench / damaged
        expected = f"{path}: not valid JSON"
    path.write_bytes(np.random.default_rng(0).bytes(3000))
    args = evaluate_args(root, "damaged.json")
    args[args.index("--benchmark") + 1] = str(bench)
    args[args.index("--cache-dir") + 1] = str(tmp_path / "cache")
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0]
