"""`salmu evaluate --imagenet-path`: GenKnow on a (fake) local ImageNet-1k val folder."""

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES, SIMPLE_IMAGENET_TEMPLATES
from PIL import Image
from test_evaluate_run import TINY, build_benchmark, evaluate_args, face

from salmu.cli import main
from salmu.clip_model import load_clip, save_checkpoint
from salmu.evaluate import imagenet
from salmu.evaluate.data import EvaluationWarning
from salmu.evaluate.layout import flatten
from salmu.io import read_json

WNIDS = [f"n{k:08d}" for k in range(1000)]
# Class index -> number of images; every other class folder is empty.
FILLED = {0: 3, 1: 2, 500: 3, 999: 2}
N_FILES = sum(FILLED.values())
N_BENCH_IMAGES = 30  # build_benchmark's four released splits


def build_imagenet(root: Path, wnids=WNIDS) -> list[str]:
    """ImageFolder val set: one folder per wnid, images only in ``FILLED`` classes (one is a PNG,
    and a non-image file that ImageFolder would skip). Returns the image paths, ImageFolder order."""
    for wnid in wnids:
        (root / wnid).mkdir(parents=True)
    files = []
    for label, count in FILLED.items():
        for k in range(count):
            name = f"ILSVRC2012_val_{label:05d}{k:03d}." + (
                "png" if (label, k) == (1, 1) else "JPEG"
            )
            path = root / wnids[label] / name
            if path.suffix == ".png":
                Image.fromarray(np.full((20, 24, 3), 7 * k, np.uint8)).save(path)
            else:
                path.write_bytes(face(1000 + 10 * label + k))
            files.append(f"{wnids[label]}/{name}")
    (root / wnids[0] / "notes.txt").write_text("not an image")
    return files


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate_imagenet")
    build_benchmark(root / "bench")
    files = build_imagenet(root / "imagenet")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model, _, _ = load_clip(TINY, None)
    save_checkpoint(model, root / "tiny.pt", name="tiny")
    return root, files


def run_imagenet(root: Path, out: str, *extra: str) -> dict:
    args = evaluate_args(
        root,
        out,
        "--imagenet-path",
        str(root / "imagenet"),
        "--imagenet-templates",
        "simple",
        *extra,
    )
    with pytest.warns(EvaluationWarning):  # 100 distractors > the tiny pools
        assert main(args) == 0
    return read_json(root / out)


def test_class_index_is_the_sorted_folder_position(tmp_path):
    shuffled = WNIDS[:]
    random.Random(0).shuffle(shuffled)  # creation order must not matter
    for wnid in shuffled:
        (tmp_path / wnid).mkdir()
    for label in (0, 7, 999):
        (tmp_path / WNIDS[label] / "a.JPEG").write_bytes(face(label))
    (tmp_path / WNIDS[7] / "sub").mkdir()
    (tmp_path / WNIDS[7] / "sub" / "b.jpg").write_bytes(face(3))
    (tmp_path / ".cache").mkdir()  # hidden entries are not classes

    val = imagenet.scan(tmp_path)
    assert val.wnids == WNIDS and val.limit is None and val.cache_name == "imagenet1k"
    assert val.files == [
        f"{WNIDS[0]}/a.JPEG",
        f"{WNIDS[7]}/a.JPEG",
        f"{WNIDS[7]}/sub/b.jpg",
        f"{WNIDS[999]}/a.JPEG",
    ]
    assert val.labels.tolist() == [0, 7, 7, 999]
    names = imagenet.classnames()
    assert names == list(IMAGENET_CLASSNAMES) and len(names) == 1000
    # Real wnids sort as open_clip's list: n01440764 first = tench, n15075141 last = toilet paper.
    assert [names[i] for i in val.labels] == [
        IMAGENET_CLASSNAMES[0],
        IMAGENET_CLASSNAMES[7],
        IMAGENET_CLASSNAMES[7],
        IMAGENET_CLASSNAMES[999],
    ]
    assert names[0] == "tench" and names[999] == "toilet paper"

    limited = imagenet.scan(tmp_path, limit=1)
    assert limited.labels.tolist() == [0, 7, 999] and limited.cache_name == "imagenet1k_limit1"
    assert limited.fingerprint != val.fingerprint

    simple = imagenet.templates("simple")
    assert [t.format("cat") for t in simple] == [f("cat") for f in SIMPLE_IMAGENET_TEMPLATES]
    assert len(imagenet.templates("openai")) == 80


def test_wrong_class_count_is_a_value_error_naming_the_flag(tmp_path, capsys):
    for wnid in WNIDS[:999]:
        (tmp_path / "val" / wnid).mkdir(parents=True)
    with pytest.raises(ValueError, match=r"--imagenet-path .*evaluate\.imagenet_path.*found 999"):
        imagenet.scan(tmp_path / "val")
    # A flat (unsorted) val folder gets a hint.
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "ILSVRC2012_val_00000001.JPEG").write_bytes(face(0))
    with pytest.raises(ValueError, match=r"found 0 sub-folders and 1 other entries.*class folders"):
        imagenet.scan(tmp_path / "flat")
    with pytest.raises(ValueError, match="--imagenet-limit 0"):
        imagenet.scan(tmp_path / "val", limit=0)
    # 1000 class folders but no images at all.
    (tmp_path / "val" / WNIDS[999]).mkdir()
    with pytest.raises(ValueError, match="no image files"):
        imagenet.scan(tmp_path / "val")

    # Through the CLI: a one-line error before the benchmark is read.
    (tmp_path / "val" / WNIDS[999]).rmdir()
    capsys.readouterr()
    args = [
        "evaluate",
        "--benchmark",
        str(tmp_path / "no-bench"),
        "--model-dir",
        str(TINY),
        "--out",
        str(tmp_path / "x.json"),
        "--imagenet-path",
        str(tmp_path / "val"),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--imagenet-path" in err and "evaluate.imagenet_path" in err
    assert "found 999 sub-folders" in err


def test_evaluate_scores_imagenet_and_reuses_the_cache(setup, capsys):
    root, files = setup
    result = run_imagenet(root, "inet.json", "--genknow", str(root / "absent.parquet"))
    printed = capsys.readouterr().out
    genknow = result["utility"]["2.1_GenKnow"]
    assert genknow["source"] == "imagenet1k"
    assert 0 <= genknow["accuracy"] <= 1 and genknow["ImageNet1k_Accuracy"] == genknow["accuracy"]
    assert flatten(result)["GenKnow"] == genknow["accuracy"]
    meta = result["meta"]
    # Every file encoded once (the .txt skipped); --genknow is not read (it does not even exist).
    assert meta["split_sizes"]["genknow"] == N_FILES == len(files)
    assert meta["encoder_passes"]["image_items"] == N_BENCH_IMAGES + N_FILES
    assert f"({N_BENCH_IMAGES + N_FILES} images)" in printed
    assert meta["genknow_classes"] == 1000 and meta["imagenet"]["prompts_per_class"] == 7
    assert meta["imagenet"]["images"] == N_FILES and meta["imagenet"]["limit"] is None

    # The accuracy, recomputed from the cached embeddings with open_clip's own template lambdas.
    cache = root / "cache" / meta["model_key"]
    with np.load(cache / "images_imagenet1k.npz") as npz:
        assert npz["file_name"].tolist() == files
        image_emb = npz["emb"]
    with np.load(cache / "texts.npz") as npz:
        index = {t: i for i, t in enumerate(npz["texts"].tolist())}
        text_emb = npz["emb"]
    class_emb = np.stack(
        [
            text_emb[[index[f(c)] for f in SIMPLE_IMAGENET_TEMPLATES]].mean(axis=0)
            for c in IMAGENET_CLASSNAMES
        ]
    )
    class_emb /= np.linalg.norm(class_emb, axis=1, keepdims=True)
    labels = [WNIDS.index(f.split("/")[0]) for f in files]
    expected = float((np.argmax(image_emb @ class_emb.T, axis=1) == labels).mean())
    assert genknow["accuracy"] == pytest.approx(expected, abs=1e-9)

    # Second run: nothing encoded, same numbers.
    again = run_imagenet(root, "again.json")
    passes = again["meta"]["encoder_passes"]
    assert passes["image_batches"] == passes["text_batches"] == 0 and again["meta"]["cached"]
    assert passes["cached_images"] == N_BENCH_IMAGES + N_FILES
    assert again["utility"] == result["utility"] and again["efficacy"] == result["efficacy"]

    # --imagenet-limit 1: first image per class, own cache entry (the full one stays valid).
    limited = run_imagenet(root, "limit.json", "--imagenet-limit", "1")
    passes = limited["meta"]["encoder_passes"]
    assert limited["meta"]["split_sizes"]["genknow"] == len(FILLED)
    assert passes["image_items"] == len(FILLED) and passes["text_batches"] == 0
    assert limited["utility"]["2.1_GenKnow"]["source"] == "imagenet1k"
    assert run_imagenet(root, "full.json")["meta"]["cached"]

    # A changed file (new mtime / size) invalidates the ImageNet cache only.
    changed = root / "imagenet" / files[0]
    changed.write_bytes(face(4242))
    rerun = run_imagenet(root, "changed.json")["meta"]["encoder_passes"]
    assert rerun["image_items"] == N_FILES and rerun["cached_images"] == N_BENCH_IMAGES
