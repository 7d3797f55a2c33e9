"""Settings of the split builder (config section ``splits``, flags of ``salmu splits``)."""

from __future__ import annotations

from dataclasses import dataclass

from salmu.settings import Settings, setting


@dataclass(frozen=True, kw_only=True)
class SplitsSettings(Settings):
    section = "splits"

    holdout_identity_fraction: float = setting(
        0.25, "share of identities held out entirely (paper: 194 of 774)"
    )
    partial_forget_fraction: float = setting(
        0.667,
        "share of forget identities forgotten only in part; their other attribute types go to "
        "holdout_association (paper: 387 of 580)",
    )
    fragile_fraction: float = setting(
        0.2, "share of retain_disjoint rows in the fragile set (the most similar to forget people)"
    )
