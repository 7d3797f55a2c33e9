"""Encode every image and every distinct text once per model, with an on-disk cache.

Cache layout (``--cache-dir``): ``<cache-dir>/<model key>/images_<split>.npz`` (one per released
split and ``genknow``: ``emb`` float32 (n, d), ``file_name``, ``source``) and ``texts.npz``
(``texts`` sorted, ``emb``). The model key hashes the model config (config file bytes, also for a
resolved ``hf-hub:`` id; built-in config for an architecture name), the bytes of the weights file
actually loaded (checkpoint, hub or model-dir weights; else the random-init seed) and the
precision (autocast on CUDA gives other numbers than fp32), so different models never share
entries. The same weights in two file forms get two keys (bytes, not tensors, are hashed). An
image cache is reused only when its file names and its source fingerprint (shard names, sizes,
mtimes) match; the text cache grows incrementally.

The model is loaded lazily: a fully cached evaluation never builds it. ``EncoderStats`` counts the
real ``encode_image`` / ``encode_text`` calls and items, so a cached run reports zero passes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from salmu.io import decode_image, file_sha256, write_json
from salmu.seeding import derive_seed

if TYPE_CHECKING:
    from salmu.clip_model import ClipSource


@dataclass
class EncoderStats:
    image_batches: int = 0
    image_items: int = 0
    text_batches: int = 0
    text_items: int = 0
    cached_images: int = 0
    cached_texts: int = 0
    encode_seconds: float = 0.0

    def as_dict(self) -> dict:
        out = asdict(self)
        out["encode_seconds"] = round(out["encode_seconds"], 3)
        return out


def resolve_model(model: str | Path, checkpoint: str | Path | None) -> ClipSource:
    """``--model-dir`` (model dir, ``hf-hub:`` id or architecture name) + ``--checkpoint`` (any
    checkpoint form) -> config and weights files, without building the model."""
    from salmu.clip_model import resolve_clip

    return resolve_clip(model, checkpoint)


def model_key(source: ClipSource, seed: int, device: str) -> str:
    """Cache key of a model: config + weights + precision (see module docstring).

    Config: the ``open_clip_config.json`` bytes (model dir, resolved hub file) or the built-in
    config of an architecture name; weights: the bytes of the file actually loaded (checkpoint,
    hub or model-dir weights), else the random-init seed.
    """
    weights = file_sha256(source.weights) if source.weights is not None else f"random-init:{seed}"
    precision = "amp" if device == "cuda" else "fp32"
    payload = json.dumps([source.config_sha256, weights, precision])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def load_model(source: ClipSource, device: str, seed: int):
    """``load_clip``; without weights the random init is seeded so caches stay valid."""
    import torch

    from salmu.clip_model import load_clip

    if source.weights is not None:
        return load_clip(source, None, device)
    with torch.random.fork_rng(devices=[]):  # do not disturb the caller's torch RNG
        torch.manual_seed(derive_seed(seed, "evaluate", "random-init") % 2**63)
        return load_clip(source, None, device)


class Encoder:
    """Batched, normalised CLIP encoding; the model comes from ``loader()`` on first use."""

    def __init__(
        self, loader: Callable[[], tuple], device: str, batch_size: int = 256, workers: int = 4
    ):
        if batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
        self._loader, self._model = loader, None
        self.device, self.batch_size, self.workers = device, batch_size, workers
        self.stats = EncoderStats()
        self._pool = ThreadPoolExecutor(workers) if workers > 1 else None

    def _ensure_model(self):
        if self._model is None:
            self._model, self._preprocess, self._tokenizer = self._loader()
        return self._model

    def _context(self):
        import torch

        # Autocast only on CUDA, as the official evaluator's torch.amp; CPU stays fp32.
        amp = torch.autocast("cuda") if self.device == "cuda" else contextlib.nullcontext()
        stack = contextlib.ExitStack()
        stack.enter_context(torch.no_grad())
        stack.enter_context(amp)
        return stack

    def _finish(self, features) -> np.ndarray:
        import torch.nn.functional as F

        return F.normalize(features.float(), dim=-1).cpu().numpy().astype(np.float32)

    def encode_image_batch(self, jpegs: list[bytes], names: list[str] | None = None) -> np.ndarray:
        """Embeddings of one batch. An image that does not decode is an error naming it: skipping
        it would silently change what the metrics measure (training data skips and counts)."""
        import torch

        model = self._ensure_model()
        start = time.perf_counter()
        names = names or [f"item {i}" for i in range(len(jpegs))]

        def prep(item: tuple[str, bytes]):
            image = decode_image(item[1])
            if image is None:
                raise ValueError(f"{item[0]}: image bytes do not decode (corrupt benchmark copy?)")
            return self._preprocess(image)

        # JPEG decode + resize dominate on CPU; PIL releases the GIL, so threads help.
        items = list(zip(names, jpegs, strict=True))
        tensors = list(self._pool.map(prep, items)) if self._pool else [prep(i) for i in items]
        with self._context():
            out = self._finish(model.encode_image(torch.stack(tensors).to(self.device)))
        self.stats.image_batches += 1
        self.stats.image_items += len(jpegs)
        self.stats.encode_seconds += time.perf_counter() - start
        return out

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        model = self._ensure_model()
        start = time.perf_counter()
        chunks = []
        for i in range(0, len(texts), self.batch_size):
            batch = texts[i : i + self.batch_size]
            with self._context():
                tokens = self._tokenizer(batch).to(self.device)
                chunks.append(self._finish(model.encode_text(tokens)))
            self.stats.text_batches += 1
            self.stats.text_items += len(batch)
        self.stats.encode_seconds += time.perf_counter() - start
        return np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


class TextTable:
    """Distinct text -> row of a normalised embedding matrix."""

    def __init__(self, texts: list[str], emb: np.ndarray):
        self.texts, self.emb = texts, emb
        self.index = {t: i for i, t in enumerate(texts)}

    def __call__(self, texts: Iterable[str]) -> np.ndarray:
        rows = [self.index[t] for t in texts]
        if not rows:
            return np.zeros((0, self.emb.shape[1] if self.emb is not None else 0), np.float32)
        return self.emb[rows]


def _save_npz(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")  # np.savez insists on the .npz suffix
    np.savez(tmp, **arrays)
    tmp.replace(path)


def _load_npz(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError):  # a truncated or foreign file: re-encode rather than fail
        return None


class EmbeddingCache:
    """Per-model embedding store; ``cache_dir=None`` keeps everything in memory only."""

    def __init__(self, cache_dir: str | Path | None, key: str, info: dict | None = None):
        self.dir = Path(cache_dir) / key if cache_dir is not None else None
        if self.dir is not None and info is not None and not (self.dir / "model.json").exists():
            write_json(info, self.dir / "model.json")  # which model this key stands for

    def images(
        self,
        name: str,
        file_names: list[str],
        source: str,
        batches: Callable[[], Iterable[tuple[list, list]]],
        encoder: Encoder,
    ) -> np.ndarray:
        """Embeddings of one split's images, in row order; ``batches()`` yields (names, bytes)."""
        path = self.dir / f"images_{name}.npz" if self.dir is not None else None
        cached = _load_npz(path) if path is not None else None
        if (
            cached is not None
            and str(cached.get("source")) == source
            and cached["file_name"].tolist() == file_names
        ):
            encoder.stats.cached_images += len(file_names)
            return cached["emb"]
        chunks, seen = [], []
        for names, jpegs in batches():
            chunks.append(encoder.encode_image_batch(jpegs, [f"split {name}: {n}" for n in names]))
            seen.extend(names)
        if seen != file_names:
            raise ValueError(f"{name}: image rows do not match the table rows (file_name order)")
        emb = np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)
        if path is not None:
            _save_npz(
                path,
                emb=emb,
                file_name=np.asarray(file_names, dtype=str),
                source=np.asarray(source),
            )
        return emb

    def texts(self, needed: Iterable[str], encoder: Encoder) -> TextTable:
        """Embeddings of every needed text, encoding only those not cached yet."""
        path = self.dir / "texts.npz" if self.dir is not None else None
        cached = _load_npz(path) if path is not None else None
        known = (
            TextTable(cached["texts"].tolist(), cached["emb"]) if cached else TextTable([], None)
        )
        needed = sorted(set(needed))
        missing = [t for t in needed if t not in known.index]
        encoder.stats.cached_texts += len(needed) - len(missing)
        if not missing:
            return known
        new = encoder.encode_texts(missing)
        texts = known.texts + missing
        emb = new if known.emb is None else np.concatenate([known.emb, new])
        order = np.argsort(np.asarray(texts, dtype=object), kind="stable")
        table = TextTable([texts[i] for i in order], emb[order])
        if path is not None:
            _save_npz(path, texts=np.asarray(table.texts, dtype=str), emb=table.emb)
        return table
