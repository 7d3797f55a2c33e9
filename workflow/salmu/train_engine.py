"""``python -m salmu.train_engine <open_clip_train flags>``: ``open_clip_train.main``, unchanged,
with every epoch's randomness keyed by (seed, epoch, rank, worker) instead of by history.

Why: open_clip_train seeds its RNGs once per process, and the webdataset sample shuffle it uses
seeds itself from the clock and the pid. So two runs of the same command give different models,
and a run resumed at epoch k continues with RNG states the uninterrupted run never had (measured
on the tiny tier: RetFail MRR 0.9000 resumed against 0.9106 uninterrupted).

Two hooks are installed before ``open_clip_train.main.main`` runs; the training loop, resume,
checkpointing and distributed set-up are the engine's own:

- the training data pipeline gets, for every epoch (and every pass inside it), a sample-shuffle
  buffer whose RNG comes from the key, and the process that runs the pipeline (the trainer with
  ``--workers 0``, else each loader worker) reseeds torch / numpy / python from the key before the
  epoch's first sample, so augmentations follow too; resampled shards (``--dataset-resampled``)
  draw from a seed of the key rather than open_clip's seed-independent rank seed;
- each ``train_one_epoch`` call first reseeds the trainer's torch / numpy / python RNGs.

Model, optimizer, scaler and step-based LR schedule are restored from the checkpoint by the
engine, so with these hooks a run resumed at an epoch boundary computes what the uninterrupted
run computed (bit-identical on the same machine and thread count; tests/test_faults.py).
"""

from __future__ import annotations

import functools
import random
import sys

import numpy as np
import torch

from salmu.seeding import derive_seed


def reseed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _worker_id() -> int:
    info = torch.utils.data.get_worker_info()
    return 0 if info is None else info.id


def worker_seed(seed: int, rank: int) -> int:
    """Base seed of resampled-shard draws in this process; the engine adds the epoch."""
    return derive_seed(seed, "shards", rank, _worker_id()) % 2**31


class EpochSeededShuffle:
    """webdataset's sample-shuffle buffer, with an RNG keyed by (seed, epoch, pass, rank, worker).

    A pipeline stage (called with the stage before it), picklable so that loader workers get their own copy. An
    epoch may restart the pipeline when its shards run dry before its batch count; each restart
    within an epoch is a new pass with its own key."""

    def __init__(self, bufsize: int, initial: int, shared_epoch, seed: int, rank: int):
        self.bufsize, self.initial = bufsize, initial
        self.shared_epoch, self.seed, self.rank = shared_epoch, seed, rank
        self._epoch, self._pass = None, 0

    def __call__(self, source):
        from webdataset.filters import _shuffle

        epoch = self.shared_epoch.get_value()
        self._pass = self._pass + 1 if epoch == self._epoch else 0
        self._epoch = epoch
        key = (self.seed, "epoch", epoch, self._pass, self.rank, _worker_id())
        reseed_everything(derive_seed(*key, "process"))
        rng = random.Random(derive_seed(*key, "shuffle"))
        yield from _shuffle(source, self.bufsize, self.initial, rng)


def key_training_data(data: dict, seed: int, rank: int) -> None:
    """Swap the train pipeline's clock-seeded shuffle for ours; seed resampled shard draws."""
    from open_clip_train.data import ResampledShards2
    from webdataset.filters import FilterFunction, _shuffle

    if "train" not in data:
        return
    info = data["train"]
    pipeline = info.dataloader.pipeline[0].dataset.pipeline
    shuffles = 0
    for index, stage in enumerate(pipeline):
        if isinstance(stage, FilterFunction) and stage.f is _shuffle:
            bufsize, initial = stage.kw["bufsize"], stage.kw["initial"]
            pipeline[index] = EpochSeededShuffle(bufsize, initial, info.shared_epoch, seed, rank)
            shuffles += 1
        elif isinstance(stage, ResampledShards2):
            stage.worker_seed = functools.partial(worker_seed, seed, rank)
    if shuffles != 1:
        # A different open_clip_train: fail loudly rather than train irreproducibly.
        raise RuntimeError(
            f"expected one sample-shuffle stage in the train pipeline, found {shuffles}"
        )


class CachedTokenizer:
    """open_clip's tokenizer, each caption tokenized once per process instead of once per epoch
    (ftfy + regex + BPE cost about a fifth of the tiny tier's per-sample data time). Picklable,
    so loader workers get their own copy and cache."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.cache: dict[str, torch.Tensor] = {}

    def __call__(self, texts, *args, **kwargs):
        if args or kwargs or not isinstance(texts, str):
            return self.tokenizer(texts, *args, **kwargs)
        if texts not in self.cache:
            self.cache[texts] = self.tokenizer(texts)
        return self.cache[texts]

    def __getattr__(self, name):  # context_length, vocab_size, ... of the wrapped tokenizer
        if name == "tokenizer":
            raise AttributeError(name)
        return getattr(self.tokenizer, name)


def install_hooks(engine) -> None:
    original_get_data, original_train_one_epoch = engine.get_data, engine.train_one_epoch

    @functools.wraps(original_get_data)
    def get_data(args, *rest, **kwargs):
        if kwargs.get("tokenizer") is not None:
            kwargs["tokenizer"] = CachedTokenizer(kwargs["tokenizer"])
        data = original_get_data(args, *rest, **kwargs)
        key_training_data(data, args.seed, args.rank)
        return data

    @functools.wraps(original_train_one_epoch)
    def train_one_epoch(
        model, data, loss, epoch, optimizer, scaler, scheduler, dist_model, args, **kw
    ):
        reseed_everything(derive_seed(args.seed, "epoch", epoch, args.rank, "trainer"))
        return original_train_one_epoch(
            model, data, loss, epoch, optimizer, scaler, scheduler, dist_model, args, **kw
        )

    engine.get_data, engine.train_one_epoch = get_data, train_one_epoch


def main(argv: list[str]) -> None:
    import open_clip_train.main as engine

    install_hooks(engine)
    engine.main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
