"""Each built-in unlearning method, on a tiny CLIP that has memorised its forget pairs: a few
budgeted steps must push the model the way the method intends."""

import copy

import pytest
import torch

from salmu.clip_model import load_clip
from salmu.unlearn.base import Batch, Session, Step
from salmu.unlearn.losses import clip_loss, encode, in_batch_top1, pair_similarity
from salmu.unlearn.methods.salun import saliency_masks
from salmu.unlearn.methods.slug import pareto_front
from salmu.unlearn.registry import build, builtin_methods, resolve

MODEL_DIR = "resources/models/tiny-clip"
PAPER_METHODS = {
    "finetune",
    "neg_grad",
    "shuffled_captions",
    "generic_captions",
    "direct_sim_min",
    "vlunlearn",
    "delete",
    "cliperase",
}
BEYOND_PAPER = {"salun", "ssd", "slug"}


def captions(tokenizer, prefix, n):
    return tokenizer([f"{prefix} {i} has the secret number {1000 + 37 * i}" for i in range(n)])


@pytest.fixture(scope="module")
def compromised():
    """A tiny CLIP trained until it retrieves its forget and retain pairs (a mini Compromised)."""
    torch.manual_seed(0)
    model, _, tokenizer = load_clip(MODEL_DIR)
    generator = torch.Generator().manual_seed(1)
    forget = Batch(
        torch.randn(8, 3, 32, 32, generator=generator),
        captions(tokenizer, "Ana Ruiz", 8),
        tokenizer(["a person with short hair"] * 4 + ["a person wearing glasses"] * 4),
    )
    retain = Batch(
        torch.randn(8, 3, 32, 32, generator=generator), captions(tokenizer, "a red car", 8)
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(30):
        loss = clip_loss(model, forget) + clip_loss(model, retain)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    assert in_batch_top1(model, forget) == 1.0 and in_batch_top1(model, retain) == 1.0
    return model, Step(forget, retain)


def run_method(name, compromised, steps=5, lr=1e-3, **params):
    """``steps`` budgeted steps of a method on the fixed batches; returns (model, session)."""
    torch.manual_seed(0)
    model, step = copy.deepcopy(compromised[0]).train(), compromised[1]
    method = build(name, resolve(name), params)
    session = Session(
        model,
        draw=lambda: step,
        budget=steps,
        make_optimizer=lambda p: torch.optim.Adam(p, lr=lr),
        reference=copy.deepcopy(model).requires_grad_(False) if method.needs_reference else None,
    )
    method.unlearn(session)
    assert session.taken == steps
    return model.eval(), session


def association(model, batch, texts=None):
    """Mean cosine similarity of each image with its caption (AssocStr on the batch)."""
    with torch.no_grad():
        return pair_similarity(*encode(model, batch, texts)).mean().item()


def forget_clip_loss(model, step):
    with torch.no_grad():
        return clip_loss(model, step.forget).item()


def test_every_paper_baseline_and_three_more_are_built_in():
    assert set(builtin_methods()) == PAPER_METHODS | BEYOND_PAPER
    for name in builtin_methods():
        assert resolve(name).name == name


@pytest.mark.parametrize("name", sorted((PAPER_METHODS | BEYOND_PAPER) - {"finetune"}))
def test_forgetting_methods_weaken_the_forget_association(name, compromised):
    """Every method that looks at the forget set raises its CLIP loss (the pairs are less
    retrievable) within a few steps."""
    before = forget_clip_loss(compromised[0], compromised[1])
    model, _ = run_method(name, compromised)
    assert forget_clip_loss(model, compromised[1]) > before


def test_finetune_lowers_the_retain_loss_and_ignores_forget(compromised):
    # From an untrained model: the memorised one has (almost) no retain loss left to lower.
    torch.manual_seed(0)
    model, step = load_clip(MODEL_DIR)[0], compromised[1]
    with torch.no_grad():
        before = clip_loss(model, step.retain).item()
    tuned, _ = run_method("finetune", (model, step), steps=3)
    with torch.no_grad():
        assert clip_loss(tuned, step.retain).item() < before
    # Its loss does not depend on the forget batch at all.
    blank = Step(Batch(torch.zeros_like(step.forget.images), step.forget.texts), step.retain)
    method = resolve("finetune")()
    with torch.no_grad():
        assert method.loss(model, step).item() == method.loss(model, blank).item()


def test_negative_gradient_raises_the_forget_loss(compromised):
    before = forget_clip_loss(*compromised)
    model, session = run_method("neg_grad", compromised, steps=1)
    assert forget_clip_loss(model, compromised[1]) > before
    assert session.losses[0] == pytest.approx(-before, rel=1e-4)


def test_direct_similarity_minimisation_lowers_pair_similarity(compromised):
    before = association(compromised[0], compromised[1].forget)
    model, _ = run_method("direct_sim_min", compromised, steps=1)
    assert association(model, compromised[1].forget) < before


def test_generic_captions_pull_images_toward_their_generic_caption(compromised):
    forget = compromised[1].forget
    before = association(compromised[0], forget, forget.generic_texts)
    model, _ = run_method("generic_captions", compromised)
    assert association(model, forget, forget.generic_texts) > before


def test_generic_captions_need_generic_captions_in_the_shards(compromised):
    model, step = compromised
    bare = Step(Batch(step.forget.images, step.forget.texts), step.retain)
    with pytest.raises(ValueError, match="no generic captions"):
        resolve("generic_captions")().loss(model, bare)


def test_shuffled_captions_teach_wrong_pairs(compromised):
    """After relabelling, the images retrieve their own captions less often."""
    model, _ = run_method("shuffled_captions", compromised)
    assert in_batch_top1(model, compromised[1].forget) < 1.0


def similarity_matrix(model, batch):
    with torch.no_grad():
        image, text = encode(model, batch)
        return image @ text.t()


@pytest.mark.parametrize("name", ["delete", "cliperase"])
def test_delete_and_cliperase_zero_forget_similarities_and_keep_retain(name, compromised):
    model0, step = compromised
    model, _ = run_method(name, compromised)
    forget_before = similarity_matrix(model0, step.forget).pow(2).mean()
    forget_after = similarity_matrix(model, step.forget).pow(2).mean()
    retain_drift = similarity_matrix(model, step.retain) - similarity_matrix(model0, step.retain)
    assert forget_after < 0.8 * forget_before
    # The retain matrix moves far less than the forget one.
    assert retain_drift.pow(2).mean() < 0.25 * (forget_before - forget_after)


def embedding_drift(model0, model, batch):
    with torch.no_grad():
        return sum(
            (a - b).pow(2).mean().item()
            for a, b in zip(encode(model, batch), encode(model0, batch))
        )


def test_cliperase_keeps_retain_embeddings_closer_than_delete(compromised):
    """The consistency module is the only difference between the two."""
    model0, step = compromised
    delete, _ = run_method("delete", compromised)
    cliperase, _ = run_method("cliperase", compromised, consistency_weight=10.0)
    assert embedding_drift(model0, cliperase, step.retain) < embedding_drift(
        model0, delete, step.retain
    )


def test_vlunlearn_decouples_forget_more_than_it_moves_retain(compromised):
    model0, step = compromised
    model, _ = run_method("vlunlearn", compromised)
    assert in_batch_top1(model, step.forget) < in_batch_top1(model, step.retain)
    assert embedding_drift(model0, model, step.retain) < 0.5 * embedding_drift(
        model0, model, step.forget
    )


def changed_entries(model0, model):
    before = dict(model0.named_parameters())
    return {
        name: (p.detach() != before[name].detach())
        for name, p in model.named_parameters()
        if not torch.equal(p, before[name])
    }


def test_salun_updates_only_salient_weights(compromised):
    model, session = run_method("salun", compromised, sparsity=0.05, mask_steps=1)
    changed = changed_entries(compromised[0], model)
    total = sum(p.numel() for p in model.parameters())
    assert 0 < sum(int(c.sum()) for c in changed.values()) <= 0.05 * total + 1
    assert 0 < session.report["salient_share"] <= 0.05 + 1e-6
    assert session.optimizer_steps == 4  # the first budgeted step computed the mask


def test_saliency_mask_keeps_the_largest_nonzero_scores():
    masks = saliency_masks([torch.tensor([0.0, 3.0, 1.0]), torch.tensor([2.0, 0.0])], 0.5)
    assert [m.tolist() for m in masks] == [[False, True, False], [True, False]]
    # Zero scores are never salient, even when the share asks for more entries.
    masks = saliency_masks([torch.tensor([0.0, 0.0, 5.0])], 1.0)
    assert masks[0].tolist() == [False, False, True]


def test_ssd_only_shrinks_weights(compromised):
    model, session = run_method("ssd", compromised, alpha=1.0)
    changed = changed_entries(compromised[0], model)
    assert changed and session.optimizer_steps == 0
    before, after = dict(compromised[0].named_parameters()), dict(model.named_parameters())
    for name, mask in changed.items():
        new, old = after[name].detach()[mask], before[name].detach()[mask]
        assert torch.all(new.abs() < old.abs()) and torch.all(new * old >= 0)
    assert session.report["dampened_weights"] == sum(int(c.sum()) for c in changed.values())


def test_ssd_with_a_huge_alpha_only_zeroes_weights_retain_never_uses(compromised):
    """imp_f > alpha * imp_r then holds only where retain importance is exactly zero (e.g. the
    embeddings of tokens only forget captions contain), and beta = 0 there."""
    model, session = run_method("ssd", compromised, alpha=1e30)
    after = dict(model.named_parameters())
    changed = changed_entries(compromised[0], model)
    for name, mask in changed.items():
        assert torch.all(after[name].detach()[mask] == 0)
    assert session.report["dampened_weights"] < 0.01 * sum(p.numel() for p in model.parameters())


def test_slug_edits_a_single_layer_until_forget_retrieval_drops(compromised):
    model, session = run_method("slug", compromised, target_top1=0.5)
    changed = changed_entries(compromised[0], model)
    assert list(changed) == [session.report["layer"]]
    assert session.report["layer"] in session.report["pareto_layers"]
    assert in_batch_top1(model, compromised[1].forget) <= 0.5
    assert session.optimizer_steps == 0


def test_pareto_front():
    # (importance, alignment): 0 and 2 are undominated; 1 is worse than 0 on both; 3 ties 2.
    assert pareto_front([3.0, 2.0, 5.0, 5.0], [0.2, 0.5, 0.4, 0.4]) == [0, 2, 3]
