"""RetFail and AssocStr of a model on the forget rows, per row: what an attack is measured by.

The same pieces as ``salmu evaluate`` (its distractor pools, seed, tie tolerance and encoder), on
the forget split only, so that one job can score a model after each of several attacks in
seconds. Per-row reciprocal ranks and pair similarities are kept, so that each attack can be
averaged over the rows its attacker did not train on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from salmu.evaluate import data, metrics
from salmu.evaluate.encode import Encoder


@dataclass
class ForgetScores:
    rr: np.ndarray  # reciprocal rank of each forget row's own caption (RetFail MRR per row)
    assoc: np.ndarray  # cosine of each forget image with its caption (AssocStr per row)

    def means(self, rows: np.ndarray | None = None) -> dict[str, float]:
        """MRR and AssocStr over ``rows`` (a boolean mask; None: every row)."""
        rr = self.rr if rows is None else self.rr[rows]
        assoc = self.assoc if rows is None else self.assoc[rows]
        return {"RetFail_MRR": float(rr.mean()), "AssocStr": float(assoc.mean())}


class ForgetProbe:
    def __init__(self, benchmark: str | Path, distractors: int, seed: int, tie_tol: float):
        self.bench = data.load_benchmark(benchmark, distractors, seed)
        forget = self.bench.splits["forget"]
        self.file_names: list[str] = forget["file_name"].to_list()
        self.texts: list[str] = forget["text"].to_list()
        self.distractors = self.bench.forget_distractors + self.bench.retain_distractors
        self.tie_tol = tie_tol

    def scores(self, model, preprocess, tokenizer, device: str, batch_size: int, workers: int):
        """The model's per-row scores (it is used as it is: in eval mode, no gradients)."""
        model.eval()
        encoder = Encoder(lambda: (model, preprocess, tokenizer), device, batch_size, workers)
        try:
            images = [
                encoder.encode_image_batch(jpegs, names)
                for names, jpegs in data.iter_split_images(self.bench.root, "forget", batch_size)
            ]
            texts = encoder.encode_texts(self.texts)
            pool = encoder.encode_texts(self.distractors)
        finally:
            encoder.close()
        image_emb = np.concatenate(images)
        ranks = metrics.retrieval_ranks(image_emb, texts, pool, self.tie_tol)
        return ForgetScores(1.0 / ranks, metrics.pair_similarities(image_emb, texts))
