"""One command line, ``salmu <stage> ...``; each stage lives in its own module.

Stage modules are imported lazily so that ``salmu personas`` does not pay torch's import time.
Each module exposes ``configure_parser(parser)`` and ``run(args)``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

STAGES = {
    "personas": ("salmu.personas", "Faker personas with culturally consistent fictitious PII"),
    "faces": ("salmu.faces", "identity-consistent face images (one identity range per --part)"),
    "faces-merge": ("salmu.faces_merge", "the faces table and contact sheet from its parts"),
    "face-filter": ("salmu.face_filter.cli", "curate faces: identity consistency and demographics"),
    "face-filter-merge": ("salmu.face_filter.merge", "the face filter's outputs from its parts"),
    "captions": ("salmu.captions", "sensitive and generic captions for every image"),
    "splits": ("salmu.splits", "forget / holdout / retain_synth splits in the released layout"),
    "card": ("salmu.card", "Hugging Face dataset card (README.md) for the benchmark directory"),
    "import-benchmark": (
        "salmu.import_benchmark",
        "released-artifacts mode: an outside benchmark folder becomes this run's",
    ),
    "import-model": (
        "salmu.import_model",
        "released-artifacts mode: an outside Clean / Compromised becomes this run's",
    ),
    "retain": ("salmu.retain", "synthetic retain scenes and the GenKnow zero-shot set"),
    "commonpool": (
        "salmu.commonpool",
        "DataComp CommonPool retain shards via img2dataset (one metadata row range per --part)",
    ),
    "commonpool-merge": ("salmu.commonpool_merge", "the CommonPool shard directory from its parts"),
    "shards": ("salmu.shards", "webdataset training shards"),
    "leakcheck": ("salmu.leakcheck", "check a training set holds no forbidden sample"),
    "train": ("salmu.train", "train a CLIP with open_clip_train"),
    "unlearn": ("salmu.unlearn.run", "run one unlearning method from the Compromised model"),
    "evaluate": ("salmu.evaluate.run", "evaluate one checkpoint on the benchmark"),
    "attack": ("salmu.attacks.run", "relearning and precision attacks on one model (ours)"),
    "attack-table": ("salmu.attacks.table", "the share of the gap each attack brings back"),
    "table": ("salmu.table", "collect evaluations into the results table"),
    "compare": ("salmu.compare", "paired bootstrap: is method A better than B on RetFail, GenKnow"),
    "fidelity": ("salmu.fidelity", "the paper's failure modes vs this run's, and the tier targets"),
    "vs-paper": ("salmu.vs_paper", "every measured metric beside its published value"),
    "export": ("salmu.export", "models and data in the form the authors released theirs"),
    "plots": ("salmu.plots", "forgetting-vs-utility trade-off plots from the results table"),
    "record": ("salmu.provenance", "run one stage and write its provenance record"),
    "audit": ("salmu.audit", "the lineage of a result file, with anything stale flagged"),
    "provenance-summary": ("salmu.provenance_summary", "HTML table of a run's job records"),
    "calibrate": ("salmu.calibrate", "sweep unlearning settings on a run's models, one process"),
    "plan": ("salmu.plan", "jobs and projected device-hours of a tier, before running it"),
    "settings": ("salmu.settings_doc", "every stage setting with its default (docs/settings.md)"),
    "check-config": ("salmu.config_checks", "check config overlays: YAML errors with file:line"),
    "throughput": ("salmu.throughput", "measure train / encode / face throughput of this machine"),
    "gpu-check": ("salmu.gpu_check", "the paper tier's GPU work, small, on random-weight models"),
    "feed-bench": ("salmu.unlearn.feed_bench", "samples/s of unlearning's data path per workers"),
    "memory-bench": ("salmu.memory_bench", "peak memory of the data stages at growing scales"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="salmu", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name, (module_name, help_text) in STAGES.items():
        stage_parser = sub.add_parser(name, help=help_text)
        stage_parser.set_defaults(_module=module_name)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    # Parse the stage name first, then let the stage module define its own flags.
    known, _ = parser.parse_known_args(argv[:1] if argv else argv)
    module = importlib.import_module(known._module)
    stage_parser = argparse.ArgumentParser(prog=f"salmu {known.stage}")
    module.configure_parser(stage_parser)
    try:
        args = stage_parser.parse_args(argv[1:])
    except SystemExit as stop:  # argparse has printed the usage error (or --help)
        return stop.code
    try:
        module.run(args)
    except (ValueError, FileNotFoundError) as err:
        # Bad input: a one-line message naming the file/key, not a traceback.
        print(f"salmu {known.stage}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
