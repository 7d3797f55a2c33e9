"""``salmu evaluate``: score one checkpoint on a benchmark directory (all SALMUBench metrics).

Flow: load the benchmark tables and derived splits (``data``), encode every image and distinct
text once through the per-model cache (``encode``), compute every metric from those embeddings
(``metrics``), write the official layout (``layout``) with ``salmu.io.write_json``.

Our interpretation of the [?] items (each is a flag; see ``metrics`` and ``data`` for details):

- RetFail ties: rank = 1 + #distractors scoring strictly above the true caption (``--tie-tol``
  absorbs float rounding), so an identical-text distractor never hurts.
- Distractor pools: ``--distractors`` (official 1000) drawn with ``np.random.RandomState(--seed)``,
  forget pool first, as the official global-RNG calls after ``np.random.seed``; capped at the pool
  size with a warning.
- ACS: pair-similarity feature, permuted-text non-members, stratified ``--acs-test-fraction``
  split, L2 logistic regression with ``--acs-c``; RNG = ``salmu.seeding.stream(seed, ...)``.
- IdZSC: classes = forget_identity identities, prompt ``--idzsc-template``.
- CoreAssoc: name from identities_metadata.json, value from the captions metadata ``value``.
- GenKnow: synthetic zero-shot set (``--genknow``), class embedding = normalised mean over
  ``--genknow-templates``; -1 when no parquet is given. ``--imagenet-path`` (a local ImageNet-1k
  val set in the ImageFolder layout; open_clip classnames, ``--imagenet-templates openai|simple``,
  optional ``--imagenet-limit`` images per class for smoke runs) takes precedence: real ImageNet
  zero-shot top-1, ``source: "imagenet1k"`` (see ``imagenet``).
- Confidence intervals (ours, not official): ``--bootstrap`` resamples (default 0: none, so the
  JSON is exactly the official layout; e.g. ``--bootstrap 1000 --ci-level 0.95``) of an
  identity-clustered percentile bootstrap at ``--ci-level`` for every pair-level metric (RetFail
  MRR / R@1, AssocStr, CoreAssoc, InterIdSim, IntraIdSim, VisIdInt, FragSim; not ACS, IdZSC,
  GenKnow), stored as ``<key>_ci`` next to each value (``metrics.cluster_bootstrap_ci``).

Model forms (``salmu.clip_model``): ``--model-dir`` is an open_clip model dir, an ``hf-hub:org/name``
id (weights from the repo unless ``--checkpoint``; the local HF cache with ``HF_HUB_OFFLINE=1``) or
an architecture name (``ViT-B-16``); ``--checkpoint`` is an ``epoch_K.pt``, a raw state dict
(``.bin``/``.pth``) or ``.safetensors``, always read without unpickling.

Other choices: without any weights (no ``--checkpoint``, a config-only model dir or an architecture
name) the model is a seeded random init (smoke tests); without ``--cache-dir`` embeddings are kept
in memory only. An empty split's metric is NaN (written as the
JSON token ``NaN``, which ``salmu.io.read_json`` reads back) with an ``EvaluationWarning``.

``meta`` carries run facts (split sizes, distractor counts, encoder passes, timings);
``pairs_per_second`` = rows of the four released splits / wall seconds of ``evaluate`` (benchmark
load + encoding, model load included + metrics; not the Python start-up). Timings and pass counts
are the only parts of the JSON that differ between two runs of the same inputs.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from salmu.evaluate import data, encode, imagenet, layout, metrics
from salmu.io import write_json
from salmu.sections.evaluate import EvaluateSettings
from salmu.seeding import stream

# Split -> the pair-mean utility metric over it (their bootstrap CIs).
PAIR_MEAN_SPLITS = {
    "holdout_identity": "InterIdSim",
    "holdout_association": "IntraIdSim",
    "retain_joint": "VisIdInt",
    "fragile_set": "FragSim",
}


@dataclass(frozen=True, kw_only=True)
class EvalConfig(EvaluateSettings):
    """One evaluation: what to evaluate and where to write it, plus the evaluator's settings."""

    benchmark: str
    model_dir: str
    out: str
    checkpoint: str | None = None
    genknow: str | None = None
    state: str | None = None
    cache_dir: str | None = None


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--benchmark", required=True, help="benchmark dir (data/{split}-*.parquet + JSONs)")
    add("--genknow", default=None, help="GenKnow parquet (synthetic zero-shot set); omit: -1")
    add(
        "--model-dir",
        required=True,
        help="open_clip model dir (open_clip_config.json [+ weights]), hf-hub:org/name[@revision] "
        "or an architecture name such as ViT-B-16",
    )
    add(
        "--checkpoint",
        default=None,
        help="weights: epoch_K.pt, raw state dict (.bin/.pth) or .safetensors; overrides weights "
        "of --model-dir; with none anywhere, a seeded random init",
    )
    add(
        "--state",
        default=None,
        help="state name recorded in meta (default: checkpoint stem, hub repo or model dir name)",
    )
    add("--out", required=True, help="output evaluation JSON")
    add("--cache-dir", default=None, help="embedding cache dir (default: no on-disk cache)")
    EvaluateSettings.add_arguments(parser)


def check_templates(cfg: EvalConfig) -> None:
    try:
        ok = "{name}" in cfg.idzsc_template and cfg.idzsc_template.format(name="x")
    except (KeyError, IndexError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            f"--idzsc-template {cfg.idzsc_template!r}: expected a template whose "
            "only field is {name}"
        )
    if not cfg.genknow_templates:
        raise ValueError("--genknow-templates: expected at least one template")
    for template in cfg.genknow_templates:
        try:
            ok = "{}" in template and template.format("x")
        except (KeyError, IndexError, ValueError):
            ok = False
        if not ok:
            raise ValueError(
                f"--genknow-templates {template!r}: expected a template whose only field is {{}}"
            )


def decode_workers(cfg: EvalConfig) -> int:
    # Stay inside the scheduler's thread allotment (--threads) unless told otherwise.
    if cfg.workers > 0:
        return cfg.workers
    return cfg.threads if cfg.threads > 0 else 4


def genknow_prompts(classnames: list[str], templates: list[str]) -> list[str]:
    """Class-major prompt list: prompts[c * len(templates) + t]."""
    return [t.format(c) for c in classnames for t in templates]


def compute_metrics(
    bench: data.Benchmark,
    images: dict[str, np.ndarray],
    texts: encode.TextTable,
    cfg: EvalConfig,
    genknow: tuple | None = None,
) -> dict:
    """Every metric from cached embeddings; ``genknow = (image_emb, labels, classnames[,
    templates])`` (templates default: ``cfg.genknow_templates``)."""

    def img(split: str) -> np.ndarray:
        return images[data.BASE_OF[split]][bench.splits[split]["row"].to_numpy()]

    def txt(split: str) -> np.ndarray:
        return texts(bench.splits[split]["text"].to_list())

    forget_img, forget_txt = img("forget"), txt("forget")
    _, names, labels = data.idzsc_classes(bench)
    name_value, value_name = data.core_assoc_texts(bench)
    out = {
        "ret_fail": metrics.ret_fail(
            forget_img,
            forget_txt,
            texts(bench.forget_distractors + bench.retain_distractors),
            cfg.tie_tol,
        ),
        "assoc_str": metrics.assoc_str(forget_img, forget_txt),
        "acs": metrics.acs(
            forget_img,
            forget_txt,
            stream(cfg.seed, "evaluate", "acs"),
            cfg.acs_test_fraction,
            cfg.acs_c,
        ),
        "id_zsc": metrics.id_zsc(
            img("forget_identity"),
            labels,
            texts([cfg.idzsc_template.format(name=n) for n in names]),
        ),
        "core_assoc": metrics.core_assoc(forget_img, texts(name_value), texts(value_name)),
        "inter_id_sim": metrics.pair_mean(
            img("holdout_identity"), txt("holdout_identity"), "InterIdSim"
        ),
        "intra_id_sim": metrics.pair_mean(
            img("holdout_association"), txt("holdout_association"), "IntraIdSim"
        ),
        "vis_id_int": metrics.pair_mean(img("retain_joint"), txt("retain_joint"), "VisIdInt"),
        "frag_sim": metrics.pair_mean(img("fragile_set"), txt("fragile_set"), "FragSim"),
        "genknow": None,
    }
    genknow_hits = None
    if genknow is not None:
        gk_images, gk_labels, classnames, *rest = genknow
        templates = rest[0] if rest else cfg.genknow_templates
        prompt_emb = texts(genknow_prompts(classnames, templates))
        prompt_emb = prompt_emb.reshape(len(classnames), len(templates), -1)
        genknow_hits = metrics.zero_shot_hits(
            gk_images, gk_labels, metrics.class_embeddings(prompt_emb), "GenKnow"
        )
        out["genknow"] = metrics.gen_know_from_hits(genknow_hits)
        out["genknow_hits"] = genknow_hits
    if cfg.bootstrap != 0:  # CIs: identities (null identity: the row alone) resampled per split
        ranks = np.asarray(out["ret_fail"]["outcomes"], dtype=np.float64)

        def ids(split: str) -> list:
            return bench.splits[split]["identity_id"].to_list()

        forget_rows = {
            "RetFail_MRR": 1.0 / ranks,
            "RetFail_R@1": ranks == 1,
            "AssocStr": out["assoc_str"]["scores"],
            "CoreAssoc": out["core_assoc"]["scores"],
        }
        groups = {"forget": (ids("forget"), forget_rows)} | {
            split: (ids(split), {column: metrics.pair_similarities(img(split), txt(split))})
            for split, column in PAIR_MEAN_SPLITS.items()
        }
        if genknow_hits is not None and len(genknow_hits):  # images are independent draws
            groups["genknow"] = ([None] * len(genknow_hits), {"GenKnow": genknow_hits})
        out["cis"] = metrics.clustered_cis(
            groups,
            cfg.bootstrap,
            cfg.ci_level,
            lambda split: stream(cfg.seed, "evaluate", "bootstrap", split),
        )
        out["bootstrap"] = {
            "resamples": cfg.bootstrap,
            "ci_level": cfg.ci_level,
            "method": "percentile; clusters = identity_id (null identity: one row per cluster)",
        }
    return out


def needed_texts(
    bench: data.Benchmark,
    cfg: EvalConfig,
    classnames: list[str],
    templates: list[str] | None = None,
) -> set[str]:
    """Every distinct text any metric will look up (encoded once, in one pass)."""
    needed = set()
    for split in data.BASE_SPLITS:
        needed.update(bench.splits[split]["text"].to_list())
    needed.update(bench.forget_distractors + bench.retain_distractors)
    _, names, _ = data.idzsc_classes(bench)
    needed.update(cfg.idzsc_template.format(name=n) for n in names)
    for pair_texts in data.core_assoc_texts(bench):
        needed.update(pair_texts)
    needed.update(
        genknow_prompts(classnames, cfg.genknow_templates if templates is None else templates)
    )
    return needed


def evaluate(cfg: EvalConfig) -> dict:
    """Run the whole evaluation and return the result dict (not written)."""
    start = time.perf_counter()
    from salmu.clip_model import resolve_device

    check_templates(cfg)
    device = resolve_device(cfg.device)
    source = encode.resolve_model(cfg.model_dir, cfg.checkpoint)  # fail fast on a bad model
    if cfg.threads > 0:
        import torch

        torch.set_num_threads(cfg.threads)
    inet = imagenet.scan(cfg.imagenet_path, cfg.imagenet_limit) if cfg.imagenet_path else None
    bench = data.load_benchmark(cfg.benchmark, cfg.distractors, cfg.seed)
    gk_templates = list(cfg.genknow_templates)
    if inet is not None:  # real ImageNet takes precedence; --genknow is then not read
        gk_table, classnames = None, imagenet.classnames()
        gk_templates = imagenet.templates(cfg.imagenet_templates)
    else:
        gk_table, classnames = data.read_genknow_table(cfg.genknow) if cfg.genknow else (None, [])
    key = encode.model_key(source, cfg.seed, device)
    cache = encode.EmbeddingCache(
        cfg.cache_dir,
        key,
        info={
            "model_dir": str(cfg.model_dir),
            "checkpoint": cfg.checkpoint,
            "weights": None if source.weights is None else str(source.weights),
            "precision": "amp" if device == "cuda" else "fp32",
        },
    )
    encoder = encode.Encoder(
        lambda: encode.load_model(source, device, cfg.seed),
        device,
        cfg.batch_size,
        decode_workers(cfg),
    )
    loaded = time.perf_counter()
    try:
        images = {}
        for split in data.BASE_SPLITS:
            shards = data.shard_paths(bench.root, split)
            images[split] = cache.images(
                split,
                bench.splits[split]["file_name"].to_list(),
                data.files_fingerprint(shards),
                lambda split=split: data.iter_split_images(bench.root, split, cfg.batch_size),
                encoder,
            )
        genknow = None
        if gk_table is not None:
            gk_images = cache.images(
                "genknow",
                gk_table["file_name"].to_list(),
                data.files_fingerprint([Path(cfg.genknow)]),
                lambda: data.iter_genknow_images(cfg.genknow, cfg.batch_size),
                encoder,
            )
            genknow = (gk_images, gk_table["label"].to_numpy(), classnames)
        if inet is not None:
            inet_images = cache.images(
                inet.cache_name,
                inet.files,
                inet.fingerprint,
                lambda: imagenet.iter_images(inet, cfg.batch_size),
                encoder,
            )
            genknow = (inet_images, inet.labels, classnames, gk_templates)
        texts = cache.texts(needed_texts(bench, cfg, classnames, gk_templates), encoder)
    finally:
        encoder.close()
    encoded = time.perf_counter()
    values = compute_metrics(bench, images, texts, cfg, genknow)
    done = time.perf_counter()

    n_pairs = sum(bench.splits[s].height for s in data.BASE_SPLITS)
    n_genknow = (
        len(inet.files) if inet is not None else (0 if gk_table is None else gk_table.height)
    )
    stats = encoder.stats.as_dict()
    seconds = {
        "load": loaded - start,
        "encode": encoded - loaded,
        "metrics": done - encoded,
        "total": done - start,
    }
    meta = {
        "state": cfg.state or source.state_name,
        "checkpoint": cfg.checkpoint,
        "model_dir": str(cfg.model_dir),
        "model_key": key,
        "device": device,
        "seed": cfg.seed,
        "distractors": {
            "requested": cfg.distractors,
            "forget": len(bench.forget_distractors),
            "retain_disjoint": len(bench.retain_distractors),
        },
        "split_sizes": {**bench.sizes(), "genknow": n_genknow},
        "idzsc_classes": len(data.idzsc_classes(bench)[1]),
        "genknow_classes": len(classnames),
        "settings": {
            "acs_test_fraction": cfg.acs_test_fraction,
            "acs_c": cfg.acs_c,
            "idzsc_template": cfg.idzsc_template,
            "genknow_templates": list(cfg.genknow_templates),
            "tie_tol": cfg.tie_tol,
        },
        "encoder_passes": {k: v for k, v in stats.items() if k != "encode_seconds"},
        "cached": stats["image_batches"] == 0 and stats["text_batches"] == 0,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "pairs": n_pairs,
        "pairs_per_second": round(n_pairs / max(seconds["total"], 1e-9), 1),
    }
    if inet is not None:
        meta["imagenet"] = {
            "path": str(cfg.imagenet_path),
            "templates": cfg.imagenet_templates,
            "prompts_per_class": len(gk_templates),
            "limit": cfg.imagenet_limit,
            "images": len(inet.files),
            "fingerprint": inet.fingerprint,
        }
    result = layout.build_result(meta=meta, **values)
    if inet is not None:
        # update, not replace: the bootstrap CI (``accuracy_ci``) stays.
        result["utility"]["2.1_GenKnow"].update(imagenet.genknow_entry(values["genknow"]))
    return result


def _config_from_args(args: argparse.Namespace) -> EvalConfig:
    return EvalConfig(
        benchmark=args.benchmark,
        model_dir=args.model_dir,
        out=args.out,
        checkpoint=args.checkpoint or None,
        genknow=args.genknow or None,
        state=args.state,
        cache_dir=args.cache_dir or None,
        **EvaluateSettings.values_from_args(args),
    )


def run(args: argparse.Namespace) -> None:
    cfg = _config_from_args(args)
    result = evaluate(cfg)
    write_json(result, cfg.out)
    meta, passes = result["meta"], result["meta"]["encoder_passes"]
    print(
        f"evaluate: encoder passes: {passes['image_batches']} image batches "
        f"({passes['image_items']} images), {passes['text_batches']} text batches "
        f"({passes['text_items']} texts); from cache: {passes['cached_images']} images, "
        f"{passes['cached_texts']} texts"
    )
    flat = ", ".join(f"{k}={v:.4f}" for k, v in layout.flatten(result).items())
    print(f"evaluate: {meta['state']}: {flat}")
    print(
        f"evaluate: wrote {cfg.out} ({meta['pairs']} pairs in {meta['seconds']['total']} s, "
        f"{meta['pairs_per_second']} pairs/s)"
    )
