"""One GPU, no downloaded weights, a few minutes: ``salmu gpu-check``.

Runs the paper tier's GPU work at a small scale on random-weight models of the real architectures
and writes one JSON with what it measured:

- ``train``: ViT-B/16 (``resources/models/vit-b-16``) trained from scratch through
  ``open_clip_train`` (``salmu train``, the production path) in bf16 on photo-like JPEG shards:
  samples/s per GPU from its own log (the median step after the first few), data wait, and the MFU
  (model FLOPs per sample counted by ``torch.utils.flop_counter`` on one step, times samples/s, over
  the GPU's bf16 peak); beside it the model alone on tensors already on the GPU (``salmu
  throughput``'s measure) to tell data loading from the model;
- ``unlearn``: ``salmu unlearn`` (Neg. Gradient) in bf16 from the checkpoint just trained, 20
  steps of 32 forget + 32 retain images at 512 px with decode workers: samples/s;
- ``evaluate``: the evaluator's encoder on 512-px JPEGs (decode, preprocess, encode) and on tensors
  already on the GPU: images/s;
- ``faces``: the diffusers face backend on a random Stable Diffusion 1.5 and IP-Adapter
  (``salmu.face_backends.random_weights``) at 512 px, 30 steps, anchors included: images/s.

Each part is timed on its own; a part that fails is recorded with its error and the others still
run (the command then exits with 1). ``--profile cpu-smoke`` runs the same code on the tiny models
and a CPU in about a minute: the test suite does, so the check is known to work before a GPU is
lent to run it.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from salmu.io import first_line, read_json, write_json

PROFILES: dict[str, dict[str, Any]] = {
    "gpu": {
        "model_dir": "resources/models/vit-b-16",
        "device": "cuda",
        "precision": "amp_bf16",
        "threads": 8,
        "workers": 8,
        "train_batch": 256,
        "train_steps": 40,
        "train_image": 256,
        "skip_steps": 10,
        "unlearn_images": 512,
        "unlearn_forget": 320,
        "unlearn_batch": 32,
        "unlearn_budget": 2,
        "encode_batch": 256,
        "encode_images": 1024,
        "faces_arch": "sd15",
        "faces_size": 512,
        "faces_steps": 30,
        "faces_batch": 8,
        "faces_dtype": "float16",
        "faces_images": 8,
    },
    "cpu-smoke": {
        "model_dir": "resources/models/tiny-clip",
        "device": "cpu",
        "precision": "fp32",
        "threads": 1,
        "workers": 1,
        "train_batch": 8,
        "train_steps": 6,
        "train_image": 48,
        "skip_steps": 2,
        "unlearn_images": 64,
        "unlearn_forget": 16,
        "unlearn_batch": 8,
        "unlearn_budget": 1,
        "encode_batch": 16,
        "encode_images": 32,
        "faces_arch": "tiny",
        "faces_size": 64,
        "faces_steps": 2,
        "faces_batch": 2,
        "faces_dtype": "float32",
        "faces_images": 2,
    },
}
SALMU = [sys.executable, "-m", "salmu"]


def salmu(*argv: str, log: Path) -> None:
    """One ``salmu`` command in its own process, as the workflow runs it; its output in ``log``."""
    with log.open("w") as handle:
        result = subprocess.run([*SALMU, *argv], stdout=handle, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = log.read_text().strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"salmu {argv[0]} exited with {result.returncode}: {tail[0]}")


# open_clip_train's step line: "... Data (t): 0.012 Batch (t): 0.101, 2534.6/s, 2534.6/s/gpu ..."
STEP_LINE = re.compile(
    r"Data \(t\): ([0-9.]+) Batch \(t\): [0-9.]+, [0-9.e+]+/s, ([0-9.e+]+)/s/gpu"
)


def open_clip_rates(log: Path, skip: int) -> dict[str, float]:
    """Median samples/s per GPU and data wait of the logged steps after the first ``skip``."""
    steps = [(float(d), float(r)) for d, r in STEP_LINE.findall(log.read_text())]
    timed = steps[skip:] or steps
    if not timed:
        raise ValueError(f"{log}: no step line of open_clip_train")
    return {
        "samples_per_s_per_gpu": statistics.median(r for _, r in timed),
        "data_seconds_mean": statistics.fmean(d for d, _ in timed),
        "logged_steps": len(steps),
        "timed_steps": len(timed),
    }


def model_rates(p: dict, work: Path) -> dict[str, Any]:
    """FLOPs per sample and the model-only rates (``salmu throughput``'s measures)."""
    import torch

    from salmu.clip_model import load_clip
    from salmu.throughput import device_name, measure_encoding, measure_training, peak_tflops

    device = torch.device(p["device"])
    model, _, tokenizer = load_clip(p["model_dir"], device=str(device))
    name = device_name(device)
    common = {"precision": p["precision"], "device": device, "warmup": 2, "steps": 5}
    train = measure_training(
        model,
        tokenizer,
        batch_size=p["train_batch"],
        grad_checkpointing=False,
        peak=peak_tflops(name, p["precision"], None),
        **common,
    )
    encode = measure_encoding(model, tokenizer, batch_size=p["encode_batch"], **common)
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the trainings that follow run in processes of their own
    return {"device_name": name, "train": train, "encode": encode}


def check_train(p: dict, work: Path, flops: dict) -> dict[str, Any]:
    from salmu.synthetic_images import image_shards

    samples = p["train_batch"] * p["train_steps"]
    per_shard = max(1, samples // (2 * p["workers"]))  # open_clip: shards >= workers
    shards = image_shards(work / "train_data", samples, p["train_image"], per_shard)
    logs = work / "train_run"
    salmu(
        *("train", "--model-dir", p["model_dir"], "--train-data", str(shards)),
        *("--logs-dir", str(logs), "--out", str(work / "vit.pt"), "--seed", "0"),
        *("--epochs", "1", "--batch-size", str(p["train_batch"]), "--lr", "5e-4"),
        *("--warmup", "10", "--precision", p["precision"], "--workers", str(p["workers"])),
        *("--device", p["device"], "--threads", str(p["threads"]), "--log-every", "1"),
        log=work / "train.log",
    )
    rates = open_clip_rates(next(logs.rglob("out.log")), p["skip_steps"])
    model_only = flops["train"]
    achieved = model_only["flops_per_sample"] * rates["samples_per_s_per_gpu"] / 1e12
    peak = model_only["peak_tflops"]
    return {
        "engine": "open_clip_train",
        "batch_size": p["train_batch"],
        "precision": p["precision"],
        **rates,
        "flops_per_sample": model_only["flops_per_sample"],
        "achieved_tflops": achieved,
        "peak_tflops": peak,
        "mfu": achieved / peak if peak else None,
        "model_only": model_only,
    }


def check_unlearn(p: dict, work: Path) -> dict[str, Any]:
    from salmu.synthetic_images import image_shards

    size, forget = p["unlearn_images"], p["unlearn_forget"]
    forget_dir = image_shards(work / "forget", forget, size, seed=1, generic=True)
    retain_dir = image_shards(work / "retain", 2 * forget, size, seed=2)
    report = work / "unlearn.json"
    salmu(
        *("unlearn", "--method", "neg_grad", "--budget", str(p["unlearn_budget"]), "--seed", "0"),
        *("--model-dir", p["model_dir"], "--checkpoint", str(work / "vit.pt")),
        *("--forget-shards", str(forget_dir), "--retain-shards", str(retain_dir)),
        *("--lr", "1e-5", "--batch-size", str(p["unlearn_batch"]), "--precision", p["precision"]),
        *("--device", p["device"], "--threads", str(p["threads"]), "--workers", str(p["workers"])),
        *("--out", str(work / "unlearned.pt"), "--report", str(report)),
        log=work / "unlearn.log",
    )
    result = read_json(report)
    keys = ("steps", "batch_size", "precision", "seconds", "samples_per_second")
    return {key: result[key] for key in keys} | {"image_size": size}


def check_evaluate(p: dict, work: Path, flops: dict) -> dict[str, Any]:
    from salmu.clip_model import load_clip
    from salmu.evaluate.encode import Encoder
    from salmu.synthetic_images import image_shards
    from salmu.unlearn.data import read_samples

    shards = image_shards(work / "eval", p["encode_images"], 512, seed=3)
    jpegs = [s.image_bytes() for s in read_samples(shards)]
    encoder = Encoder(
        lambda: load_clip(p["model_dir"], work / "vit.pt", p["device"]),
        p["device"],
        p["encode_batch"],
        p["workers"],
    )
    encoder.encode_image_batch(jpegs[: p["encode_batch"]])  # load, warm up
    start = time.perf_counter()
    for i in range(0, len(jpegs), p["encode_batch"]):
        encoder.encode_image_batch(jpegs[i : i + p["encode_batch"]])
    seconds = time.perf_counter() - start
    return {
        "images_per_s_from_jpeg": len(jpegs) / seconds,
        "image_size": 512,
        "batch_size": p["encode_batch"],
        "decode_workers": p["workers"],
        "model_only_samples_per_s": flops["encode"]["samples_per_s"],
    }


def check_faces(p: dict, work: Path) -> dict[str, Any]:
    import torch

    from salmu import faces
    from salmu.face_backends.random_weights import build_ip_adapter, build_sd, ip_weight_name
    from salmu.throughput import measure_faces

    arch, cuda = p["faces_arch"], p["device"] == "cuda"
    dtype = getattr(torch, p["faces_dtype"])
    start = time.perf_counter()
    pipe = build_sd(work / "sd", arch, p["device"], dtype)
    std = 0.02 if arch == "sd15" else 0.3
    build_ip_adapter(work / "ip", pipe.unet, arch, std, p["device"], dtype)
    del pipe
    built = time.perf_counter() - start
    salmu(
        *("personas", "--n-identities", "2", "--seed", "0"),
        *("--out-parquet", str(work / "personas.parquet")),
        *("--out-metadata", str(work / "identities.json")),
        log=work / "personas.log",
    )
    parser = argparse.ArgumentParser()
    faces.add_render_arguments(parser)
    args = parser.parse_args(
        [
            *("--backend", "diffusers", "--size", str(p["faces_size"])),
            *("--images-per-identity", str(p["faces_images"])),
            *("--diffusers-model", str(work / "sd"), "--diffusers-ip-adapter", str(work / "ip")),
            *("--diffusers-ip-adapter-weight-name", ip_weight_name(arch)),
            *("--diffusers-steps", str(p["faces_steps"])),
            *("--diffusers-resolution", str(p["faces_size"])),
            *("--diffusers-batch-size", str(p["faces_batch"])),
            *("--diffusers-dtype", p["faces_dtype"], "--diffusers-device", p["device"]),
        ]
    )
    args.personas, args.identities, args.seed = str(work / "personas.parquet"), 2, 0
    result = measure_faces(args)
    return result | {
        "architecture": arch,
        "resolution": p["faces_size"],
        "steps": p["faces_steps"],
        "ip_adapter": "plain (4 tokens)",
        "build_seconds": built,
        "cuda": cuda,
    }


def environment() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpus"] = torch.cuda.device_count()
    return info


def run_checks(p: dict, work: Path) -> dict[str, Any]:
    report: dict[str, Any] = {"environment": environment()}
    seconds: dict[str, float] = {}

    def part(name, check, *args):
        start = time.perf_counter()
        try:
            report[name] = check(*args)
        except Exception as err:  # one part's failure must not hide the others' numbers
            report[name] = {"error": f"{type(err).__name__}: {first_line(err)}"}
        seconds[name] = round(time.perf_counter() - start, 1)
        print(f"gpu-check: {name} in {seconds[name]} s", flush=True)

    part("model", model_rates, p, work)
    flops = report["model"] if "error" not in report["model"] else None
    if flops:
        part("train", check_train, p, work, flops)
        part("evaluate", check_evaluate, p, work, flops)
    part("unlearn", check_unlearn, p, work)
    part("faces", check_faces, p, work)
    report["seconds"] = seconds
    return report


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="the JSON to write")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="gpu")
    parser.add_argument("--work-dir", default="results/gpu-check", help="scratch data and runs")


def run(args: argparse.Namespace) -> None:
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    profile = PROFILES[args.profile]
    if profile["device"] == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ValueError("--profile gpu: no CUDA device here (--profile cpu-smoke runs on CPU)")
    start = time.perf_counter()
    report = {"profile": args.profile, "settings": profile, **run_checks(profile, work)}
    report["seconds"]["total"] = round(time.perf_counter() - start, 1)
    write_json(report, args.out)
    failed = [name for name, part in report.items() if isinstance(part, dict) and "error" in part]
    print(json.dumps({k: report[k] for k in ("environment", "seconds")}))
    if failed:
        print(f"gpu-check: failed parts: {failed} (see {args.out})", file=sys.stderr)
        raise SystemExit(1)
