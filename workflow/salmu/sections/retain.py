"""Settings of the retain data: the synthetic scenes and GenKnow set (config section ``retain``,
flags of ``salmu retain``) and the DataComp CommonPool download (``retain.commonpool``, flags of
``salmu commonpool``)."""

from __future__ import annotations

from dataclasses import dataclass

from salmu.settings import Settings, setting

RETAIN_BACKENDS = ("synthetic", "commonpool")
RESIZE_MODES = ("no", "border", "keep_ratio", "keep_ratio_largest", "center_crop")


@dataclass(frozen=True, kw_only=True)
class RetainSettings(Settings):
    section = "retain"
    workflow_keys = ("commonpool",)

    backend: str = setting(
        "synthetic",
        "retain pairs: synthetic compositional scenes (the offline stand-in for CommonPool), or "
        "commonpool (retain.commonpool; no scenes are drawn). Either way the synthetic GenKnow "
        "set is built",
        choices=RETAIN_BACKENDS,
    )
    n_pairs: int = setting(12000, "synthetic retain scenes")
    size: int = setting(64, "side of the synthetic images, in pixels (square)")
    genknow_images_per_class: int = setting(
        24, "held-out GenKnow images per colour x shape class (64 classes)"
    )
    jpeg_quality: int = setting(90, "JPEG quality of the synthetic images")


@dataclass(frozen=True, kw_only=True)
class CommonPoolSettings(Settings):
    section = "retain.commonpool"
    # The workflow's: the fan-out (jobs, each job's runtime) and what salmu plan assumes.
    workflow_keys = ("jobs", "runtime", "expected_pairs", "expected_images_per_s")

    metadata: str | None = setting(
        None, "CommonPool metadata: a parquet file, a directory of parquets, or hf-hub:<dataset id>"
    )
    uids: str | None = setting(None, "text file of uids, one per line: only these rows")
    blur_faces: bool = setting(
        True, "blur the metadata's face_bboxes, as DataComp does (README: why it matters)"
    )
    image_size: int = setting(512, "img2dataset image_size")
    resize_mode: str = setting(
        "keep_ratio_largest", "img2dataset resize_mode", choices=RESIZE_MODES
    )
    samples_per_shard: int = setting(10000, "samples per webdataset tar")
    processes: int = setting(16, "img2dataset processes")
    threads: int = setting(128, "img2dataset download threads per process")
    timeout: int = setting(10, "seconds per request")
    retries: int = setting(2, "download retries per URL")
