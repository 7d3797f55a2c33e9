"""Forget / retain samples for unlearning, read from the same webdataset shards as training.

The sensitive and retain subsets an unlearning run sees are small (the forget set is ~30K pairs at
paper scale), so samples are decoded once into memory and batches are drawn with a seeded RNG.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from salmu.shards import shard_urls
from salmu.unlearn.base import Batch


def read_samples(shard_dir: str | Path) -> list[tuple[bytes, str]]:
    """(jpeg bytes, caption) for every sample of a shard directory, in shard order."""
    samples = []
    for url in shard_urls(shard_dir):
        try:
            with tarfile.open(url) as tar:
                members = {m.name: m for m in tar.getmembers()}
                for name in sorted(members):
                    if not name.endswith(".jpg"):
                        continue
                    key = name[: -len(".jpg")]
                    image = tar.extractfile(members[name]).read()
                    text = tar.extractfile(members[key + ".txt"]).read().decode()
                    samples.append((image, text))
        except (tarfile.TarError, KeyError, EOFError) as err:
            raise ValueError(f"{url}: unreadable webdataset shard ({err})") from None
    if not samples:
        raise ValueError(f"{shard_dir}: no samples")
    return samples


class SampleBank:
    """Preprocessed tensors of one data source, with seeded batch sampling without replacement."""

    def __init__(self, samples, preprocess, tokenizer, seed: int):
        self.images = torch.stack(
            [preprocess(Image.open(io.BytesIO(b)).convert("RGB")) for b, _ in samples]
        )
        self.texts = tokenizer([t for _, t in samples])
        self.rng = np.random.default_rng(seed)
        self._order: list[int] = []

    def __len__(self) -> int:
        return len(self.images)

    def next_batch(self, size: int) -> Batch:
        indices = []
        while len(indices) < min(size, len(self)):
            if not self._order:
                self._order = self.rng.permutation(len(self)).tolist()
            indices.append(self._order.pop())
        index = torch.tensor(indices)
        return Batch(self.images[index], self.texts[index])
