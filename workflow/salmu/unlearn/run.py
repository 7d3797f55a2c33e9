"""``salmu unlearn``: run one method at one budget and seed from the Compromised checkpoint.

Budget unit (our definition, docs/protocol.md §7): 1x = the steps of one pass over the forget set at the
configured batch size, ``ceil(|forget| / batch_size)``. A step is one forget batch plus one retain
batch of ``batch_size`` each, whatever the method does with them (an optimizer step, or gradient
statistics for SSD / SLUG / SalUn's mask), so a budget of B gives every method ``round(B * unit)``
steps: equal data and compute. The driver checks that a method used exactly its budget.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time

from salmu.io import write_json
from salmu.sections.unlearn import PRECISIONS, UnlearnSettings
from salmu.unlearn.budget import budget_steps
from salmu.unlearn.registry import build, resolve


# --precision -> the autocast dtype's name in torch (None: plain fp32).
def parse_hyperparameters(pairs: list[str]) -> dict:
    """``key=value`` strings; values are parsed as JSON when possible (numbers, booleans)."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--param '{pair}': expected key=value")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def unlearn(args: argparse.Namespace) -> dict:
    # torch and the model code are imported here: `salmu unlearn --help` and argument errors
    # must not pay their import (several seconds per process).
    import torch

    from salmu.clip_model import load_clip, resolve_device, save_checkpoint
    from salmu.unlearn.base import Session, Step
    from salmu.unlearn.data import SampleBank, decode_pool, read_samples

    torch.manual_seed(args.seed)
    hyperparameters = parse_hyperparameters(args.param)
    method = build(args.method, resolve(args.method, args.import_path), hyperparameters)
    if args.lr is None and method.takes_optimizer_steps:
        raise ValueError(
            f"--lr: method '{args.method}' takes optimizer steps and needs a learning rate "
            f"(config key unlearn.methods.{args.method}.lr)"
        )
    device = resolve_device(args.device)
    model, preprocess, tokenizer = load_clip(
        args.model_dir, args.checkpoint, device, train_transform=True
    )
    pool = decode_pool(args.workers)
    forget = SampleBank(
        read_samples(args.forget_shards), preprocess, tokenizer, args.seed, device, pool
    )
    retain = SampleBank(
        read_samples(args.retain_shards, args.retain_samples, args.seed),
        preprocess,
        tokenizer,
        args.seed + 1,
        device,
        pool,
    )
    steps = budget_steps(args.budget, len(forget), args.batch_size)
    dtype = PRECISIONS[args.precision]
    session = Session(
        model,
        draw=lambda: Step(forget.next_batch(args.batch_size), retain.next_batch(args.batch_size)),
        budget=steps,
        # foreach: one fused update over all tensors; the per-tensor loop cost ~30 ms a step on CPU.
        make_optimizer=lambda params: torch.optim.AdamW(
            params, lr=args.lr, weight_decay=args.weight_decay, foreach=True
        ),
        reference=copy.deepcopy(model).requires_grad_(False) if method.needs_reference else None,
        grad_clip=args.grad_clip,
        autocast_dtype=None if dtype is None else getattr(torch, dtype),
    )
    model.train()
    start = time.time()
    try:
        method.unlearn(session)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    if session.taken != steps:
        raise ValueError(
            f"method '{args.method}' used {session.taken} of its {steps} budgeted steps: "
            "a method must consume exactly its budget (iterate session.steps() to the end)"
        )
    seconds = time.time() - start
    save_checkpoint(
        model, args.out, name=f"{args.method}-x{args.budget:g}-seed{args.seed}", epoch=steps
    )
    return {
        "method": args.method,
        "budget": args.budget,
        "seed": args.seed,
        "steps": session.taken,
        "optimizer_steps": session.optimizer_steps,
        "budget_unit_steps": math.ceil(len(forget) / args.batch_size),
        "batch_size": args.batch_size,
        "forget_samples": len(forget),
        "retain_samples": len(retain),
        "lr": args.lr,
        "precision": args.precision,
        "device": device,
        "hyperparameters": hyperparameters,
        "method_report": session.report,
        # Samples whose image bytes did not decode: skipped with a warning, counted here.
        "corrupt_images_skipped": len(forget.corrupt) + len(retain.corrupt),
        "loss_first": session.losses[0] if session.losses else None,
        "loss_last": session.losses[-1] if session.losses else None,
        "seconds": round(seconds, 3),
        # Forget + retain samples through the method per second, data path included.
        "samples_per_second": round(
            steps
            * (min(args.batch_size, len(forget)) + min(args.batch_size, len(retain)))
            / seconds,
            2,
        ),
    }


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", required=True)
    parser.add_argument(
        "--import-path", default=None, help="'package.module:Class' for a custom method"
    )
    parser.add_argument("--budget", type=float, required=True, help="multiples of one forget pass")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--checkpoint", required=True, help="the Compromised model")
    parser.add_argument("--forget-shards", required=True)
    parser.add_argument("--retain-shards", nargs="+", required=True, help="shard directories")
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        help="AdamW learning rate (methods that step an optimizer)",
    )
    parser.add_argument(
        "--param", action="append", default=[], help="method hyperparameter key=value"
    )
    UnlearnSettings.add_arguments(parser)
    parser.add_argument("--out", required=True)
    parser.add_argument("--report", required=True, help="JSON with steps taken and losses")


def run(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    if args.retain_samples is not None and args.retain_samples < 1:
        raise ValueError(f"--retain-samples must be >= 1, got {args.retain_samples}")
    report = unlearn(args)
    write_json(report, args.report)
    print(
        json.dumps({k: report[k] for k in ("method", "budget", "steps", "loss_first", "loss_last")})
    )
