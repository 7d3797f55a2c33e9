"""Settings of the unlearning driver (config section ``unlearn``, flags of ``salmu unlearn``).

They are shared by every method; a method's own ``lr`` and ``params`` live under
``unlearn.methods`` and the fan-out (``budgets``, ``seeds``, ``only``) is the workflow's.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from salmu.settings import Settings, setting

# --precision -> the autocast dtype of forward passes (None: plain fp32).
PRECISIONS = {"fp32": None, "amp_bf16": "bfloat16"}


@dataclass(frozen=True, kw_only=True)
class UnlearnSettings(Settings):
    section = "unlearn"
    workflow_keys = ("budgets", "seeds", "only", "methods")

    batch_size: int = setting(
        32, "forget and retain samples per step (one step: one batch of each, for every method)"
    )
    retain_samples: int | None = setting(
        None, "retain subset a method may use, in samples (null: the whole retain set)"
    )
    precision: str = setting(
        "fp32", "fp32, or amp_bf16: forward passes under bf16 autocast", choices=tuple(PRECISIONS)
    )
    weight_decay: float = setting(0.0, "AdamW weight decay")
    grad_clip: float = setting(1.0, "gradient-norm clipping of every optimizer step (0: off)")
    device: str = setting(
        "cpu", "cpu, cuda or auto (cuda when available)", choices=("auto", "cpu", "cuda")
    )
    threads: int = setting(1, "torch threads")
    workers: int = setting(
        0,
        "threads that read, decode and preprocess images ahead of the steps (0: on the main "
        "thread; the batches are the same either way)",
    )


def method_flags(method: Mapping) -> str:
    """``salmu unlearn`` flags of one entry of ``unlearn.methods``: ``--lr`` (none for a method
    that takes no optimizer step), one ``--param key=<json>`` per hyperparameter, and the
    ``--import-path`` of a custom method; quoted for a shell command."""
    argv = [] if method.get("lr") is None else ["--lr", str(method["lr"])]
    for key, value in method.get("params", {}).items():
        argv += ["--param", f"{key}={json.dumps(value)}"]
    if "import_path" in method:
        argv += ["--import-path", method["import_path"]]
    return " ".join(shlex.quote(word) for word in argv)
