"""What a relearning attacker trains on, and the proof that it never saw what is measured.

Three attackers, each a threat seen in the unlearning literature:

- ``related``: the holdout_association pairs of the forget identities (other facts about the same
  people, which nobody asked to forget);
- ``partial``: a seeded fraction of the forget pairs themselves (a leak of some of the forgotten
  data); the attack is measured on the other forget pairs;
- ``benign``: retain data only (an ordinary fine-tune after unlearning).

The partial attacker's rows depend only on the seed and the forget split, so every model (Clean,
Compromised, each unlearned model) is attacked with the same rows and measured on the same rest.
Before any step, ``check_disjoint`` compares the attacker's samples with the measured forget rows
by key and by image sha256, like the other leak audits: an overlap is an error.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from salmu.io import iter_parquet
from salmu.released_layout import shard_paths
from salmu.sections.attacks import RELEARN_KINDS
from salmu.seeding import stream
from salmu.shards import image_bytes_column, sample_key


@dataclass
class AttackData:
    kind: str
    samples: list  # salmu.unlearn.data.Sample: what the attacker trains on
    trained_on: list[str] = field(default_factory=list)  # forget file_names it trained on


def split_samples(benchmark: str | Path, split: str, keep: set[str] | None = None) -> list:
    """The rows of a released split as samples (images in memory), optionally only ``keep``."""
    from salmu.unlearn.data import Sample

    samples = []
    for path in shard_paths(benchmark, split):
        for batch in iter_parquet(path, ["file_name", "text", "image"]):
            names, texts = batch["file_name"].to_list(), batch["text"].to_list()
            for name, text, image in zip(names, texts, image_bytes_column(batch), strict=True):
                if keep is None or name in keep:
                    samples.append(Sample(image, text, key=name))
    return samples


def partial_rows(forget_names: list[str], fraction: float, seed: int) -> list[str]:
    """The forget file_names a partial attacker holds: a seeded ``fraction`` (at least one)."""
    if not 0 < fraction < 1:
        raise ValueError(f"partial fraction {fraction}: expected a share strictly in (0, 1)")
    names = sorted(forget_names)
    count = max(1, round(fraction * len(names)))
    chosen = stream(seed, "attacks", "partial").choice(len(names), size=count, replace=False)
    return sorted(names[i] for i in chosen)


def attacker_data(
    kind: str,
    benchmark: str | Path,
    forget_names: list[str],
    retain_shards: list[str],
    retain_samples: int | None,
    fraction: float,
    seed: int,
) -> AttackData:
    if kind == "related":
        return AttackData(kind, split_samples(benchmark, "holdout_association"))
    if kind == "partial":
        held = partial_rows(forget_names, fraction, seed)
        return AttackData(kind, split_samples(benchmark, "forget", set(held)), held)
    if kind == "benign":
        from salmu.unlearn.data import read_samples

        return AttackData(kind, read_samples(list(retain_shards), retain_samples, seed))
    raise ValueError(f"unknown relearning attack {kind!r}: expected one of {list(RELEARN_KINDS)}")


def forget_fingerprints(benchmark: str | Path) -> dict[str, tuple[str, str]]:
    """file_name -> (sample key, image sha256) of every forget row."""
    out = {}
    for path in shard_paths(benchmark, "forget"):
        for batch in iter_parquet(path, ["file_name", "image"]):
            for name, image in zip(batch["file_name"], image_bytes_column(batch), strict=True):
                out[name] = (sample_key(name), hashlib.sha256(image).hexdigest())
    return out


def check_disjoint(data: AttackData, measured: dict[str, tuple[str, str]]) -> dict:
    """The attacker's samples against the measured rows (file_name -> (key, sha256)): an overlap
    by key or by image hash is an error naming a sample; returns the audit's counts."""
    keys = {key for key, _ in measured.values()}
    hashes = {digest for _, digest in measured.values()}
    for sample in data.samples:
        name = sample.key.rsplit(":", 1)[-1]
        digest = hashlib.sha256(sample.image_bytes()).hexdigest()
        if sample_key(name) in keys or name in keys or digest in hashes:
            raise ValueError(
                f"attack {data.kind!r}: its data holds {sample.key}, a forget row the attack is "
                "measured on (same key or image)"
            )
    return {"attack_samples": len(data.samples), "measured_rows": len(measured), "overlap": 0}
