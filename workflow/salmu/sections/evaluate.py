"""Settings of the evaluator (config section ``evaluate``, flags of ``salmu evaluate``).

The defaults are the tiny tier's (``config.yaml``); the paper tier overrides what the official
evaluator fixes differently (``resources/tiers/paper.yaml``: 1,000 distractors, CUDA).
"""

from __future__ import annotations

from dataclasses import dataclass

from salmu.settings import Settings, setting

IMAGENET_TEMPLATE_SETS = ("openai", "simple")


@dataclass(frozen=True, kw_only=True)
class EvaluateSettings(Settings):
    section = "evaluate"

    distractors: int = setting(
        500,
        "RetFail distractors per pool, forget and retain_disjoint (official: 1000; the tiny "
        "tier's forget split holds 600 rows)",
    )
    seed: int = setting(42, "seed of the distractor pools and the ACS permutation (official: 42)")
    batch_size: int = setting(256, "images or texts per encoder batch")
    device: str = setting(
        "cpu", "cpu, cuda or auto (cuda when available)", choices=("auto", "cpu", "cuda")
    )
    threads: int = setting(1, "torch threads (0: leave torch's default)")
    workers: int = setting(0, "image decode/preprocess threads (0: threads if set, else 4)")
    imagenet_path: str | None = setting(
        None,
        "local ImageNet-1k val folder (ImageFolder: 1000 WordNet-id class folders): GenKnow is "
        "then real ImageNet zero-shot top-1; null: the synthetic GenKnow set of the run",
    )
    imagenet_templates: str = setting(
        "openai",
        "open_clip ImageNet prompts: openai (80) or simple (7)",
        choices=IMAGENET_TEMPLATE_SETS,
    )
    imagenet_limit: int | None = setting(
        None, "smoke runs: only the first N images of each ImageNet class (null: all)"
    )
    bootstrap: int = setting(
        1000, "identity-clustered bootstrap resamples of the pair-level metrics' CIs (0: none)"
    )
    ci_level: float = setting(0.95, "confidence level of the bootstrap CIs")
    acs_test_fraction: float = setting(0.5, "ACS probe: stratified test share")
    acs_c: float = setting(1.0, "ACS probe: inverse L2 strength of the logistic regression")
    idzsc_template: str = setting("a photo of {name}.", "IdZSC prompt, with {name}")
    genknow_templates: list[str] = setting(
        ["a photo of a {}.", "a {}."], "GenKnow prompt templates on the synthetic set, each with {}"
    )
    tie_tol: float = setting(1e-6, "RetFail: scores within this count as ties")
