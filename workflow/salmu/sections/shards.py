"""Settings of the shard writer (config section ``shards``, flags of ``salmu shards``)."""

from __future__ import annotations

from dataclasses import dataclass

from salmu.settings import Settings, setting


@dataclass(frozen=True, kw_only=True)
class ShardsSettings(Settings):
    section = "shards"

    samples_per_shard: int = setting(1000, "samples per webdataset tar")
