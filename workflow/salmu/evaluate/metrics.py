"""SALMUBench metrics (docs/protocol.md §2) as pure numpy functions of L2-normalised embeddings.

A "sim" is the dot product of two unit vectors (cosine similarity). Every function takes row-aligned
arrays (``image_emb[i]`` belongs with ``text_emb[i]``) and returns the official JSON sub-dict (or a
float). An empty split gives NaN values and an ``EvaluationWarning``, never an exception.

Our interpretation of the items docs/protocol.md §7 leaves open:

- RetFail ties: ``rank = 1 + #(distractor scores > true score + tie_tol)``. A gallery entry that
  scores the same as the true caption (e.g. a distractor whose text *is* the true caption, drawn
  from the forget pool) never pushes the true caption down. ``tie_tol`` (default 1e-6) absorbs
  float32 rounding, because the true score and the distractor scores come from different BLAS
  calls and an identical text can differ in its last bits.
- ACS: the probe's only feature is the pair similarity. Members are the true (image_i, text_i)
  pairs; non-members pair image_i with ``text[perm[i]]`` for a seeded permutation (like the
  official ``np.random.permutation``: fixed points are not removed). The 2n examples are split
  stratified by class with ``test_fraction`` (default 0.5, which fits the official values being
  multiples of 1/30,468) into train/test; a logistic regression (L2, inverse strength ``c`` as in
  scikit-learn, default 1.0; feature standardised on train) is fitted by Newton's method; the
  value is the test accuracy (chance 0.5).
- IdZSC: classes are the identities present in forget_identity; a row is correct when its own
  identity's prompt has the highest sim (argmax; ties go to the first class).
- GenKnow: class embedding = normalised mean of the normalised prompt embeddings over templates
  (the OpenCLIP zero-shot recipe); value = top-1 accuracy.

Confidence intervals (ours; the paper reports none): ``cluster_bootstrap_ci`` is a percentile
bootstrap of a pair mean that resamples *identities* with replacement, because pairs of one
identity share a face and a name and are far from independent (a pair bootstrap would be too
narrow). Rows without an identity (retain_disjoint / fragile_set) are each their own cluster.
Every pair-level metric is a pair mean (RetFail MRR = mean 1/rank, R@1 = mean [rank == 1],
AssocStr, CoreAssoc, InterIdSim, IntraIdSim, VisIdInt, FragSim), so one routine covers them all.
ACS (a fitted probe), IdZSC and GenKnow get no interval.
"""

from __future__ import annotations

import warnings

import numpy as np

from salmu.evaluate.data import EvaluationWarning

NAN = float("nan")


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def _is_empty(n: int, metric: str) -> bool:
    if n == 0:
        warnings.warn(f"{metric}: empty split, reporting NaN", EvaluationWarning, stacklevel=3)
        return True
    return False


def _check_pairs(a: np.ndarray, b: np.ndarray, metric: str) -> None:
    if a.ndim != 2 or b.ndim != 2 or a.shape != b.shape:
        raise ValueError(
            f"{metric}: expected two (n, d) arrays of the same shape, got {a.shape} and {b.shape}"
        )


def pair_similarities(image_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
    """sim(image_i, text_i) for every row."""
    _check_pairs(image_emb, text_emb, "pair_similarities")
    return np.einsum("ij,ij->i", image_emb, text_emb, dtype=np.float64)


def pair_mean(image_emb: np.ndarray, text_emb: np.ndarray, metric: str = "pair_mean") -> float:
    """Mean pair sim over a split (InterIdSim, IntraIdSim, VisIdInt, FragSim; no per-id averaging)."""
    if _is_empty(len(image_emb), metric):
        return NAN
    return float(pair_similarities(image_emb, text_emb).mean())


# ----------------------------------------------------------------------------- 1.1 RetFail
def retrieval_ranks(
    image_emb: np.ndarray,
    caption_emb: np.ndarray,
    distractor_emb: np.ndarray,
    tie_tol: float = 1e-6,
    chunk: int = 4096,
) -> np.ndarray:
    """1-based rank of each image's own caption in {own caption} + distractors (image -> text)."""
    _check_pairs(image_emb, caption_emb, "RetFail")
    true = pair_similarities(image_emb, caption_emb)
    ranks = np.ones(len(image_emb), dtype=np.int64)
    if len(distractor_emb) == 0:
        return ranks
    for start in range(0, len(image_emb), chunk):  # bounded memory: chunk x n_distractors scores
        scores = image_emb[start : start + chunk] @ distractor_emb.T
        ranks[start : start + chunk] += (scores > true[start : start + chunk, None] + tie_tol).sum(
            1
        )
    return ranks


def ret_fail(
    image_emb: np.ndarray,
    caption_emb: np.ndarray,
    distractor_emb: np.ndarray,
    tie_tol: float = 1e-6,
) -> dict:
    if _is_empty(len(image_emb), "RetFail"):
        return {"R@1": NAN, "MRR": NAN, "outcomes": []}
    ranks = retrieval_ranks(image_emb, caption_emb, distractor_emb, tie_tol)
    return {
        "R@1": float((ranks == 1).mean()),
        "MRR": float((1.0 / ranks).mean()),
        "outcomes": [int(r) for r in ranks],
    }


# ----------------------------------------------------------------------------- 1.2 AssocStr
def assoc_str(image_emb: np.ndarray, text_emb: np.ndarray) -> dict:
    if _is_empty(len(image_emb), "AssocStr"):
        return {"mean": NAN, "scores": []}
    scores = pair_similarities(image_emb, text_emb)
    return {"mean": float(scores.mean()), "scores": [float(s) for s in scores]}


# ----------------------------------------------------------------------------- 1.3 ACS
def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic


def fit_logistic(
    x: np.ndarray, y: np.ndarray, c: float = 1.0, max_iter: int = 100, tol: float = 1e-10
) -> np.ndarray:
    """L2 logistic regression (scikit-learn's objective ``0.5|w|^2 + c * sum(logloss)``, intercept
    not penalised) by Newton's method. Returns ``theta = [w..., b]``; predict with ``[x, 1] @ theta``.
    """
    if c <= 0:
        raise ValueError(f"--acs-c must be > 0, got {c}")
    xa = np.hstack([np.asarray(x, dtype=np.float64), np.ones((len(x), 1))])
    y = np.asarray(y, dtype=np.float64)
    penalty = np.ones(xa.shape[1])
    penalty[-1] = 1e-12  # keeps the Hessian invertible when a class is perfectly separated
    theta = np.zeros(xa.shape[1])
    for _ in range(max_iter):
        p = _sigmoid(xa @ theta)
        grad = c * xa.T @ (p - y) + penalty * theta
        hess = c * (xa.T * (p * (1 - p))) @ xa + np.diag(penalty)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < tol:
            break
    return theta


def stratified_split(
    y: np.ndarray, test_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Per class, a random ``round(test_fraction * n_class)`` rows (at least 1, leaving 1) to test."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"--acs-test-fraction must be in (0, 1), got {test_fraction}")
    train, test = [], []
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        n_test = min(max(round(test_fraction * len(idx)), 1), len(idx) - 1)
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def acs(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    rng: np.random.Generator,
    test_fraction: float = 0.5,
    c: float = 1.0,
) -> dict:
    """Association-classifier score: test accuracy of a member/non-member probe (see module doc)."""
    n = len(image_emb)
    if n < 2:
        warnings.warn(
            f"ACS: needs at least 2 pairs, got {n}; reporting NaN", EvaluationWarning, stacklevel=2
        )
        return {"acs_accuracy": NAN}
    members = pair_similarities(image_emb, text_emb)
    non_members = pair_similarities(image_emb, text_emb[rng.permutation(n)])
    x = np.concatenate([members, non_members])[:, None]
    y = np.concatenate([np.ones(n), np.zeros(n)])
    train, test = stratified_split(y, test_fraction, rng)
    mean, std = x[train].mean(0), x[train].std(0)
    std[std == 0] = 1.0
    theta = fit_logistic((x[train] - mean) / std, y[train], c)
    decision = np.hstack([(x[test] - mean) / std, np.ones((len(test), 1))]) @ theta
    return {"acs_accuracy": float(((decision > 0) == (y[test] == 1)).mean())}


# ----------------------------------------------------------------------------- zero-shot
def zero_shot_hits(
    image_emb: np.ndarray, labels: np.ndarray, class_emb: np.ndarray, metric: str = "zero-shot"
) -> np.ndarray:
    """Per image: is ``argmax_k sim(image, class_k)`` its integer label?"""
    labels = np.asarray(labels)
    if len(labels) != len(image_emb):
        raise ValueError(f"{metric}: {len(image_emb)} images but {len(labels)} labels")
    if len(labels) == 0:
        return np.zeros(0, dtype=bool)
    if len(class_emb) == 0 or labels.min() < 0 or labels.max() >= len(class_emb):
        raise ValueError(f"{metric}: labels must index the {len(class_emb)} class embeddings")
    return np.argmax(image_emb @ class_emb.T, axis=1) == labels


def zero_shot_accuracy(
    image_emb: np.ndarray, labels: np.ndarray, class_emb: np.ndarray, metric: str = "zero-shot"
) -> float:
    """Top-1 accuracy of ``argmax_k sim(image, class_k)`` against integer ``labels``."""
    hits = zero_shot_hits(image_emb, labels, class_emb, metric)
    if _is_empty(len(hits), metric):
        return NAN
    return float(hits.mean())


def id_zsc(image_emb: np.ndarray, labels: np.ndarray, name_emb: np.ndarray) -> dict:
    acc = zero_shot_accuracy(image_emb, labels, name_emb, "IdZSC")
    return {"identity_classification_accuracy": acc}


def class_embeddings(prompt_emb: np.ndarray) -> np.ndarray:
    """(n_classes, n_templates, d) normalised prompt embeddings -> (n_classes, d) class embeddings."""
    if prompt_emb.ndim != 3:
        raise ValueError(
            f"class_embeddings: expected (classes, templates, d), got {prompt_emb.shape}"
        )
    return l2_normalize(prompt_emb.mean(axis=1))


def gen_know(image_emb: np.ndarray, labels: np.ndarray, class_emb: np.ndarray) -> float:
    return zero_shot_accuracy(image_emb, labels, class_emb, "GenKnow")


def gen_know_from_hits(hits: np.ndarray) -> float:
    return NAN if _is_empty(len(hits), "GenKnow") else float(np.mean(hits))


# ----------------------------------------------------------------------------- 1.5 CoreAssoc
def core_assoc(
    image_emb: np.ndarray, name_value_emb: np.ndarray, value_name_emb: np.ndarray
) -> dict:
    """Per row ``max(sim(img, "{name} {value}"), sim(img, "{value} {name}"))`` and their mean."""
    if _is_empty(len(image_emb), "CoreAssoc"):
        return {"mean": NAN, "scores": []}
    scores = np.maximum(
        pair_similarities(image_emb, name_value_emb), pair_similarities(image_emb, value_name_emb)
    )
    return {"mean": float(scores.mean()), "scores": [float(s) for s in scores]}


# ----------------------------------------------------------------------------- bootstrap CIs
def cluster_codes(clusters) -> np.ndarray:
    """Integer cluster code per row: rows sharing a non-null identity share a code; every row
    whose identity is null (None / NaN, e.g. retain_disjoint or fragile_set rows) is its own
    cluster (a singleton), so for an all-null split the bootstrap is the plain pair bootstrap."""
    codes = np.empty(len(clusters), dtype=np.int64)
    seen: dict[str, int] = {}
    next_code = 0  # codes in order of first appearance: 0..K-1
    for i, cluster in enumerate(clusters):
        if cluster is None or (isinstance(cluster, float) and cluster != cluster):
            codes[i], next_code = next_code, next_code + 1
        else:
            code = seen.setdefault(str(cluster), next_code)
            next_code += code == next_code
            codes[i] = code
    return codes


def cluster_bootstrap_ci(
    values: np.ndarray,
    clusters,
    n_resamples: int,
    level: float,
    rng: np.random.Generator,
    max_block: int = 1 << 22,
) -> np.ndarray:
    """Percentile bootstrap CIs of pair means, resampling *clusters* (identities), not pairs.

    ``values`` is (n,) or (n, m): per-row values of m metrics that average over the same rows
    (they share the resamples). One resample draws K of the K clusters with replacement; its
    estimate is the pooled mean of all rows of the drawn clusters (sum of cluster sums / sum of
    cluster sizes), i.e. exactly the statistic the metric reports, applied to the resample.
    Vectorised: per block of resamples, the (block, K) matrix of how often each cluster was drawn
    (one ``bincount``) times the cluster sums (one matmul); ``max_block`` bounds its size.

    Returns (m, 2) ``[low, high]`` = the ``(1 -/+ level) / 2`` quantiles, clipped to the range of
    ``values`` (a mean cannot leave it; this only removes float round-off, so a constant metric
    gets an exactly zero-width interval). NaN for an empty split; one cluster gives a zero-width
    interval (nothing to resample).
    """
    if n_resamples < 1:
        raise ValueError(f"--bootstrap must be >= 0 (0: no CIs), got {n_resamples}")
    if not 0 < level < 1:
        raise ValueError(f"--ci-level must be in (0, 1), got {level}")
    values = np.asarray(values, dtype=np.float64)
    values = values[:, None] if values.ndim == 1 else values
    codes = cluster_codes(clusters)
    if len(codes) != len(values):
        raise ValueError(f"bootstrap: {len(values)} values but {len(codes)} cluster labels")
    n, m = values.shape
    if n == 0:
        return np.full((m, 2), NAN)
    k = int(codes.max()) + 1
    sums = np.stack([np.bincount(codes, weights=values[:, j], minlength=k) for j in range(m)], 1)
    sizes = np.bincount(codes, minlength=k).astype(np.float64)
    estimates = np.empty((n_resamples, m))
    block = max(1, max_block // k)
    for start in range(0, n_resamples, block):
        b = min(block, n_resamples - start)
        drawn = rng.integers(0, k, size=(b, k)) + (np.arange(b) * k)[:, None]
        counts = np.bincount(drawn.ravel(), minlength=b * k).reshape(b, k).astype(np.float64)
        estimates[start : start + b] = (counts @ sums) / (counts @ sizes)[:, None]
    alpha = (1.0 - level) / 2.0
    ci = np.stack([_quantile(estimates, alpha), _quantile(estimates, 1.0 - alpha)], axis=1)
    return np.clip(ci, values.min(0)[:, None], values.max(0)[:, None])


def _quantile(x: np.ndarray, q: float) -> np.ndarray:
    """``np.quantile(x, q, axis=0)`` (default "linear" method) without its ~0.1 s first-call cost."""
    x = np.sort(x, axis=0)
    pos = q * (len(x) - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, len(x) - 1)
    return x[lo] + (pos - lo) * (x[hi] - x[lo])


def clustered_cis(
    groups: dict[str, tuple[list, dict[str, np.ndarray]]],
    n_resamples: int,
    level: float,
    rng_for,
) -> dict[str, list[float]]:
    """``{split: (identity_ids, {column: per-row values})}`` -> ``{column: [low, high]}``.

    Metrics over the same split share one resample set; each split draws from its own generator
    ``rng_for(split)``, so adding a split never changes another split's intervals.
    """
    out = {}
    for split, (clusters, columns) in groups.items():
        names = list(columns)
        stacked = np.stack([np.asarray(columns[c], dtype=np.float64) for c in names], axis=1)
        ci = cluster_bootstrap_ci(stacked, clusters, n_resamples, level, rng_for(split))
        out.update({c: [float(lo), float(hi)] for c, (lo, hi) in zip(names, ci, strict=True)})
    return out
