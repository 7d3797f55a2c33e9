"""The plan as people read it: ``salmu plan``'s table, its totals and its runtime warnings.

One row per rule: jobs, device, projected device-hours, hours per job beside the rule's
``runtime`` limit (``!`` when a job would outlast it), the measured hours of finished jobs, and
the work behind the projection. A job past its limit gets a warning naming what to raise, or to
spread the work over more jobs: the scheduler kills it, and a retry starts over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_CONFIG = "config.yaml"


@dataclass
class RulePlan:
    rule: str
    jobs: int
    device: str  # "gpu", "cpu", or "node" (a whole node's processes, as a download job)
    work: str  # what one unit of throughput is spent on, for people
    device_hours: float | None  # all jobs of the rule; None: not projected
    devices_per_job: int = 1
    # Wall-clock hours of this rule's finished jobs, from their Snakemake benchmark files.
    measured_hours: float | None = None
    measured_jobs: int = 0
    runtime_minutes: int | None = None  # the scheduler's limit per job (resources: runtime)

    @property
    def over_runtime(self) -> bool:
        """A projected job would be killed at its runtime limit (and, retried, start over)."""
        per_job = self.wall_hours_per_job
        limit = self.runtime_minutes
        return per_job is not None and limit is not None and per_job * 60 > limit

    @property
    def wall_hours_per_job(self) -> float | None:
        if self.device_hours is None or self.jobs == 0:
            return None
        return self.device_hours / self.jobs / self.devices_per_job


# Where a rule's per-job runtime is set, for the advice of an over-runtime job.
RUNTIME_KEYS = {
    "train": "train.runtime",
    "faces": "faces.runtime",
    "face_filter": "faces.filter.runtime",
    "commonpool": "retain.commonpool.runtime",
}
# Where a rule's work is spread over more jobs.
JOBS_KEYS = {
    "faces": "faces.jobs",
    "face_filter": "faces.jobs",
    "commonpool": "retain.commonpool.jobs",
}


def add_runtimes(rows: list[RulePlan], runtimes: dict[str, int]) -> None:
    for row in rows:
        row.runtime_minutes = runtimes.get(row.rule)


def runtime_warnings(rows: list[RulePlan]) -> list[str]:
    """One line per rule whose projected job outlasts its runtime, with what to change."""
    lines = []
    for row in rows:
        if not row.over_runtime:
            continue
        where = RUNTIME_KEYS.get(row.rule, f"the runtime resource in workflow/rules/{row.rule}.smk")
        needed = math.ceil(row.wall_hours_per_job * 60)
        lines.append(
            f"warning: {row.rule}: each of its {row.jobs} job(s) needs about "
            f"{format_hours(row.wall_hours_per_job)} h, over its runtime of "
            f"{row.runtime_minutes} min: the scheduler kills it and a retry starts over. Raise "
            f"{where} to at least {needed} min, or spread the work over more jobs"
            + (f" ({JOBS_KEYS[row.rule]})" if row.rule in JOBS_KEYS else "")
        )
    return lines


def totals(rows: list[RulePlan]) -> dict[str, float]:
    result: dict[str, float] = {}
    for row in rows:
        if row.device_hours is not None:
            result[row.device] = result.get(row.device, 0.0) + row.device_hours
    return result


def format_hours(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}"


def render(config, configfiles, sizes, throughput, throughput_path, rows) -> str:
    lines = [
        f"Plan of run '{config['run']}' ({' + '.join([DEFAULT_CONFIG, *configfiles])})",
        f"data sizes ({'from the shards' if sizes.source == 'shards' else 'estimated from config'}):"
        f" sensitive {sizes.sensitive:,}, forget {sizes.forget:,}, retain {sizes.retain:,}",
    ]
    if throughput is None:
        lines.append(
            f"throughput: {throughput_path} not found, hours not projected. Measure it on the "
            f"tier's hardware: snakemake [--profile slurm] {' '.join(configfiles_flag(configfiles))}"
            f" {throughput_path}"
        )
    else:
        train = throughput["train"]
        faces = throughput.get("faces") or {}
        mfu = f", MFU {train['mfu']:.1%}" if train.get("mfu") is not None else ""
        lines.append(
            f"throughput: {throughput_path} ({throughput['device_name']}, "
            f"{throughput['measured_at']}): train {train['samples_per_s']:.4g} samples/s per device"
            f"{mfu}, encode {throughput['encode']['samples_per_s']:.4g} samples/s"
            + (f", faces {faces['images_per_s']:.4g} images/s" if faces else "")
        )
    on_gpu = any(row.device == "gpu" for row in rows)
    if throughput is not None and throughput.get("device") == "cpu" and on_gpu:
        lines.append(
            "warning: the throughput was measured on a CPU but this tier runs on GPUs: "
            "measure it on the tier's hardware"
        )
    lines.append("")
    lines.append(
        f"{'rule':<18}{'jobs':>6}  {'on':<4}{'device-hours':>13}  {'wall h/job':>11}"
        f"  {'limit h/job':>12}  {'measured h/job':>15}  work"
    )
    for row in rows:
        per_job = row.wall_hours_per_job
        measured = row.measured_hours / row.measured_jobs if row.measured_jobs else None
        limit = None if row.runtime_minutes is None else row.runtime_minutes / 60
        flag = "!" if row.over_runtime else " "
        lines.append(
            f"{row.rule:<18}{row.jobs:>6}  {row.device:<4}{format_hours(row.device_hours):>13}  "
            f"{format_hours(per_job):>11}{flag} {format_hours(limit):>11}  "
            f"{format_hours(measured):>15}  {row.work}"
            + (f" on {row.devices_per_job} devices" if row.devices_per_job > 1 else "")
        )
    lines.append("")
    warnings = runtime_warnings(rows)
    lines += [*warnings, ""] if warnings else []
    total = totals(rows)
    lines.append(
        "total: "
        + (
            ", ".join(f"{format_hours(v)} {k.upper()}-hours" for k, v in sorted(total.items()))
            or "no hours projected"
        )
        + f" over {sum(r.jobs for r in rows)} jobs"
    )
    return "\n".join(lines)


def configfiles_flag(configfiles: list[str]) -> list[str]:
    return ["--configfile", *configfiles] if configfiles else []
