"""Measured throughput of this machine: ``salmu throughput``.

Times the three kinds of work a tier spends its GPU hours on, with the tier's own settings, so that
``salmu plan`` can project hours from numbers measured here rather than guessed:

- **train**: CLIP training steps (forward, backward, AdamW) of the tier's model at its per-GPU batch
  size and precision, on synthetic tensors, so that the number is the model's speed and not the
  data loader's. Unlearning is projected from the same rate (a step is a training step).
- **encode**: inference (image + text embeddings), what evaluation and the leak audit spend.
- **faces**: images per second of the tier's face backend on a few real personas, anchors included.

Model FLOPs utilisation (MFU) = model FLOPs per sample x samples/s / peak FLOP/s. FLOPs are counted
by ``torch.utils.flop_counter`` on one step *without* activation checkpointing (its recomputation is
not model work); the peak comes from ``--peak-tflops`` or, for known GPUs in bf16, PEAK_BF16_TFLOPS.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import platform
import time
from pathlib import Path
from typing import Any

from salmu.io import ensure_parent

# Dense bf16 tensor-core peaks (vendor data sheets, SXM parts), matched against the device name.
PEAK_BF16_TFLOPS = {
    "H200": 989.4,
    "H100": 989.4,
    "A100": 312.0,
    "L40S": 362.1,
    "A10": 125.0,
}

PRECISIONS = ("fp32", "amp_bf16")


def peak_tflops(device_name: str, precision: str, override: float | None) -> float | None:
    if override is not None:
        return override
    if precision != "amp_bf16":
        return None
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in device_name:
            return value
    return None


def device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def synthetic_batch(model, tokenizer, batch_size: int, device):
    """Random images at the model's input size and real tokenized captions."""
    import torch

    size = model.visual.image_size
    height, width = (size, size) if isinstance(size, int) else size
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch_size, 3, height, width, generator=generator)
    texts = tokenizer([f"a photo of person number {i} in a city" for i in range(batch_size)])
    return images.to(device), texts.to(device)


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step, device, warmup: int, steps: int) -> float:
    """Seconds per call of ``step`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return (time.perf_counter() - start) / steps


def autocast(device, precision: str):
    import torch

    if precision == "amp_bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def training_step(model, optimizer, images, texts, device, precision: str):
    from salmu.unlearn.base import Batch
    from salmu.unlearn.losses import clip_loss

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = clip_loss(model, Batch(images, texts))
        loss.backward()
        optimizer.step()

    return step


def count_flops(step) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops()


def measure_training(
    model, tokenizer, *, batch_size, precision, device, warmup, steps, grad_checkpointing, peak
):
    import torch

    images, texts = synthetic_batch(model, tokenizer, batch_size, device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    step = training_step(model, optimizer, images, texts, device, precision)
    flops_per_sample = count_flops(step) / batch_size
    if grad_checkpointing:
        model.set_grad_checkpointing(True)
    seconds = timed(step, device, warmup, steps)
    samples_per_s = batch_size / seconds
    achieved = flops_per_sample * samples_per_s / 1e12
    result = {
        "batch_size": batch_size,
        "precision": precision,
        "grad_checkpointing": grad_checkpointing,
        "timed_steps": steps,
        "seconds_per_step": seconds,
        "samples_per_s": samples_per_s,
        "flops_per_sample": flops_per_sample,
        "achieved_tflops": achieved,
        "peak_tflops": peak,
        "mfu": achieved / peak if peak else None,
    }
    if device.type == "cuda":
        result["max_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return result


def measure_encoding(model, tokenizer, *, batch_size, precision, device, warmup, steps):
    import torch

    images, texts = synthetic_batch(model, tokenizer, batch_size, device)
    model.eval()

    def step():
        with torch.no_grad(), autocast(device, precision):
            model.encode_image(images)
            model.encode_text(texts)

    seconds = timed(step, device, warmup, steps)
    return {"batch_size": batch_size, "samples_per_s": batch_size / seconds}


def measure_faces(args: argparse.Namespace) -> dict[str, Any]:
    from salmu import faces

    people = faces.load_personas(args.personas)[: args.identities]
    if not people:
        raise ValueError(f"{args.personas}: no personas to render")
    backend = faces.get_backend(args.backend, **faces.backend_options(args))
    start = time.perf_counter()
    frame = faces.build_faces(
        people,
        backend,
        n_sensitive=args.images_per_identity,
        n_generic=0,
        n_anonymous=0,
        n_anonymous_images=1,
        size=args.size,
        aspect_range=tuple(args.aspect_range),
        jpeg_quality=args.jpeg_quality,
        seed=args.seed,
        countries=faces.load_countries(args.personas),
    )
    elapsed = time.perf_counter() - start
    return {
        "backend": backend.name,
        "identities": len(people),
        "images": frame.height,
        "seconds": elapsed,
        # Per rendered image, the identity's anchor portrait (generative backends) included.
        "images_per_s": frame.height / elapsed,
    }


def configure_parser(parser: argparse.ArgumentParser) -> None:
    from salmu.faces import add_render_arguments

    parser.add_argument("--out", required=True, help="throughput.json to write")
    model = parser.add_argument_group("training and encoding")
    model.add_argument("--model-dir", required=True, help="open_clip model directory or id")
    model.add_argument("--train-batch-size", type=int, required=True, help="per GPU")
    model.add_argument("--encode-batch-size", type=int, default=256)
    model.add_argument("--precision", choices=PRECISIONS, default="fp32")
    model.add_argument("--train-device", default="auto", help="auto, cpu, cuda, cuda:N")
    model.add_argument("--grad-checkpointing", action="store_true")
    model.add_argument("--warmup-steps", type=int, default=2)
    model.add_argument("--timed-steps", type=int, default=5)
    model.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    model.add_argument(
        "--peak-tflops", type=float, default=None, help="device peak for MFU (default: known GPUs)"
    )
    render = parser.add_argument_group("faces (skipped without --personas)")
    render.add_argument("--personas", default=None, help="personas.parquet to render from")
    render.add_argument("--identities", type=int, default=2, help="personas rendered")
    render.add_argument("--seed", type=int, default=0)
    add_render_arguments(parser)


def check_args(args: argparse.Namespace) -> None:
    for flag in ("train_batch_size", "encode_batch_size", "timed_steps", "identities"):
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag.replace('_', '-')} {getattr(args, flag)}: expected >= 1")
    if args.warmup_steps < 0:
        raise ValueError(f"--warmup-steps {args.warmup_steps}: expected >= 0")


def run(args: argparse.Namespace) -> None:
    check_args(args)
    import torch

    from salmu.clip_model import load_clip, resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(resolve_device(args.train_device))
    model, _, tokenizer = load_clip(args.model_dir, device=str(device))
    name = device_name(device)
    peak = peak_tflops(name, args.precision, args.peak_tflops)
    common = {"precision": args.precision, "device": device, "warmup": args.warmup_steps}
    report = {
        "measured_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": device.type,
        "device_name": name,
        "torch": torch.__version__,
        "model": str(args.model_dir),
        "parameters": sum(p.numel() for p in model.parameters()),
        "encode": measure_encoding(
            model, tokenizer, batch_size=args.encode_batch_size, steps=args.timed_steps, **common
        ),
        "train": measure_training(
            model,
            tokenizer,
            batch_size=args.train_batch_size,
            steps=args.timed_steps,
            grad_checkpointing=args.grad_checkpointing,
            peak=peak,
            **common,
        ),
        "faces": measure_faces(args) if args.personas else None,
    }
    Path(ensure_parent(args.out)).write_text(json.dumps(report, indent=1) + "\n")
    train = report["train"]
    mfu = f", MFU {train['mfu']:.1%}" if train["mfu"] is not None else ""
    faces_rate = report["faces"]["images_per_s"] if report["faces"] else None
    print(
        f"throughput on {name}: train {train['samples_per_s']:.1f} samples/s "
        f"({train['achieved_tflops']:.3g} TFLOP/s{mfu}), "
        f"encode {report['encode']['samples_per_s']:.1f} samples/s"
        + (f", faces {faces_rate:.3g} images/s" if faces_rate else "")
        + f" -> {args.out}"
    )
