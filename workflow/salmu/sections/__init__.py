"""The settings of every config section, one module per stage: each field holds the setting's only
default and its doc (``salmu.settings``). Light imports only: the Snakefile imports them at every
parse, and each stage's command builds its flags from them.
"""

from collections.abc import Mapping
from typing import Any

from salmu.sections.attacks import AttacksSettings
from salmu.sections.captions import CaptionsSettings
from salmu.sections.evaluate import EvaluateSettings
from salmu.sections.faces import FaceDiffusersSettings, FaceFilterSettings, FacesSettings
from salmu.sections.personas import PersonasSettings
from salmu.sections.report import ReportSettings, Thresholds
from salmu.sections.retain import CommonPoolSettings, RetainSettings
from salmu.sections.shards import ShardsSettings
from salmu.sections.splits import SplitsSettings
from salmu.sections.train import TrainSettings
from salmu.sections.unlearn import UnlearnSettings
from salmu.settings import Settings

# In config.yaml's order: docs/settings.md lists them so.
SECTIONS = (
    PersonasSettings,
    FacesSettings,
    FaceDiffusersSettings,
    FaceFilterSettings,
    CaptionsSettings,
    SplitsSettings,
    RetainSettings,
    CommonPoolSettings,
    ShardsSettings,
    TrainSettings,
    UnlearnSettings,
    EvaluateSettings,
    AttacksSettings,
    ReportSettings,
    Thresholds,
)


def section_mapping(config: Mapping, section: str) -> Mapping:
    """The part of ``config`` at a dotted section name (``faces.filter``); {} where it is absent."""
    found: Any = config
    for part in section.split("."):
        found = found.get(part) or {} if isinstance(found, Mapping) else {}
    return found


def from_config(config: Mapping) -> dict[str, Settings]:
    """Every section's settings, by section name, from a whole run config."""
    return {s.section: s.from_mapping(section_mapping(config, s.section)) for s in SECTIONS}
