"""How fast unlearning's data path feeds a model: ``salmu feed-bench``.

Draws batches from a ``SampleBank`` (read, decode, random crop, resize, normalise, tokenise) with
each number of ``--workers`` and prints samples/s, so that the rate can be held against a GPU's
training rate (``salmu throughput``): when the feed is slower, the GPU waits. The images are
photo-like JPEGs of ``--image-size`` pixels (the paper's release: 512; ``salmu.synthetic_images``)
in a tar shard, read as unlearning reads them; the transform is the model's training transform. Every setting must give the same
batches: every batch is compared with the first setting's, and a mismatch is an error.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def measure(samples, preprocess, tokenizer, workers: int, batch_size: int, batches: int):
    """(samples/s over ``batches`` batches after one warm-up batch, every batch's images)."""
    import torch

    from salmu.unlearn.data import SampleBank, decode_pool

    torch.manual_seed(0)
    pool = decode_pool(workers)
    try:
        bank = SampleBank(samples, preprocess, tokenizer, seed=0, pool=pool)
        drawn = [bank.next_batch(batch_size).images]  # the first batch: a warm-up
        start = time.perf_counter()
        drawn += [bank.next_batch(batch_size).images for _ in range(batches)]
        seconds = time.perf_counter() - start
    finally:
        if pool is not None:
            pool.shutdown()
    return batches * batch_size / seconds, drawn


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", default="resources/models/tiny-clip")
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--scratch", default="results/feed-bench", help="where the shard goes")


def run(args: argparse.Namespace) -> None:
    import torch

    from salmu.clip_model import load_clip
    from salmu.synthetic_images import image_shards
    from salmu.unlearn.data import read_samples

    if min(args.workers) < 0 or args.batch_size < 1 or args.batches < 1:
        raise ValueError("--workers >= 0, --batch-size >= 1 and --batches >= 1 expected")
    torch.set_num_threads(args.threads)
    shard = image_shards(Path(args.scratch), args.images, args.image_size)
    samples = read_samples(shard)
    _, preprocess, tokenizer = load_clip(args.model_dir, train_transform=True)
    print(
        f"feed: {args.images} photo-like JPEGs of {args.image_size} px -> {args.model_dir}'s "
        f"training transform, batches of {args.batch_size}"
    )
    first = args.workers[0]
    print(f"{'workers':>8}  {'samples/s':>10}  {f'vs {first}':>6}")
    base, reference = None, None
    for workers in args.workers:
        rate, drawn = measure(
            samples, preprocess, tokenizer, workers, args.batch_size, args.batches
        )
        reference = drawn if reference is None else reference
        if not all(torch.equal(a, b) for a, b in zip(drawn, reference, strict=True)):
            raise ValueError(f"--workers {workers} drew other batches than --workers {first}")
        base = base or rate
        print(f"{workers:>8}  {rate:>10.1f}  {rate / base:>5.2f}x")
