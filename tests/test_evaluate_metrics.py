"""Evaluation metrics on hand-built embeddings whose right answer is known by construction."""

import dataclasses
import math

import numpy as np
import polars as pl
import pytest

from salmu.evaluate import data, layout, metrics
from salmu.evaluate.data import EvaluationWarning
from salmu.evaluate.encode import TextTable
from salmu.evaluate.run import EvalConfig, compute_metrics, genknow_prompts

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


# ----------------------------------------------------------------------------- bootstrap CIs
def _clustered_values(rng, n_ids, per_id, between=1.0, within=0.1):
    """Per-identity offset (sd ``between``) + per-pair noise (sd ``within``): pairs of one
    identity are strongly correlated, so the identities, not the pairs, are the sampling units."""
    offsets = rng.normal(0.0, between, n_ids)
    values = np.repeat(offsets, per_id) + rng.normal(0.0, within, n_ids * per_id)
    ids = np.repeat([f"{i:08d}" for i in range(n_ids)], per_id).tolist()
    return values, ids


def _ci(values, ids, n=1000, level=0.95, seed=0):
    out = metrics.cluster_bootstrap_ci(values, ids, n, level, np.random.default_rng(seed))
    return out[0]


def test_bootstrap_ci_contains_the_estimate_and_is_seeded():
    values, ids = _clustered_values(np.random.default_rng(20), 40, 25)
    low, high = _ci(values, ids)
    assert low < values.mean() < high
    assert _ci(values, ids).tolist() == [low, high]  # same seed, same interval
    assert _ci(values, ids, seed=1).tolist() != [low, high]
    assert _ci(values, ids, level=0.5)[1] - _ci(values, ids, level=0.5)[0] < high - low


def test_bootstrap_ci_shrinks_with_more_identities():
    rng = np.random.default_rng(21)
    widths = []
    for n_ids in (10, 40, 160, 640):
        values, ids = _clustered_values(rng, n_ids, 20)
        low, high = _ci(values, ids)
        widths.append(high - low)
    assert widths == sorted(widths, reverse=True)
    # Cluster-level standard error ~ between / sqrt(n_ids): width roughly halves per 4x identities.
    assert widths[-1] < widths[0] / 5


def test_constant_metric_has_a_zero_width_ci():
    ids = np.repeat(["a", "b", "c", "d"], [1, 3, 7, 2]).tolist()
    values = np.full(len(ids), 0.1)  # 0.1 is not exact in binary: sums of it round
    low, high = _ci(values, ids)
    assert low == high == 0.1
    # A single identity: nothing to resample, whatever its values.
    assert _ci(np.arange(5.0), ["x"] * 5).tolist() == [2.0, 2.0]


def test_clustering_widens_the_ci_of_correlated_pairs():
    values, ids = _clustered_values(np.random.default_rng(22), 30, 40)
    low, high = _ci(values, ids)
    naive_low, naive_high = _ci(values, [None] * len(values))  # null id: every pair its own cluster
    naive_explicit = _ci(values, list(range(len(values))))
    assert [naive_low, naive_high] == pytest.approx(naive_explicit.tolist(), abs=0.02)
    # 30 identities of 40 near-identical pairs (intra-identity correlation rho ~ 0.99): the design
    # effect 1 + 39 * rho ~ 40 makes the clustered CI ~sqrt(40) ~ 6x wider than the naive one.
    assert (high - low) > 4 * (naive_high - naive_low)
    # Both are right about the centre.
    assert low < values.mean() < high and naive_low < values.mean() < naive_high


def test_bootstrap_matches_a_direct_loop_and_handles_null_ids():
    rng = np.random.default_rng(23)
    ids = ["a", "a", None, "b", "b", "b", None, "c"]
    values = rng.normal(size=(len(ids), 2))
    codes = metrics.cluster_codes(ids)
    assert codes.tolist() == [0, 0, 1, 2, 2, 2, 3, 4]  # nulls are singletons
    got = metrics.cluster_bootstrap_ci(values, ids, 200, 0.9, np.random.default_rng(5))
    # The same draws, done one resample at a time.
    draw_rng, estimates = np.random.default_rng(5), []
    for _ in range(200):
        drawn = draw_rng.integers(0, 5, size=5)
        rows = np.concatenate([np.flatnonzero(codes == k) for k in drawn])
        estimates.append(values[rows].mean(0))
    want = np.quantile(np.array(estimates), [0.05, 0.95], axis=0).T
    assert got == pytest.approx(want, abs=1e-12)
    # Block size does not change the draws' meaning, only their grouping: same distribution.
    small_blocks = metrics.cluster_bootstrap_ci(
        values, ids, 200, 0.9, np.random.default_rng(5), max_block=5
    )
    assert small_blocks == pytest.approx(want, abs=1e-12)


def test_bootstrap_edge_cases():
    empty = metrics.cluster_bootstrap_ci(np.zeros(0), [], 100, 0.95, np.random.default_rng(0))
    assert np.isnan(empty).all()
    with pytest.raises(ValueError, match="--ci-level"):
        metrics.cluster_bootstrap_ci(np.ones(3), ["a"] * 3, 10, 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="--bootstrap"):
        metrics.cluster_bootstrap_ci(np.ones(3), ["a"] * 3, -1, 0.9, np.random.default_rng(0))
    with pytest.raises(ValueError, match="cluster labels"):
        metrics.cluster_bootstrap_ci(np.ones(3), ["a"] * 2, 10, 0.9, np.random.default_rng(0))


def test_bootstrap_is_fast_at_paper_size():
    import time

    rng = np.random.default_rng(24)
    values = rng.normal(size=(30468, 4))  # forget: MRR, R@1, AssocStr, CoreAssoc
    ids = rng.integers(0, 580, 30468).astype(str).tolist()
    start = time.perf_counter()
    metrics.cluster_bootstrap_ci(values, ids, 1000, 0.95, np.random.default_rng(0))
    assert time.perf_counter() - start < 5.0  # ~0.05 s on one core; generous for loaded CI hosts


def test_compute_metrics_puts_cis_next_to_the_values():
    bench = _toy_benchmark()
    cfg = EvalConfig(benchmark=".", model_dir=".", out="x.json", distractors=2, bootstrap=200)
    rng = np.random.default_rng(25)
    needed = set()
    for split in data.BASE_SPLITS:
        needed.update(bench.splits[split]["text"].to_list())
    nv, vn = data.core_assoc_texts(bench)
    _, names, _ = data.idzsc_classes(bench)
    needed.update(nv + vn + [cfg.idzsc_template.format(name=n) for n in names])
    classnames = ["red circle", "blue square"]
    needed.update(genknow_prompts(classnames, cfg.genknow_templates))
    text_list = sorted(needed)
    texts = TextTable(text_list, unit(rng, len(text_list)))
    images = {s: unit(rng, bench.splits[s].height) for s in data.BASE_SPLITS}
    genknow = (unit(rng, 40), rng.integers(0, 2, 40), classnames)
    out = compute_metrics(bench, images, texts, cfg, genknow)
    assert set(out["cis"]) == set(layout.CI_COLUMNS)
    # GenKnow's interval is a bootstrap over its 40 images: a real width around the accuracy.
    low, high = out["cis"]["GenKnow"]
    assert low < out["genknow"] < high and high - low > 0.1
    result = layout.build_result(meta={"state": "x"}, **out)
    assert result["meta"]["bootstrap"]["resamples"] == 200
    assert set(result["efficacy"]["1.1_RetFail"]) == {"R@1", "MRR", "outcomes", "R@1_ci", "MRR_ci"}
    assert set(result["utility"]["2.2_InterIdSim"]) == {"mean", "mean_ci"}
    assert set(result["efficacy"]["1.3_ACS"]) == {"acs_accuracy"}  # no CI for ACS / IdZSC
    assert "accuracy_ci" in result["utility"]["2.1_GenKnow"]
    flat, cis = layout.flatten(result), layout.flatten_ci(result)
    assert list(cis) == layout.ci_column_names()
    for column in layout.CI_COLUMNS:
        assert cis[f"{column}_ci_low"] <= flat[column] <= cis[f"{column}_ci_high"], column
    # Holdout_identity has one identity (D): nothing to resample. Fragile set: one null-id row.
    assert (
        cis["InterIdSim_ci_low"] == cis["InterIdSim_ci_high"] == pytest.approx(flat["InterIdSim"])
    )
    assert cis["FragSim_ci_low"] == cis["FragSim_ci_high"] == pytest.approx(flat["FragSim"])
    # Same seed, same intervals; --bootstrap 0: the plain official layout.
    assert compute_metrics(bench, images, texts, cfg, genknow)["cis"] == out["cis"]
    plain = compute_metrics(bench, images, texts, dataclasses.replace(cfg, bootstrap=0))
    assert "cis" not in plain and "bootstrap" not in plain


def _build_args():
    return dict(
        ret_fail={"R@1": 0.0, "MRR": 0.1, "outcomes": []},
        assoc_str={"mean": 0.1, "scores": []},
        acs={"acs_accuracy": 0.5},
        id_zsc={"identity_classification_accuracy": 0.0},
        core_assoc={"mean": 0.1, "scores": []},
        genknow=None,
        inter_id_sim=0.1,
        intra_id_sim=0.1,
        vis_id_int=0.1,
        frag_sim=0.1,
        meta={},
    )


def test_flatten_ci_of_a_json_without_cis_is_nan():
    result = layout.build_result(**_build_args())  # no CIs: e.g. an official reference JSON
    assert list(layout.flatten(result)) == list(layout.METRIC_COLUMNS)  # unchanged
    assert all(math.isnan(v) for v in layout.flatten_ci(result).values())
    result["efficacy"]["1.1_RetFail"]["MRR_ci"] = [0.05, 0.2]
    assert layout.flatten_ci(result)["RetFail_MRR_ci_high"] == 0.2
    result["efficacy"]["1.1_RetFail"]["MRR_ci"] = "wide"
    with pytest.raises(ValueError, match="MRR_ci"):
        layout.flatten_ci(result)
    with pytest.raises(ValueError, match="ACS"):
        layout.build_result(**_build_args(), cis={"ACS": [0, 1]})
