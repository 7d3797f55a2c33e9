"""Evaluation metrics on hand-built embeddings whose right answer is known by construction."""

import math

import numpy as np
import polars as pl
import pytest

from salmu.evaluate import data, layout, metrics
from salmu.evaluate.data import EvaluationWarning
from salmu.evaluate.encode import TextTable
from salmu.evaluate.run import EvalConfig, compute_metrics

DIM = 64


def unit(rng, n, dim=DIM):
    return metrics.l2_normalize(rng.standard_normal((n, dim)))


def harmonic(n):
    return sum(1.0 / k for k in range(1, n + 1))


# ----------------------------------------------------------------------------- RetFail
def test_perfect_model_retrieves_every_caption():
    rng = np.random.default_rng(0)
    emb = unit(rng, 200)
    out = metrics.ret_fail(emb, emb.copy(), unit(rng, 100))
    assert out["MRR"] == 1.0 and out["R@1"] == 1.0
    assert out["outcomes"] == [1] * 200
    assert metrics.assoc_str(emb, emb)["mean"] == pytest.approx(1.0, abs=1e-6)


def test_random_model_is_at_chance():
    rng = np.random.default_rng(1)
    n, gallery = 3000, 101  # own caption + 100 distractors
    out = metrics.ret_fail(unit(rng, n), unit(rng, n), unit(rng, gallery - 1))
    # Exchangeable scores: the true caption's rank is uniform on 1..gallery.
    assert out["MRR"] == pytest.approx(harmonic(gallery) / gallery, abs=0.01)
    assert out["R@1"] == pytest.approx(1 / gallery, abs=0.01)
    assert min(out["outcomes"]) >= 1 and max(out["outcomes"]) <= gallery


def test_rank_counts_strictly_better_distractors():
    image = metrics.l2_normalize(np.array([[1.0, 0.0, 0.0]]))
    caption = metrics.l2_normalize(np.array([[0.8, 0.6, 0.0]]))  # sim 0.8
    distractors = metrics.l2_normalize(
        np.array([[0.9, 0.0, 0.436], [0.7, 0.7, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    )  # sims 0.9, 0.707, 1.0, 0.0 -> two strictly above
    assert metrics.retrieval_ranks(image, caption, distractors).tolist() == [3]


def test_identical_distractor_never_hurts():
    rng = np.random.default_rng(2)
    images, captions = unit(rng, 50), unit(rng, 50)
    # Every distractor is a copy of some image's true caption (a forget-pool draw of itself),
    # plus float noise far below the tie tolerance.
    distractors = captions + 1e-9
    ranks_with = metrics.retrieval_ranks(images, captions, distractors)
    for i in range(50):
        others = np.delete(distractors, i, axis=0)
        assert (
            ranks_with[i]
            == metrics.retrieval_ranks(images[i : i + 1], captions[i : i + 1], others)[0]
        )
    # The exact copy ties (rank 1); a caption nudged towards the image beats it (rank 2).
    assert metrics.retrieval_ranks(images[:1], captions[:1], captions[:1]).tolist() == [1]
    nudged = metrics.l2_normalize(captions[:1] + 0.05 * images[:1])
    assert metrics.retrieval_ranks(images[:1], captions[:1], nudged).tolist() == [2]


def test_no_distractors_rank_one():
    rng = np.random.default_rng(3)
    out = metrics.ret_fail(unit(rng, 5), unit(rng, 5), np.zeros((0, DIM), np.float32))
    assert out["outcomes"] == [1] * 5 and out["MRR"] == 1.0


# ----------------------------------------------------------------------------- ACS
def test_acs_perfect_and_random():
    rng = np.random.default_rng(4)
    emb = unit(rng, 1000)
    perfect = metrics.acs(emb, emb, np.random.default_rng(0))["acs_accuracy"]
    assert perfect == pytest.approx(1.0, abs=0.002)  # fixed points of the permutation aside
    chance = metrics.acs(unit(rng, 4000), unit(rng, 4000), np.random.default_rng(0))
    assert chance["acs_accuracy"] == pytest.approx(0.5, abs=0.03)


def test_acs_test_set_is_the_requested_fraction():
    rng = np.random.default_rng(5)
    n = 300
    # Accuracy on the 50% stratified test split of 2n examples is a multiple of 1/n.
    acc = metrics.acs(unit(rng, n), unit(rng, n), np.random.default_rng(1))["acs_accuracy"]
    assert abs(acc * n - round(acc * n)) < 1e-9
    y = np.array([0] * 10 + [1] * 30)
    train, test = metrics.stratified_split(y, 0.25, np.random.default_rng(0))
    assert (y[test] == 0).sum() == 2 and (y[test] == 1).sum() == 8  # round(2.5) == 2
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(40))


def test_acs_is_seeded():
    rng = np.random.default_rng(6)
    images, texts = unit(rng, 200), unit(rng, 200)
    images[:100] = texts[:100] * 0.5 + images[:100] * 0.5  # half the pairs partly aligned
    first = metrics.acs(images, texts, np.random.default_rng(3))
    assert first == metrics.acs(images, texts, np.random.default_rng(3))


def test_logistic_regression_recovers_a_threshold():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4000, 1))
    y = (rng.random(4000) < 1 / (1 + np.exp(-(3 * x[:, 0] - 1)))).astype(float)
    theta = metrics.fit_logistic(x, y, c=1e4)
    assert theta == pytest.approx([3.0, -1.0], abs=0.3)
    with pytest.raises(ValueError, match="acs-c"):
        metrics.fit_logistic(x, y, c=0)


# ----------------------------------------------------------------------------- zero-shot
def test_zero_shot_accuracy_and_class_embeddings():
    rng = np.random.default_rng(8)
    classes = unit(rng, 5)
    labels = np.array([0, 1, 2, 3, 4, 0, 1])
    images = classes[labels]
    images[-1] = classes[2]  # one mistake
    assert metrics.id_zsc(images, labels, classes)[
        "identity_classification_accuracy"
    ] == pytest.approx(6 / 7)
    prompts = np.stack([classes, classes + 0.01 * unit(rng, 5)], axis=1)  # (classes, templates, d)
    class_emb = metrics.class_embeddings(prompts)
    assert np.allclose(np.linalg.norm(class_emb, axis=1), 1.0, atol=1e-6)
    assert metrics.gen_know(images, labels, class_emb) == pytest.approx(6 / 7)
    with pytest.raises(ValueError, match="labels"):
        metrics.gen_know(images, labels + 10, class_emb)


def test_core_assoc_takes_the_better_order():
    rng = np.random.default_rng(9)
    images = unit(rng, 3)
    a, b = unit(rng, 3), images.copy()
    out = metrics.core_assoc(images, a, b)
    assert out["scores"] == pytest.approx([1.0] * 3, abs=1e-6)
    assert metrics.core_assoc(images, b, a)["mean"] == pytest.approx(1.0, abs=1e-6)


# ----------------------------------------------------------------------------- empty splits
def test_empty_split_gives_nan_with_a_warning():
    empty = np.zeros((0, DIM), np.float32)
    with pytest.warns(EvaluationWarning, match="empty split"):
        assert math.isnan(metrics.pair_mean(empty, empty, "FragSim"))
    with pytest.warns(EvaluationWarning):
        out = metrics.ret_fail(empty, empty, unit(np.random.default_rng(0), 3))
    assert math.isnan(out["MRR"]) and out["outcomes"] == []
    with pytest.warns(EvaluationWarning):
        assert math.isnan(metrics.acs(empty, empty, np.random.default_rng(0))["acs_accuracy"])
    with pytest.warns(EvaluationWarning):
        assert math.isnan(
            metrics.id_zsc(empty, np.zeros(0, int), empty)["identity_classification_accuracy"]
        )
    with pytest.warns(EvaluationWarning):
        assert math.isnan(metrics.core_assoc(empty, empty, empty)["mean"])


# ----------------------------------------------------------------------------- data
def _frame(rows):
    return pl.DataFrame(
        rows, orient="row", schema={"text": pl.Utf8, "identity_id": pl.Utf8, "file_name": pl.Utf8}
    )


def test_derived_splits_follow_the_official_loader():
    tables = {
        "forget": _frame([("f1", "A", "a1"), ("f2", "B", "b1"), ("f3", "C", "c1")]),
        "holdout_association": _frame([("h1", "C", "c2")]),
        "holdout_identity": _frame([("i1", "D", "d1")]),
        "retain_synth": _frame(
            [("r1", "A", "a9"), ("r2", None, "n1"), ("r3", None, "n2"), ("r4", "D", "d9")]
        ),
    }
    tables = {k: v.with_row_index("row") for k, v in tables.items()}
    out = data.derive_splits(tables, ["n2", "a9", "missing"])
    assert out["retain_joint"]["file_name"].to_list() == ["a9"]
    assert out["retain_disjoint"]["file_name"].to_list() == ["n1", "n2"]
    assert out["fragile_set"]["file_name"].to_list() == ["n2"]  # only from retain_disjoint
    assert out["fragile_set"]["row"].to_list() == [2]  # index into retain_synth
    assert out["forget_identity"]["identity_id"].to_list() == ["A", "B"]


def test_distractors_match_the_global_rng_calls_and_cap():
    forget, retain = [f"f{i}" for i in range(40)], [f"r{i}" for i in range(7)]
    np.random.seed(42)
    want_f = list(np.random.choice(np.array(forget), 10, replace=False))
    with pytest.warns(EvaluationWarning):
        got_f, _ = data.draw_distractors(forget, retain, 10, 42)
    assert got_f == want_f
    with pytest.warns(EvaluationWarning, match="retain_disjoint pool"):
        _, capped = data.draw_distractors(forget, retain, 10, 42)
    assert sorted(capped) == sorted(retain)


# ----------------------------------------------------------------------------- wiring
def _toy_benchmark():
    """Identities A, B (forget only), C (forget + holdout_association), D (holdout_identity)."""
    ids = {"A": "Ann Lee", "B": "Bo Chan", "C": "Cy Diaz", "D": "Di Evans"}
    forget = [
        (f"{n} lives in city{k}", i, f"{i}_{k}")
        for i, n in ids.items()
        if i != "D"
        for k in range(4)
    ]
    tables = {
        "forget": _frame(forget),
        "holdout_association": _frame(
            [(f"Cy Diaz works as job{k}", "C", f"C_h{k}") for k in range(3)]
        ),
        "holdout_identity": _frame(
            [(f"Di Evans lives in city{k}", "D", f"D_{k}") for k in range(3)]
        ),
        "retain_synth": _frame(
            [
                ("a photo of a person", "A", "A_g0"),
                ("a person outdoors", None, "N_0"),
                ("a face", None, "N_1"),
            ]
        ),
    }
    tables = {k: v.with_row_index("row") for k, v in tables.items()}
    captions = {r[2]: {"value": f"city{r[2][-1]}"} for r in forget}
    bench = data.Benchmark(
        root=".",
        splits=data.derive_splits(tables, ["N_1"]),
        identities={i: {"name": n} for i, n in ids.items()},
        captions=captions,
        fragile_ids=["N_1"],
    )
    bench.forget_distractors, bench.retain_distractors = data.draw_distractors(
        tables["forget"]["text"].to_list(), ["a person outdoors", "a face"], 2, 0
    )
    return bench


def test_model_that_forgets_only_the_forget_split():
    """Forget images are unrelated to every text; all other images equal their caption's embedding."""
    bench = _toy_benchmark()
    cfg = EvalConfig(benchmark=".", model_dir=".", out="x.json", distractors=2)
    rng = np.random.default_rng(10)
    needed = set()
    for split in data.BASE_SPLITS:
        needed.update(bench.splits[split]["text"].to_list())
    nv, vn = data.core_assoc_texts(bench)
    _, names, labels = data.idzsc_classes(bench)
    needed.update(nv + vn + [cfg.idzsc_template.format(name=n) for n in names])
    text_list = sorted(needed)
    texts = TextTable(text_list, unit(rng, len(text_list)))
    images = {s: texts(bench.splits[s]["text"].to_list()) for s in data.BASE_SPLITS}
    images["forget"] = unit(rng, bench.splits["forget"].height)
    out = compute_metrics(bench, images, texts, cfg)
    result = layout.build_result(meta={}, **out)
    flat = layout.flatten(result)
    assert list(flat) == list(layout.METRIC_COLUMNS)
    assert flat["RetFail_MRR"] < 0.7 and flat["AssocStr"] == pytest.approx(0, abs=0.35)
    for column in ("InterIdSim", "IntraIdSim", "VisIdInt", "FragSim"):
        assert flat[column] == pytest.approx(1.0, abs=1e-5), column
    assert flat["GenKnow"] == -1 and result["utility"]["2.1_GenKnow"]["source"] == "skipped"
    assert len(result["efficacy"]["1.1_RetFail"]["outcomes"]) == 12
    assert names == ["Ann Lee", "Bo Chan"] and labels.tolist() == [0] * 4 + [1] * 4

    # The same benchmark through a perfect model: forget captions retrieved, IdZSC from prompts.
    images["forget"] = texts(bench.splits["forget"]["text"].to_list())
    perfect = layout.flatten(
        layout.build_result(meta={}, **compute_metrics(bench, images, texts, cfg))
    )
    assert perfect["RetFail_MRR"] == 1.0 and perfect["AssocStr"] == pytest.approx(1.0, abs=1e-5)


def test_flatten_reads_official_json_and_names_missing_keys():
    official = {
        "efficacy": {
            "1.1_RetFail": {"R@1": 0.0, "MRR": 0.0008, "outcomes": [3]},
            "1.2_AssocStr": {"mean": 0.14, "scores": []},
            "1.3_ACS": {"acs_accuracy": 0.6},
            "1.4_IdZSC": {"identity_classification_accuracy": 0.01},
            "1.5_CoreAssoc": {"mean": 0.15, "scores": []},
        },
        "utility": {
            "2.1_GenKnow": {"ImageNet1k_Accuracy": -1},
            "2.2_InterIdSim": {"mean": 0.14},
            "2.3_IntraIdSim": {"mean": 0.14},
            "2.4_VisIdInt": {"mean": None},
            "2.5_FragSim": {"mean": 0.31},
        },
    }
    flat = layout.flatten(official)
    assert flat["GenKnow"] == -1 and flat["RetFail_MRR"] == 0.0008 and math.isnan(flat["VisIdInt"])
    del official["utility"]["2.5_FragSim"]
    with pytest.raises(ValueError, match="utility/2.5_FragSim/mean"):
        layout.flatten(official)
