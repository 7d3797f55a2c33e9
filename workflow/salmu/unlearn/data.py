"""Forget / retain samples for unlearning, read from the same webdataset shards as training.

A sample keeps its caption in memory and its image where it lies: the image bytes are read from the
tar by offset when a batch needs them (a 150K-image retain subset is never held). Batches are drawn
with a seeded RNG, decoded and preprocessed with the training transform. The retain side can be a
subset (``limit``): whole shards in a seeded order until enough samples are read, so a 400M-pair
retain set is never read in full.

With ``workers`` > 0, threads read and decode the images of the next batches while the model
computes, and crop and normalise a batch's images in parallel. The batches are the same as without
workers: the order of the samples comes from the bank's own RNG, and the random crop's parameters
are drawn on the calling thread in the same order as before (``salmu.unlearn.split_transform``).
"""

from __future__ import annotations

import json
import os
import sys
import tarfile
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from salmu.io import decode_image
from salmu.shards import shard_urls
from salmu.unlearn.base import Batch
from salmu.unlearn.split_transform import SplitTransform


@dataclass(frozen=True)
class Sample:
    image: bytes | None  # the JPEG bytes, or None: read them from ``location``
    text: str
    generic_text: str | None = None
    key: str = ""  # the sample's key in its shard, for messages
    location: tuple[str, int, int] | None = None  # (tar file, offset, size) of the image bytes

    def image_bytes(self) -> bytes:
        if self.image is not None:
            return self.image
        path, offset, size = self.location
        with open(path, "rb") as handle:
            return os.pread(handle.fileno(), size, offset)


def _read_shard(url: str) -> list[Sample]:
    samples = []
    size = os.path.getsize(url)
    with tarfile.open(url) as tar:
        members = {m.name: m for m in tar.getmembers()}
        cut = [m.name for m in members.values() if m.offset_data + m.size > size]
        if cut:  # the images are read later, by offset: a truncated tar must fail here
            raise ValueError(f"truncated: {cut[0]} ends past the end of the file")
        for name in sorted(members):
            if not name.endswith(".jpg"):
                continue
            key = name[: -len(".jpg")]
            image = members[name]
            text = tar.extractfile(members[key + ".txt"]).read().decode()
            meta = {}
            if key + ".json" in members:
                meta = json.loads(tar.extractfile(members[key + ".json"]).read())
            location = (str(url), image.offset_data, image.size)
            samples.append(Sample(None, text, meta.get("generic_text"), f"{url}:{key}", location))
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

    def __init__(
        self,
        samples: list[Sample],
        preprocess,
        tokenizer,
        seed: int,
        device="cpu",
        pool: ThreadPoolExecutor | None = None,
    ):
        self.samples = samples
        self.transform = SplitTransform(preprocess)
        self.tokenizer = tokenizer
        self.device = device
        self.rng = np.random.default_rng(seed)
        self.has_generic = all(s.generic_text is not None for s in samples)
        # Indices whose image bytes do not decode: skipped (and counted) from then on.
        self.corrupt: set[int] = set()
        # Token rows by caption: every caption is drawn many times over a budget, and open_clip's
        # tokenizer (ftfy, regex, BPE) costs about as much per caption as decoding the image.
        self._tokens: dict[str, torch.Tensor] = {}
        self._order = self._indices()
        # The next indices in draw order, each with its decoded image (a Future with workers).
        self._ahead: deque[tuple[int, Future | None]] = deque()
        # Decode workers, shared by the forget and retain banks (None: this thread decodes).
        self._pool = pool

    def __len__(self) -> int:
        return len(self.samples)

    def _indices(self) -> Iterator[int]:
        """Every index once per pass, passes in a fresh seeded order, drawn from the end."""
        while True:
            order = self.rng.permutation(len(self)).tolist()
            while order:
                yield order.pop()

    def _decode(self, index: int):
        return decode_image(self.samples[index].image_bytes())

    def _read_ahead(self, count: int) -> None:
        """Have the next ``count`` images in the workers' hands (no-op without workers)."""
        while self._pool is not None and len(self._ahead) < count:
            index = next(self._order)
            known_bad = index in self.corrupt
            self._ahead.append(
                (index, None if known_bad else self._pool.submit(self._decode, index))
            )

    def _next_image(self):
        """The next index in draw order and its decoded image (None: does not decode)."""
        if not self._ahead:
            index = next(self._order)
            return index, None if index in self.corrupt else self._decode(index)
        index, future = self._ahead.popleft()
        return index, None if future is None else future.result()

    def next_batch(self, size: int) -> Batch:
        self._read_ahead(size)  # this batch's images, if the last call did not ask for them
        chosen, images, drawn = [], [], []
        while len(chosen) < min(size, len(self) - len(self.corrupt)):
            index, image = self._next_image()
            if index in self.corrupt:
                continue
            if image is None:
                self.corrupt.add(index)
                print(
                    f"warning: skipping {self.samples[index].key}: its image does not decode",
                    file=sys.stderr,
                )
                continue
            chosen.append(self.samples[index])
            images.append(image)
            drawn.append(self.transform.draw(image))  # the RNG, in batch order, on this thread
        if not chosen:
            raise ValueError("no sample with a decodable image left in this data source")
        if self._pool is not None and self.transform.parallel:
            tensors = list(self._pool.map(self.transform.finish, images, drawn))
        else:
            tensors = [self.transform.finish(i, d) for i, d in zip(images, drawn)]
        # The next batch decodes while the model computes on this one (asked for after the
        # finishing above, so that it does not queue ahead of it in the workers).
        self._read_ahead(size)
        generic = self.tokenize([s.generic_text for s in chosen]) if self.has_generic else None
        return Batch(
            torch.stack(tensors).to(self.device),
            self.tokenize([s.text for s in chosen]).to(self.device),
            None if generic is None else generic.to(self.device),
        )

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """The tokenizer's rows for ``texts``, each caption tokenized once per bank."""
        new = list(dict.fromkeys(t for t in texts if t not in self._tokens))
        if new:
            self._tokens.update(zip(new, self.tokenizer(new), strict=True))
        return torch.stack([self._tokens[t] for t in texts])


def decode_pool(workers: int) -> ThreadPoolExecutor | None:
    """The threads that decode for the banks of one job (None for 0 workers)."""
    return ThreadPoolExecutor(workers, "salmu-decode") if workers > 0 else None
