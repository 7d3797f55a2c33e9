"""``salmu unlearn``: run one method at one budget and seed from the Compromised checkpoint.

Budget unit (our definition, spec [?]): 1x = the optimizer steps of one pass over the forget set at
the configured batch size, ``ceil(|forget| / batch_size)``. A budget of B runs ``round(B * unit)``
steps for every method, whatever data the method uses, so methods compare at equal compute.
Each step draws one forget batch and one retain batch of ``batch_size`` each.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time

import torch

from salmu.clip_model import load_clip, save_checkpoint
from salmu.io import write_json
from salmu.unlearn.base import Step
from salmu.unlearn.data import SampleBank, read_samples
from salmu.unlearn.registry import resolve


def budget_steps(budget: float, forget_size: int, batch_size: int) -> int:
    if budget <= 0:
        raise ValueError(f"budget must be > 0, got {budget}")
    return max(1, round(budget * math.ceil(forget_size / batch_size)))


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
    torch.manual_seed(args.seed)
    method = resolve(args.method, args.import_path)(**parse_hyperparameters(args.param))
    model, preprocess, tokenizer = load_clip(args.model_dir, args.checkpoint, args.device)
    reference = (
        copy.deepcopy(model).eval().requires_grad_(False) if method.needs_reference else None
    )
    forget = SampleBank(read_samples(args.forget_shards), preprocess, tokenizer, args.seed)
    retain = SampleBank(read_samples(args.retain_shards), preprocess, tokenizer, args.seed + 1)
    steps = budget_steps(args.budget, len(forget), args.batch_size)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=args.wd
    )
    model.train()
    losses, start = [], time.time()
    for _ in range(steps):
        step = Step(forget.next_batch(args.batch_size), retain.next_batch(args.batch_size))
        loss = method.loss(model, step, reference)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if args.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        optimizer.step()
        losses.append(float(loss.detach()))
    save_checkpoint(
        model, args.out, name=f"{args.method}-x{args.budget}-seed{args.seed}", epoch=steps
    )
    return {
        "method": args.method,
        "budget": args.budget,
        "seed": args.seed,
        "steps": steps,
        "budget_unit_steps": math.ceil(len(forget) / args.batch_size),
        "batch_size": args.batch_size,
        "forget_samples": len(forget),
        "retain_samples": len(retain),
        "lr": args.lr,
        "hyperparameters": parse_hyperparameters(args.param),
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "seconds": round(time.time() - start, 3),
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
    parser.add_argument("--retain-shards", required=True)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--wd", type=float, default=0.0)
    parser.add_argument("--grad-clip", type=float, default=1.0)
    parser.add_argument(
        "--param", action="append", default=[], help="method hyperparameter key=value"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True)
    parser.add_argument("--report", required=True, help="JSON with steps taken and losses")


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    report = unlearn(args)
    write_json(report, args.report)
    print(
        json.dumps({k: report[k] for k in ("method", "budget", "steps", "loss_first", "loss_last")})
    )
