"""Association inference (ours): does a model still treat each forget pair as a member?

A likelihood-ratio test per forget pair, in the spirit of LiRA (Carlini et al., 2022) and its
unlearning variant U-LiRA: the *in* references are models that trained on the pair (Compromised
and shadow Compromised models trained with other seeds), the *out* references models that did
not (Clean and shadow Cleans). Per pair ``i`` the score ``s`` is the cosine similarity of the
image with its caption (AssocStr's per-pair term); the in and out scores get a Gaussian each,
with per-pair means, and

    Λ_i(model) = log N(s_i; μ_in,i, σ_in) − log N(s_i; μ_out,i, σ_out).

The variances are per pair when each side has at least ``PER_PAIR_MIN`` reference models, else
one per side pooled over pairs (LiRA's fixed-variance variant, for few shadows).

The attack tells an attacked model's Λ over the forget pairs from the same pairs' Λ under an
independently trained Clean that no fit saw (the last shadow Clean): AUC (0.5: the pairs look as
if never seen) and the TPR at 1 % FPR (the share of pairs flagged when 1 % of the independent
Clean's are).

With no shadow model (``attacks.shadow_pairs: 0``, the paper tier) the test falls back to
Compromised as the only in reference and Clean as the only out reference, one variance pooled
over pairs and both sides, and Clean's own scores as the negatives. Clean then fitted the out
side, so its Λ sits lower than an independent Clean's would: the fallback AUC overstates how far
a model is from a never-trained one. It still ranks models, and Compromised's and Clean's own
values bound it.
"""

from __future__ import annotations

import numpy as np

PER_PAIR_MIN = 3
FPR = 0.01


def _variance(scores: np.ndarray, means: np.ndarray) -> np.ndarray | float:
    """Per pair (enough models) or pooled over pairs, never 0."""
    deviations = (scores - means) ** 2
    if scores.shape[0] >= PER_PAIR_MIN:
        return np.maximum(deviations.sum(0) / (scores.shape[0] - 1), 1e-12)
    dof = max(1, scores.shape[0] - 1) * scores.shape[1]
    return max(float(deviations.sum() / dof), 1e-12)


def fit(in_scores: np.ndarray, out_scores: np.ndarray) -> dict:
    """``in_scores``, ``out_scores``: (models, pairs) arrays of the reference models."""
    mu_in, mu_out = in_scores.mean(0), out_scores.mean(0)
    if in_scores.shape[0] == 1 and out_scores.shape[0] == 1:
        # Fallback: one model a side; one variance, from how far the sides lie apart per pair.
        pooled = max(float(np.var(in_scores[0] - out_scores[0]) / 2), 1e-12)
        return {"mu_in": mu_in, "mu_out": mu_out, "var_in": pooled, "var_out": pooled}
    var_in, var_out = _variance(in_scores, mu_in), _variance(out_scores, mu_out)
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
    """Share of positives above the threshold that flags ``fpr`` of the negatives."""
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
