"""Association inference (ours): does a model still treat each forget pair as a member?

A likelihood-ratio test per forget pair, in the spirit of LiRA (Carlini et al., 2022) and its
unlearning variant U-LiRA: the *in* references are models that trained on the pair (Compromised
and shadow Compromised models trained with other seeds), the *out* references models that did
not (Clean and shadow Cleans). Per pair ``i`` the score ``s`` is the cosine similarity of the
image with its caption (AssocStr's per-pair term); the in and out scores get a Gaussian each,
with per-pair means and one variance per side pooled over the pairs (LiRA's fixed-variance
variant, the one it advises with few shadow models), and

    Λ_i(model) = log N(s_i; μ_in,i, σ_in) − log N(s_i; μ_out,i, σ_out).

The attack tells an attacked model's Λ over the forget pairs from the same pairs' Λ under an
independently trained Clean: the last shadow pair's Clean, whose pair stays out of the fit (a
shadow pair's two models share their training seed, and so their initial weights). It reports
the AUC and the TPR at 1 % FPR. Clean itself is an *out* reference, so its own AUC sits below
0.5: a model is as forgetful as a never-trained one when its AUC is near Clean's, and a model
above Compromised's holds its pairs at least as firmly.

With one model a side (no shadow pair in the fit) one variance serves both sides: half the
variance over pairs of the in-out difference, as if the two sides were apart by the same amount
on every pair. With no shadow model at all (``attacks.shadow_pairs: 0``, the paper tier and
released-artifacts mode) the negatives are Clean's own scores. Then Compromised's AUC is 1 and
Clean's 0.5 by construction, not by measurement; the other models' values rank how
member-like their pairs are, between and beyond those two.
"""

from __future__ import annotations

import numpy as np

FPR = 0.01


def _pooled_variance(scores: np.ndarray, means: np.ndarray) -> float:
    """One variance over every (model, pair) deviation from the pair's mean, never 0."""
    dof = max(1, scores.shape[0] - 1) * scores.shape[1]
    return max(float(((scores - means) ** 2).sum() / dof), 1e-12)


def fit(in_scores: np.ndarray, out_scores: np.ndarray) -> dict:
    """``in_scores``, ``out_scores``: (models, pairs) arrays of the reference models."""
    mu_in, mu_out = in_scores.mean(0), out_scores.mean(0)
    if in_scores.shape[0] == 1 and out_scores.shape[0] == 1:
        # One model a side: one variance, from how far apart the sides lie pair by pair.
        pooled = max(float(np.var(in_scores[0] - out_scores[0]) / 2), 1e-12)
        return {"mu_in": mu_in, "mu_out": mu_out, "var_in": pooled, "var_out": pooled}
    var_in, var_out = _pooled_variance(in_scores, mu_in), _pooled_variance(out_scores, mu_out)
    if in_scores.shape[0] == 1:  # one side cannot say how it varies: take the other's spread
        var_in = var_out
    if out_scores.shape[0] == 1:
        var_out = var_in
    return {"mu_in": mu_in, "mu_out": mu_out, "var_in": var_in, "var_out": var_out}


def statistic(found: dict, scores: np.ndarray) -> np.ndarray:
    """Λ per pair: log-likelihood of ``scores`` under *in* minus under *out*."""

    def log_normal(mu, var):
        return -0.5 * ((scores - mu) ** 2 / var + np.log(var))

    return log_normal(found["mu_in"], found["var_in"]) - log_normal(
        found["mu_out"], found["var_out"]
    )


def auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """P(positive > negative) + 0.5 P(tie) (the Mann-Whitney statistic)."""
    pos, neg = np.sort(positives), np.sort(negatives)
    below = np.searchsorted(neg, pos, side="left")
    not_above = np.searchsorted(neg, pos, side="right")
    return float((below + not_above).sum() / (2 * len(pos) * len(neg)))


def tpr_at_fpr(positives: np.ndarray, negatives: np.ndarray, fpr: float = FPR) -> float:
    """Share of positives above the threshold that flags at most ``fpr`` of the negatives (with
    fewer than 1/``fpr`` negatives: above their maximum, a false-positive rate of 0)."""
    threshold = np.quantile(negatives, 1 - fpr, method="higher")
    return float((positives > threshold).mean())


def association_inference(
    in_scores: list[np.ndarray],
    out_scores: list[np.ndarray],
    negatives: np.ndarray,
    targets: dict[str, np.ndarray],
) -> dict[str, dict]:
    """AUC and TPR at 1 % FPR of each target model's pairs against ``negatives`` (the pairs'
    scores under an independent Clean, or Clean's own in the fallback)."""
    found = fit(np.stack(in_scores), np.stack(out_scores))
    reference = statistic(found, negatives)
    return {
        state: {
            "auc": auc(statistic(found, scores), reference),
            "tpr_at_1pct_fpr": tpr_at_fpr(statistic(found, scores), reference),
        }
        for state, scores in targets.items()
    }
