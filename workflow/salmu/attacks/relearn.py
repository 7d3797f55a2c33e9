"""A relearning attack: a few fine-tuning steps on the attacker's data.

Plain CLIP loss (open_clip's contrastive loss on the attacker's image-text pairs) with AdamW, the
unlearning driver's data path (``SampleBank``: seeded batches, training transform, decode
workers) and its optimizer step (``Session.optimize``: gradient clipping, bf16 autocast). The
batches depend only on the seed and the attacker's data, so every model sees the same ones.
"""

from __future__ import annotations

from salmu.unlearn.base import Session
from salmu.unlearn.data import SampleBank
from salmu.unlearn.losses import clip_loss


def relearn(
    model,
    samples: list,
    preprocess,
    tokenizer,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str,
    pool=None,
    grad_clip: float = 1.0,
    autocast_dtype=None,
) -> list[float]:
    """Fine-tune ``model`` in place for ``steps`` steps; returns the losses."""
    import torch

    if not samples:
        raise ValueError("the attacker has no data to relearn from")
    bank = SampleBank(samples, preprocess, tokenizer, seed, device, pool)
    session = Session(
        model,
        draw=lambda: bank.next_batch(batch_size),
        budget=steps,
        make_optimizer=lambda params: torch.optim.AdamW(params, lr=lr, foreach=True),
        grad_clip=grad_clip,
        autocast_dtype=autocast_dtype,
    )
    model.train()
    for batch in session.steps():
        with session.autocast():
            loss = clip_loss(model, batch)
        session.optimize(loss)
    model.eval()
    return session.losses
