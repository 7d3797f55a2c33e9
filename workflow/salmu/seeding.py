"""Named, order-independent random streams derived from the one config seed.

Every consumer asks for a stream by name (e.g. ``stream(seed, "faces", identity_id)``) so adding a
new consumer never shifts the numbers another consumer draws.
"""

from __future__ import annotations

import hashlib

import numpy as np


def derive_seed(seed: int, *names: object) -> int:
    digest = hashlib.sha256(repr((int(seed),) + tuple(str(n) for n in names)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def stream(seed: int, *names: object) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, *names))
