"""Settings of the attacks on forgetting (config section ``attacks``, flags of ``salmu attack``).

Ours, beyond the paper: each attack asks whether a model's forgetting survives something an
adversary or an ordinary deployment does (``salmu.attacks``).
"""

from __future__ import annotations

from dataclasses import dataclass

from salmu.settings import Settings, setting

RELEARN_KINDS = ("related", "partial", "benign")
PRECISION_KINDS = ("fp16", "bf16", "int8")


@dataclass(frozen=True, kw_only=True)
class AttacksSettings(Settings):
    section = "attacks"
    # The workflow's: which unlearning seeds' models are attacked (with Clean and Compromised),
    # and how many shadow Clean / Compromised pairs the association-inference attack trains.
    workflow_keys = ("seeds", "shadow_pairs")
    # Its flags share `salmu attack` with the evaluator's (seed, batch size): --attack-steps, ...
    flag_prefix = "attack-"

    relearn: list[str] = setting(
        list(RELEARN_KINDS),
        "relearning attacks: related (holdout_association pairs of the same people), partial (a "
        "share of the forget pairs, measured on the rest), benign (retain data only)",
    )
    precision: list[str] = setting(
        list(PRECISION_KINDS), "precision attacks: weights cast to fp16 / bf16, or int8-quantized"
    )
    steps: int = setting(20, "optimizer steps of each relearning attack")
    lr: float = setting(1e-4, "AdamW learning rate of the relearning attacks")
    batch_size: int = setting(32, "pairs per relearning step")
    partial_fraction: float = setting(
        0.1, "share of the forget pairs the partial attacker trains on (seeded)"
    )
    benign_samples: int | None = setting(
        None,
        "retain samples the benign attacker draws from, whole shards in a seeded order (null: "
        "steps x batch_size, what it can use once)",
    )
    seed: int = setting(0, "seed of the attackers' data and batches (the same for every model)")
