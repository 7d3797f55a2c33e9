"""GenKnow on a local ImageNet-1k validation set (``salmu evaluate --imagenet-path DIR``).

The official evaluator scores GenKnow as ImageNet-1k zero-shot top-1 through the DataComp eval
code and reports -1 without a local ImageNet (docs/protocol.md §2.3). We read the validation set from a plain
folder in the torchvision ``ImageFolder`` layout instead of the official webdataset:

- ``DIR`` holds exactly 1000 class sub-folders named by WordNet id (``n01440764`` ...); hidden
  entries (``.cache``...) are ignored. Class index = position in the sorted folder list, which is
  the order of open_clip's ``IMAGENET_CLASSNAMES`` (``n01440764`` = "tench", ...,
  ``n15075141`` = "toilet paper"). Anything else is a ``ValueError`` naming ``--imagenet-path``
  (config key ``evaluate.imagenet_path``) and what was found; folder names that do not look like
  WordNet ids only warn, as the mapping is then purely positional.
- Images: every file below a class folder (recursively, symlinks followed) whose extension is one
  of torchvision's ``IMG_EXTENSIONS``, in ImageFolder order (sorted class, then sorted path).
  ``limit`` (``--imagenet-limit N``, for smoke runs) keeps the first N of each class.
- Prompts: open_clip's ``IMAGENET_CLASSNAMES`` with ``OPENAI_IMAGENET_TEMPLATES`` (80, the
  default: what open_clip and DataComp/clip_benchmark use for ImageNet) or
  ``SIMPLE_IMAGENET_TEMPLATES`` (7; ``--imagenet-templates simple``). Class embedding =
  normalised mean of the normalised prompt embeddings (``metrics.class_embeddings``), value =
  top-1 accuracy (``metrics.gen_know``).
- Images are streamed ``batch_size`` files at a time through the model's own preprocess
  (``encode.Encoder``), never all held in memory. Their embeddings are cached like the benchmark
  splits (``images_imagenet1k.npz``, or ``images_imagenet1k_limit<N>.npz`` so that smoke runs do
  not evict the full set), reused only when the file list and its fingerprint (relative path, size
  and mtime of every file) match.

JSON: ``utility.2.1_GenKnow = {"ImageNet1k_Accuracy": acc, "accuracy": acc, "source":
"imagenet1k"}`` (``genknow_entry``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from salmu.evaluate.data import EvaluationWarning
from salmu.sections.evaluate import IMAGENET_TEMPLATE_SETS as TEMPLATE_SETS

NUM_CLASSES = 1000
FLAG = "--imagenet-path"
CONFIG_KEY = "evaluate.imagenet_path"
# torchvision.datasets.folder.IMG_EXTENSIONS (matched case-insensitively, as ImageFolder does).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
WNID = re.compile(r"n\d{8}")
SOURCE = "imagenet1k"


@dataclass(frozen=True)
class ImageNetVal:
    root: Path
    wnids: list[str]  # sorted class folder names; index = class label
    files: list[str]  # paths relative to root (posix), ImageFolder order
    labels: np.ndarray  # int64 class label of every file
    limit: int | None
    fingerprint: str

    @property
    def cache_name(self) -> str:
        return SOURCE if self.limit is None else f"{SOURCE}_limit{self.limit}"


def _where(root: Path) -> str:
    return f"{FLAG} {root} (config key {CONFIG_KEY})"


def class_folders(root: str | Path) -> list[str]:
    """The sorted class folder names of an ImageFolder root; exactly ``NUM_CLASSES`` or raise."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{_where(root)}: ImageNet validation folder not found")
    entries = [e for e in os.scandir(root) if not e.name.startswith(".")]
    folders = sorted(e.name for e in entries if e.is_dir())
    if len(folders) != NUM_CLASSES:
        n_files = sum(1 for e in entries if not e.is_dir())
        shown = ", ".join(folders[:5]) + (", ..." if len(folders) > 5 else "")
        hint = (
            "; a flat validation folder must first be sorted into class folders (e.g. with "
            "valprep.sh)"
            if n_files and not folders
            else ""
        )
        raise ValueError(
            f"{_where(root)}: expected the ImageNet-1k validation set in the ImageFolder layout "
            f"({NUM_CLASSES} class sub-folders named by WordNet id, e.g. n01440764), found "
            f"{len(folders)} sub-folders{f' ({shown})' if folders else ''} and {n_files} other "
            f"entries{hint}"
        )
    odd = [name for name in folders if not WNID.fullmatch(name)]
    if odd:
        warnings.warn(
            f"{_where(root)}: {len(odd)} class folders are not WordNet ids (e.g. {odd[0]!r}); "
            "classes are mapped to open_clip's IMAGENET_CLASSNAMES by sorted position only",
            EvaluationWarning,
            stacklevel=2,
        )
    return folders


def _class_files(folder: Path) -> list[str]:
    """Image files below one class folder, sorted like torchvision's ``make_dataset``."""
    out = []
    for dirpath, _, filenames in sorted(os.walk(folder, followlinks=True)):
        for name in sorted(filenames):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                out.append(os.path.join(dirpath, name))
    return out


def files_fingerprint(root: Path, files: list[str]) -> str:
    """Identity of the file list: relative path, size and mtime of every file."""
    digest = hashlib.sha256()
    for rel in files:
        stat = (root / rel).stat()
        digest.update(json.dumps([rel, stat.st_size, stat.st_mtime_ns]).encode())
    return digest.hexdigest()[:16]


def scan(root: str | Path, limit: int | None = None) -> ImageNetVal:
    """List the validation images and their labels (class = sorted folder position)."""
    root = Path(root)
    if limit is not None and limit < 1:
        raise ValueError(f"--imagenet-limit {limit}: expected >= 1 images per class")
    wnids = class_folders(root)
    files, labels = [], []
    for label, wnid in enumerate(wnids):
        paths = _class_files(root / wnid)
        if limit is not None:
            paths = paths[:limit]
        files.extend(Path(p).relative_to(root).as_posix() for p in paths)
        labels.extend([label] * len(paths))
    if not files:
        raise ValueError(
            f"{_where(root)}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in the "
            f"{NUM_CLASSES} class folders"
        )
    return ImageNetVal(
        root=root,
        wnids=wnids,
        files=files,
        labels=np.asarray(labels, dtype=np.int64),
        limit=limit,
        fingerprint=files_fingerprint(root, files),
    )


def iter_images(val: ImageNetVal, batch_size: int) -> Iterator[tuple[list, list]]:
    """Yield ``(relative paths, file bytes)`` batches in ``val.files`` order (streamed)."""
    for i in range(0, len(val.files), batch_size):
        names = val.files[i : i + batch_size]
        yield names, [(val.root / name).read_bytes() for name in names]


def classnames() -> list[str]:
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    if len(IMAGENET_CLASSNAMES) != NUM_CLASSES:  # pragma: no cover - open_clip sanity check
        raise ValueError(f"open_clip IMAGENET_CLASSNAMES has {len(IMAGENET_CLASSNAMES)} entries")
    return list(IMAGENET_CLASSNAMES)


def templates(name: str = "openai") -> list[str]:
    """open_clip's ImageNet prompt templates as ``{}`` format strings (``genknow_prompts``)."""
    from open_clip import zero_shot_metadata as meta

    if name not in TEMPLATE_SETS:
        raise ValueError(f"--imagenet-templates {name!r}: expected one of {TEMPLATE_SETS}")
    funcs = meta.OPENAI_IMAGENET_TEMPLATES if name == "openai" else meta.SIMPLE_IMAGENET_TEMPLATES
    out = [f("{}") for f in funcs]  # open_clip's templates are lambda c: f"... {c} ..."
    for f, template in zip(funcs, out, strict=True):
        if template.format("x") != f("x"):  # pragma: no cover - a future non-f-string template
            raise ValueError(f"open_clip template {template!r} is not a plain {{}} template")
    return out


def genknow_entry(accuracy: float) -> dict:
    return {"ImageNet1k_Accuracy": accuracy, "accuracy": accuracy, "source": SOURCE}
