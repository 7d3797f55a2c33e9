"""The authors' released artifacts (docs/protocol.md §6): ids, pinned revisions, weight hashes.

A model whose weights hash to one of ``MODELS``' sha256 is that release, whatever path or id it
was loaded from; anything else is "not the release", however it is named.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReleasedModel:
    role: str  # "clean" | "compromised"
    hub_id: str
    revision: str
    weights_file: str
    sha256: str
    architecture: str  # open_clip name


MODELS = (
    ReleasedModel(
        "clean",
        "cvc-mmu/clip-vit-b-16-salmu-clean",
        "1d3c0b01dceaf0e66b4d0abeefa3bc8a616f73f8",
        "open_clip_model.safetensors",
        "ff944079f8f5043bf5d90c8e2490fa248d4693c33cdbd80f91c6ceb798f66dfe",
        "ViT-B-16",
    ),
    ReleasedModel(
        "compromised",
        "cvc-mmu/clip-vit-b-16-salmu-compromised",
        "230b1b4f7b84d1bb96927a0a47ac7a007ceba528",
        "open_clip_pytorch_model.bin",
        "c48f390a39450196f0ddd958b250017e0716f7818d03d0ce6f69042204565466",
        "ViT-B-16",
    ),
)
BENCHMARK_ID = "cvc-mmu/salmubench-512-redistributed"
BENCHMARK_REVISION = "b76aa3885a696969e51de4786c9f92e8064b4679"
TRAINING_SET_ID = "cvc-mmu/salmu-512-redistributed"


def released_model(sha256: str | None) -> ReleasedModel | None:
    """The release these weights are, by content; None when they are none of them."""
    return next((m for m in MODELS if sha256 and m.sha256 == sha256.lower()), None)


def describe(role: str, sha256: str | None) -> str:
    """How the table names a reference model: "released Clean", or why it is not the release."""
    match = released_model(sha256)
    if match is None:
        return f"{role}: not the released weights (sha256 {sha256 or 'unknown'})"
    if match.role != role:
        return f"{role}: these are the released {match.role.capitalize()} weights ({match.hub_id})"
    return f"released {role.capitalize()} ({match.hub_id}@{match.revision[:8]})"
