"""Forget / retain samples for unlearning, read from the same webdataset shards as training.

Samples stay JPEG bytes in memory (the forget set is ~30K pairs at paper scale) and are decoded and
preprocessed per batch with the training transform; batches are drawn with a seeded RNG. The retain
side can be a subset (``limit``): whole shards in a seeded order until enough samples are read, so
a 400M-pair retain set is never read in full.
"""

from __future__ import annotations

import json
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from salmu.io import decode_image
from salmu.shards import shard_urls
from salmu.unlearn.base import Batch


@dataclass(frozen=True)
class Sample:
    image: bytes
    text: str
    generic_text: str | None = None
    key: str = ""  # the sample's key in its shard, for messages


def _read_shard(url: str) -> list[Sample]:
    samples = []
    with tarfile.open(url) as tar:
        members = {m.name: m for m in tar.getmembers()}
        for name in sorted(members):
            if not name.endswith(".jpg"):
                continue
            key = name[: -len(".jpg")]
            image = tar.extractfile(members[name]).read()
            text = tar.extractfile(members[key + ".txt"]).read().decode()
            meta = {}
            if key + ".json" in members:
                meta = json.loads(tar.extractfile(members[key + ".json"]).read())
            samples.append(Sample(image, text, meta.get("generic_text"), f"{url}:{key}"))
    return samples


def read_samples(
    shard_dirs: str | Path | list, limit: int | None = None, seed: int = 0
) -> list[Sample]:
    """Every sample of one or more shard directories in shard order, or the first ``limit``
    samples of their shards taken in a seeded random order."""
    dirs = shard_dirs if isinstance(shard_dirs, list) else [shard_dirs]
    urls = [url for shard_dir in dirs for url in shard_urls(shard_dir)]
    if limit is not None:
        urls = [urls[i] for i in np.random.default_rng(seed).permutation(len(urls))]
    samples: list[Sample] = []
    for url in urls:
        try:
            samples.extend(_read_shard(url))
        except (
            tarfile.TarError,
            KeyError,
            EOFError,
            OSError,
            UnicodeDecodeError,
            ValueError,
        ) as err:
            raise ValueError(f"{url}: unreadable webdataset shard ({err})") from None
        if limit is not None and len(samples) >= limit:
            return samples[:limit]
    if not samples:
        raise ValueError(f"{', '.join(map(str, dirs))}: no samples")
    return samples


class SampleBank:
    """One data source: seeded batches without replacement, preprocessed on the way out."""

    def __init__(self, samples: list[Sample], preprocess, tokenizer, seed: int, device="cpu"):
        self.samples = samples
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.device = device
        self.rng = np.random.default_rng(seed)
        self._order: list[int] = []
        self.has_generic = all(s.generic_text is not None for s in samples)
        # Indices whose image bytes do not decode: skipped (and counted) from then on.
        self.corrupt: set[int] = set()
        # Token rows by caption: every caption is drawn many times over a budget, and open_clip's
        # tokenizer (ftfy, regex, BPE) costs about as much per caption as decoding the image.
        self._tokens: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def next_batch(self, size: int) -> Batch:
        chosen, images = [], []
        while len(chosen) < min(size, len(self) - len(self.corrupt)):
            if not self._order:
                self._order = self.rng.permutation(len(self)).tolist()
            index = self._order.pop()
            if index in self.corrupt:
                continue
            image = decode_image(self.samples[index].image)
            if image is None:
                self.corrupt.add(index)
                print(
                    f"warning: skipping {self.samples[index].key}: its image does not decode",
                    file=sys.stderr,
                )
                continue
            chosen.append(self.samples[index])
            images.append(self.preprocess(image))
        if not chosen:
            raise ValueError("no sample with a decodable image left in this data source")
        images = torch.stack(images)
        generic = self.tokenize([s.generic_text for s in chosen]) if self.has_generic else None
        return Batch(
            images.to(self.device),
            self.tokenize([s.text for s in chosen]).to(self.device),
            None if generic is None else generic.to(self.device),
        )

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """The tokenizer's rows for ``texts``, each caption tokenized once per bank."""
        new = list(dict.fromkeys(t for t in texts if t not in self._tokens))
        if new:
            self._tokens.update(zip(new, self.tokenizer(new), strict=True))
        return torch.stack([self._tokens[t] for t in texts])
