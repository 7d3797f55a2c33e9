"""Tests for ``salmu retain``: scenes, captions, the GenKnow set and recognisability at 32 px."""

from __future__ import annotations

import argparse
import re

import numpy as np
import polars as pl
import pytest
from PIL import Image

from salmu import retain
from salmu.io import open_image, read_parquet
from salmu.seeding import stream


def retain_args(tmp_path, suffix="", **overrides) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    retain.configure_parser(parser)
    args = parser.parse_args(
        [
            "--n-pairs",
            "120",
            "--size",
            "64",
            "--genknow-images-per-class",
            "2",
            "--seed",
            "3",
            "--jpeg-quality",
            "90",
            "--out-pairs",
            str(tmp_path / f"retain{suffix}.parquet"),
            "--out-genknow",
            str(tmp_path / f"genknow{suffix}.parquet"),
        ]
    )
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("retain")
    retain.run(retain_args(tmp_path))
    return (
        tmp_path,
        read_parquet(tmp_path / "retain.parquet"),
        read_parquet(tmp_path / "genknow.parquet"),
    )


def test_retain_table_layout(outputs):
    _, pairs, _ = outputs
    assert pairs.columns == ["file_name", "text", "image", "width", "height"]
    assert pairs["file_name"].to_list() == [f"scene_{i:06d}.jpg" for i in range(120)]
    for row in pairs.head(20).iter_rows(named=True):
        assert open_image(row["image"]).size == (row["width"], row["height"]) == (64, 64)
    assert pairs["text"].n_unique() > 100  # captions vary


def test_captions_name_colour_and_shape(outputs):
    _, pairs, _ = outputs
    colors = "|".join(retain.COLORS)
    shapes = "|".join(sorted({*retain.SHAPES, *map(retain.plural, retain.SHAPES)}, key=len)[::-1])
    phrase = re.compile(rf"\b({colors}) ({shapes})\b")
    for text in pairs["text"]:
        assert phrase.search(text), text
        assert not re.search(r"\ba [aeiou]", text), text  # "an orange", never "a orange"
    # Every object of a drawn scene is named with its colour right before its shape.
    for i in range(200):
        scene, caption = retain.draw_scene(stream(0, "t", i))
        for obj in scene["objects"]:
            color, shape = obj["color"], obj["shape"]
            assert f"{color} {shape}" in caption or f"{color} {retain.plural(shape)}" in caption
        assert scene["background"] in caption
        assert len(scene["objects"]) in (1, 2)


def test_genknow_labels_match_classnames(outputs):
    _, pairs, genknow = outputs
    names = retain.classnames()
    assert len(names) == len(retain.COLORS) * len(retain.SHAPES) == 64
    assert genknow.columns == ["file_name", "label", "classname", "image"]
    assert genknow.schema["label"] == pl.Int32
    assert genknow["file_name"].to_list() == [f"genknow_{i:06d}.jpg" for i in range(128)]
    for label, name in zip(genknow["label"], genknow["classname"]):
        assert names[label] == name
    assert genknow.group_by("classname").len()["len"].to_list() == [2] * 64
    # Held out: no GenKnow image is byte-equal to a training image.
    assert not set(genknow["image"].to_list()) & set(pairs["image"].to_list())


def test_byte_identical_rerun(outputs):
    tmp_path = outputs[0]
    retain.run(retain_args(tmp_path, suffix="2"))
    for name in ("retain", "genknow"):
        first = (tmp_path / f"{name}.parquet").read_bytes()
        assert first == (tmp_path / f"{name}2.parquet").read_bytes()


def test_genknow_excludes_training_images():
    first = retain.build_genknow(1, 32, seed=0, jpeg_quality=90)
    # Pretend the first image of every class was a training image: all must be redrawn.
    again = retain.build_genknow(
        1, 32, seed=0, jpeg_quality=90, exclude=set(map(retain.image_digest, first["image"]))
    )
    assert not set(first["image"].to_list()) & set(again["image"].to_list())


def test_bad_flags(tmp_path):
    with pytest.raises(ValueError, match="--n-pairs"):
        retain.run(retain_args(tmp_path, n_pairs=0))
    with pytest.raises(ValueError, match="--genknow-images-per-class"):
        retain.run(retain_args(tmp_path, genknow_images_per_class=0))
    with pytest.raises(ValueError, match="hexagon"):
        retain.shape_points("hexagon", 0, 0, 1, 0)


def test_with_commonpool_no_scene_is_drawn_and_genknow_is_the_same(outputs, tmp_path):
    """CommonPool brings the retain pairs; the retain stage still builds the GenKnow set."""
    retain.run(retain_args(tmp_path, backend="commonpool"))
    pairs = read_parquet(tmp_path / "retain.parquet")
    assert pairs.height == 0 and pairs.columns == outputs[1].columns
    assert read_parquet(tmp_path / "genknow.parquet").equals(outputs[2])


def test_objects_recognisable_at_32px():
    """At 32x32 the object must cover real area and its silhouette must identify the shape.

    Shape is classified by nearest centroid on the object's mask, cropped to its bounding box
    (so position and size do not matter); chance is 1/8.
    """
    frame = retain.build_genknow(8, 64, seed=5, jpeg_quality=90)
    names = frame["classname"].to_list()
    pixels = np.stack(
        [
            np.asarray(open_image(d).resize((32, 32), Image.BICUBIC), np.float32)
            for d in frame["image"]
        ]
    )
    colors = np.array([retain.COLORS[n.rsplit(" ", 1)[0]] for n in names], np.float32)
    masks = np.linalg.norm(pixels - colors[:, None, None, :], axis=-1) < 70
    assert masks.mean(axis=(1, 2)).min() >= 0.03  # even a small star covers 30+ pixels

    def silhouette(mask):
        ys, xs = np.nonzero(mask)
        box = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.uint8) * 255
        return np.asarray(Image.fromarray(box).resize((12, 12), Image.BILINEAR), np.float32).ravel()

    features = np.stack([silhouette(m) for m in masks])
    shapes = np.array([n.rsplit(" ", 1)[1] for n in names])
    train = np.arange(len(names)) % 8 < 5
    classes = sorted(set(shapes))
    centroids = np.stack([features[train & (shapes == s)].mean(axis=0) for s in classes])
    dist = ((features[~train][:, None] - centroids[None]) ** 2).sum(-1)
    accuracy = float((np.array(classes)[dist.argmin(1)] == shapes[~train]).mean())
    assert accuracy >= 0.8, f"shape accuracy {accuracy:.2f} (chance 0.125)"
