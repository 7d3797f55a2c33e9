"""``salmu attack``: every configured attack on one model, scored on the forget rows.

One job per model state (Clean, Compromised, an unlearned model): it loads the model once, scores
it as it is, then for each attack restores its weights, attacks them and scores them again:

- precision attacks (``salmu.attacks.precision``): the weights after a round trip through fp16,
  bf16 or int8;
- relearning attacks (``salmu.attacks.relearn`` on ``salmu.attacks.data``): a few fine-tuning
  steps on the attacker's data, after checking that it holds none of the measured forget rows.

The JSON keeps each forget row's reciprocal rank and pair similarity before and after every
attack, with the rows each attacker trained on, so that ``salmu attack-table`` can average every
attack over exactly the rows it did not see and hold it against the same attack on Clean and
Compromised. Relearning runs under bf16 autocast on a GPU, in fp32 on a CPU.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from salmu.attacks import data as attack_data
from salmu.attacks.precision import round_trip
from salmu.io import write_json
from salmu.sections.attacks import PRECISION_KINDS, RELEARN_KINDS, AttacksSettings
from salmu.sections.evaluate import EvaluateSettings
from salmu.seeding import derive_seed


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--benchmark", required=True, help="benchmark dir (released layout)")
    parser.add_argument("--model-dir", required=True, help="open_clip model dir or hub id")
    parser.add_argument("--checkpoint", required=True, help="the model state to attack")
    parser.add_argument("--state", required=True, help="its name in the results table")
    parser.add_argument(
        "--retain-shards", nargs="+", default=[], help="shard dirs of the benign attacker"
    )
    parser.add_argument("--out", required=True, help="attack JSON")
    AttacksSettings.add_arguments(parser.add_argument_group("attacks (config attacks)"))
    EvaluateSettings.add_arguments(
        parser.add_argument_group("scoring (config evaluate: pools, seed, device, threads)")
    )


def check_kinds(settings: AttacksSettings) -> None:
    for name, given, known in (
        ("relearn", settings.relearn, RELEARN_KINDS),
        ("precision", settings.precision, PRECISION_KINDS),
    ):
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ValueError(
                f"--attack-{name} {unknown}: unknown attack; expected some of {list(known)}"
            )
    if settings.steps < 1 or settings.batch_size < 1:
        raise ValueError("--attack-steps and --attack-batch-size: expected >= 1")


def eval_transform(model):
    """The evaluation transform of ``model``'s own preprocessing config (open_clip's)."""
    from open_clip.transform import PreprocessCfg, image_transform_v2

    return image_transform_v2(PreprocessCfg(**model.visual.preprocess_cfg), is_train=False)


def attack_model(args: argparse.Namespace) -> dict:
    import torch

    from salmu.attacks.probe import ForgetProbe
    from salmu.attacks.relearn import relearn
    from salmu.clip_model import load_clip, resolve_device
    from salmu.evaluate.run import decode_workers
    from salmu.unlearn.data import decode_pool

    settings = AttacksSettings.from_args(args)
    scoring = EvaluateSettings.from_args(args)
    check_kinds(settings)
    if "benign" in settings.relearn and not args.retain_shards:
        raise ValueError("--retain-shards: the benign attacker needs retain shard dirs")
    if scoring.threads > 0:
        torch.set_num_threads(scoring.threads)
    device = resolve_device(scoring.device)
    model, train_transform, tokenizer = load_clip(
        args.model_dir, args.checkpoint, device, train_transform=True
    )
    preprocess = eval_transform(model)
    start_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    probe = ForgetProbe(args.benchmark, scoring.distractors, scoring.seed, scoring.tie_tol)
    workers = decode_workers(scoring)
    pool = decode_pool(workers)

    def score():
        return probe.scores(model, preprocess, tokenizer, device, scoring.batch_size, workers)

    measured = attack_data.forget_fingerprints(args.benchmark)
    result: dict = {
        "state": args.state,
        "checkpoint": args.checkpoint,
        "forget_file_names": probe.file_names,
        "settings": {**AttacksSettings.values_from_args(args), "device": device},
        "attacks": {},
    }
    timings = {}
    try:
        started = time.perf_counter()
        result["none"] = rows(score())
        timings["none"] = time.perf_counter() - started
        for kind in settings.precision:
            started = time.perf_counter()
            model.load_state_dict(round_trip(start_state, kind))
            result["attacks"][kind] = {"family": "precision", **rows(score())}
            timings[kind] = time.perf_counter() - started
        for kind in settings.relearn:
            started = time.perf_counter()
            model.load_state_dict(start_state)
            found = attack_data.attacker_data(
                kind,
                args.benchmark,
                probe.file_names,
                args.retain_shards,
                settings.benign_samples or settings.steps * settings.batch_size,
                settings.partial_fraction,
                settings.seed,
            )
            trained_on = set(found.trained_on)
            held_out = {n: v for n, v in measured.items() if n not in trained_on}
            audit = attack_data.check_disjoint(found, held_out)
            torch.manual_seed(derive_seed(settings.seed, "attacks", kind) % 2**63)
            losses = relearn(
                model,
                found.samples,
                train_transform,
                tokenizer,
                steps=settings.steps,
                batch_size=settings.batch_size,
                lr=settings.lr,
                seed=derive_seed(settings.seed, "attacks", kind, "batches"),
                device=device,
                pool=pool,
                autocast_dtype=torch.bfloat16 if device == "cuda" else None,
            )
            result["attacks"][kind] = {
                "family": "relearn",
                "trained_on": found.trained_on,
                "audit": audit,
                "loss_first": losses[0],
                "loss_last": losses[-1],
                **rows(score()),
            }
            timings[kind] = time.perf_counter() - started
    finally:
        if pool is not None:
            pool.shutdown()
    result["seconds"] = {k: round(v, 3) for k, v in timings.items()}
    return result


def rows(scores) -> dict:
    """Per forget row: the reciprocal rank and the pair similarity (float32 precision)."""
    return {
        "rr": [float(x) for x in np.asarray(scores.rr, dtype=np.float32)],
        "assoc": [float(x) for x in np.asarray(scores.assoc, dtype=np.float32)],
    }


def run(args: argparse.Namespace) -> None:
    result = attack_model(args)
    write_json(result, args.out)
    summary = {"none": np.mean(result["none"]["rr"])} | {
        kind: np.mean(entry["rr"]) for kind, entry in result["attacks"].items()
    }
    print(
        f"attack {args.state}: RetFail MRR over all forget rows "
        + ", ".join(f"{k} {v:.4f}" for k, v in summary.items())
    )
