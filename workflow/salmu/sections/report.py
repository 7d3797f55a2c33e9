"""Settings of the reports (config section ``report``, flags of ``salmu table``, ``fidelity`` and
``compare``) and the diagnosis thresholds (``report.diagnosis``)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from salmu.settings import Settings, setting


@dataclass(frozen=True, kw_only=True)
class ReportSettings(Settings):
    section = "report"
    workflow_keys = ("main_budget", "diagnosis")

    seed_agreement: float = setting(
        1.0,
        "share of a method's seeds that must raise a failure mode for the method to get it "
        "(1.0: every seed); otherwise 'unsettled (seeds disagree)'",
    )
    seed_interval_level: float = setting(
        0.95, "level of the Student-t interval over seeds, and of the paired comparisons"
    )
    comparison_resamples: int = setting(
        1000,
        "paired bootstrap resamples between methods (identities for RetFail, images for GenKnow)",
    )


@dataclass(frozen=True, kw_only=True)
class Thresholds(Settings):
    """When a row gets a failure mode (salmu.diagnose: what each one means, why these values)."""

    section = "report.diagnosis"

    min_gap_closed: float = setting(
        0.90, "ineffective below this share of the Compromised->Clean RetFail MRR gap closed"
    )
    min_genknow_retained: float = setting(
        0.95, "catastrophic below this GenKnow / Compromised GenKnow"
    )
    min_similarity_retained: float = setting(
        0.75, "catastrophic below this VisIdInt or FragSim / Compromised value"
    )
    max_below_clean: float = setting(
        0.25,
        "over-generalised when Inter/IntraIdSim or AssocStr is below Clean by more than this "
        "share of the Compromised-Clean gap",
    )
    min_reference_gap: float = setting(
        0.01, "skip a gap-normalised criterion when Compromised - Clean is smaller than this"
    )
    max_recovered: float = setting(
        0.5,
        "superficial forgetting when an attack brings back more than this share of the "
        "Compromised-Clean RetFail MRR gap (salmu attack-table)",
    )

    def __post_init__(self):
        for name, value in asdict(self).items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"diagnosis threshold {name} must be a finite number >= 0")
