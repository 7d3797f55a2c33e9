"""The ``clip`` embedder: open_clip image embeddings, and the class embeddings of zero-shot
prompts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from salmu.io import open_image


def load_clip_embedder(model: str, checkpoint: str | None, device: str):
    """``(model, preprocess, tokenizer)``: any model form ``salmu.clip_model.load_clip`` takes."""
    from salmu.clip_model import load_clip

    try:
        return load_clip(model, checkpoint, device)
    except (ValueError, FileNotFoundError) as err:
        # Name this stage's flag; load_clip's message says what was wrong with the path or id.
        raise type(err)(f"--clip-model/--clip-checkpoint: {err}") from None


def embed_clip(
    images: Sequence[bytes], model, preprocess, batch_size: int, device: str
) -> np.ndarray:
    """``(n, d)`` L2-normalised open_clip image embeddings (float64)."""
    import torch
    import torch.nn.functional as F

    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = torch.stack(
                [preprocess(open_image(data)) for data in images[start : start + batch_size]]
            )
            features = model.encode_image(batch.to(device)).float()
            out.append(F.normalize(features, dim=-1).cpu().numpy().astype(np.float64))
    if not out:
        return np.zeros((0, 0))
    return np.concatenate(out)


def class_embeddings(model, tokenizer, prompts: dict[str, list[str]], device: str) -> np.ndarray:
    """One row per class (in ``prompts`` order): the renormalised mean of its prompt embeddings."""
    import torch
    import torch.nn.functional as F

    rows = []
    with torch.inference_mode():
        for texts in prompts.values():
            features = model.encode_text(tokenizer(list(texts)).to(device)).float()
            mean = F.normalize(features, dim=-1).mean(0)
            rows.append(F.normalize(mean, dim=0).cpu().numpy().astype(np.float64))
    return np.stack(rows)
