"""Checks of the run's configuration beyond its schema, run while Snakemake builds the DAG: a
mistake fails before any job, with a message that names the config key (and the overlay file).

Nothing here imports torch: the Snakefile is parsed by every Snakemake invocation (under SLURM, by
every job), so the method hyperparameters are checked against the methods' source, not their
classes (``salmu.unlearn.registry.accepted_hyperparameters``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import yaml

from salmu.artifacts import benchmark_folder, check_artifacts, released_mode
from salmu.io import read_json
from salmu.unlearn.registry import (
    accepted_hyperparameters,
    builtin_methods,
    takes_optimizer_steps,
)


def check_config(config: dict, overlays: Iterable[str | Path], defaults: dict) -> None:
    """Every check below; ``overlays``: the ``--configfile`` files, ``defaults``: config.yaml."""
    check_overlays_remove_nothing(overlays, defaults)
    check_methods(config["unlearn"])
    check_artifacts(config, selected_methods(config["unlearn"]))
    if not released_mode(config):  # nothing of the dataset is generated in released mode
        check_required_models(config)
    check_local_paths(config)
    check_distractors(config)
    check_main_budget(config)
    check_shadows(config)


def check_shadows(config: dict) -> None:
    """Shadow models retrain both references on this run's data: impossible when a reference
    model comes from outside."""
    from salmu.artifacts import imported_roles

    imported = imported_roles(config)
    if config["attacks"]["shadow_pairs"] and (released_mode(config) or imported):
        raise ValueError(
            f"config key attacks.shadow_pairs: {config['attacks']['shadow_pairs']} shadow "
            "pairs need this run to train Clean and Compromised on its own data, but "
            f"{imported or 'the benchmark'} come(s) from outside (artifacts.*); set it to 0 (the "
            "association-inference attack then uses its fallback)"
        )


def check_main_budget(config: dict) -> None:
    """The reports are made at report.main_budget: a budget that never runs would leave them
    without a single unlearned model."""
    main, budgets = config["report"]["main_budget"], config["unlearn"]["budgets"]
    if not any(math.isclose(main, b) for b in budgets):
        raise ValueError(
            f"config key report.main_budget: {main:g} is not one of unlearn.budgets "
            f"{[float(b) for b in budgets]}; the fidelity report and the comparisons are made "
            "at it"
        )


def selected_methods(unlearn: dict) -> list[str]:
    """The methods that run: ``unlearn.only`` if set, else every method in ``unlearn.methods``."""
    return list(unlearn["only"]) if unlearn.get("only") is not None else list(unlearn["methods"])


def check_overlays_remove_nothing(overlays: Iterable[str | Path], defaults: dict) -> None:
    """Snakemake merges an overlay's mappings into the defaults, so ``methods: {}`` in an overlay
    removes nothing (all methods still run). Refuse an empty mapping where the default is not."""
    for overlay in overlays:
        try:
            data = yaml.safe_load(Path(overlay).read_text()) or {}
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            continue  # Snakemake itself refuses an unreadable overlay before we run
        for key in _empty_mappings(data, defaults):
            hint = (
                "; to run some methods only, list them under unlearn.only"
                if key == "unlearn.methods"
                else ""
            )
            raise ValueError(
                f"config key {key} in {overlay}: an empty mapping in an overlay is merged into "
                f"the defaults and removes nothing{hint}"
            )


def _empty_mappings(data: dict, defaults: dict, prefix: str = "") -> list[str]:
    found = []
    for key, value in data.items() if isinstance(data, dict) else ():
        default = defaults.get(key) if isinstance(defaults, dict) else None
        if value == {} and isinstance(default, dict) and default:
            found.append(prefix + key)
        elif isinstance(value, dict):
            found += _empty_mappings(value, default or {}, f"{prefix}{key}.")
    return found


def check_methods(unlearn: dict) -> None:
    """Every method is built in or has an import path, takes the params it is given, has an lr
    if it steps an optimizer, and ``unlearn.only`` names configured methods."""
    builtin = builtin_methods()
    methods = unlearn["methods"]
    for name, settings in methods.items():
        if name not in builtin and "import_path" not in settings:
            raise ValueError(
                f"config key unlearn.methods.{name}: unknown unlearning method; built-in methods "
                f"are {builtin}, a custom one needs import_path: 'package.module:Class'"
            )
        accepted = accepted_hyperparameters(name, settings.get("import_path"))
        unknown = sorted(set(settings.get("params", {})) - set(accepted or []))
        if accepted is not None and unknown:
            raise ValueError(
                f"config key unlearn.methods.{name}.params.{unknown[0]}: '{name}' has no such "
                f"hyperparameter; it takes {accepted or 'none'}"
            )
        if "lr" not in settings and takes_optimizer_steps(name, settings.get("import_path")):
            raise ValueError(
                f"config key unlearn.methods.{name}.lr: required, '{name}' takes optimizer steps "
                "(only a method that edits weights directly, such as ssd or slug, needs none)"
            )
    only = unlearn.get("only")
    if only is not None:
        missing = [m for m in only if m not in methods]
        if missing or not only:
            raise ValueError(
                f"config key unlearn.only: {missing or 'an empty list'}; name methods configured "
                f"under unlearn.methods ({sorted(methods)})"
            )


def check_required_models(config: dict) -> None:
    """Models a chosen backend needs must be configured: fail before any job, naming the key."""
    needed = []
    if config["faces"]["backend"] == "diffusers":
        diffusers = config["faces"].get("diffusers", {})
        needed += [
            ("faces.diffusers.model", diffusers.get("model")),
            ("faces.diffusers.ip_adapter", diffusers.get("ip_adapter")),
        ]
    if config["faces"]["filter"]["embedder"] == "clip":
        needed.append(("faces.filter.clip_model", config["faces"]["filter"].get("clip_model")))
    if config["captions"]["paraphrase"] == "transformers":
        needed.append(("captions.paraphrase_model", config["captions"].get("paraphrase_model")))
    if config["retain"]["backend"] == "commonpool":
        needed.append(("retain.commonpool.metadata", config["retain"]["commonpool"]["metadata"]))
    for key, value in needed:
        if not value:
            raise ValueError(
                f"config key {key}: required by the chosen backend; set it to a local folder "
                "or a hub id present in the local Hugging Face cache"
            )


def check_local_paths(config: dict) -> None:
    """Local files and folders named in the config must exist (model ids that may be hub ids are
    checked by their stage, which names the key too)."""
    expected = [
        ("train.model_dir", config["train"]["model_dir"], "an open_clip model folder"),
        ("personas.locales_table", config["personas"]["locales_table"], "the locale table"),
        ("captions.templates", config["captions"]["templates"], "the caption templates"),
        ("evaluate.imagenet_path", config["evaluate"]["imagenet_path"], "ImageNet val folders"),
        ("retain.commonpool.uids", config["retain"]["commonpool"]["uids"], "a uid list"),
    ]
    for key, value, what in expected:
        if value is not None and not Path(value).exists():
            raise ValueError(f"config key {key}: {value} does not exist (expected {what})")
    model_config = Path(config["train"]["model_dir"], "open_clip_config.json")
    if not model_config.is_file():
        raise ValueError(f"config key train.model_dir: {model_config} is missing")


# The keys that shape the released dataset: the dataset card shows (and depends on) only these.
DATA_CONFIG_KEYS = ("run", "seed", "personas", "faces", "captions", "splits")


def data_config(config: dict) -> dict:
    return {key: config[key] for key in DATA_CONFIG_KEYS}


def distractor_pools(config: dict) -> tuple[dict[str, int], str]:
    """Sizes of the two RetFail distractor pools (forget, retain_disjoint): the regenerated
    benchmark's counts when it was made with this data config, else what the config makes
    before face filtering; in released-artifacts mode, the outside benchmark's rows."""
    if released_mode(config):
        return outside_pools(benchmark_folder(config))
    run = Path("results", config["run"])
    summary, made_with = run / "benchmark" / "splits_summary.json", run / "config.data.json"
    current = json.loads(json.dumps(data_config(config)))
    if summary.is_file() and made_with.is_file() and read_json(made_with) == current:
        counts = read_json(summary)
        pools = {
            "forget": counts["rows"]["forget"],
            "retain_disjoint": counts["retain_disjoint_rows"],
        }
        return pools, str(summary)
    from salmu.plan import estimated_forget

    faces = config["faces"]
    pools = {
        "forget": estimated_forget(config),
        "retain_disjoint": faces["anonymous_identities"] * faces["images_per_anonymous"],
    }
    return pools, "the personas, faces and splits settings"


def outside_pools(folder: Path) -> tuple[dict[str, int], str]:
    from salmu.released_layout import retain_disjoint_rows, shard_paths, split_sizes

    forget = split_sizes(shard_paths(folder, "forget"))["num_examples"]
    disjoint = retain_disjoint_rows(shard_paths(folder, "retain_synth"))
    return {"forget": forget, "retain_disjoint": disjoint}, str(folder)


def check_distractors(config: dict) -> None:
    """RetFail draws ``evaluate.distractors`` captions without replacement from each pool."""
    wanted = config["evaluate"]["distractors"]
    pools, source = distractor_pools(config)
    if wanted > min(pools.values()):
        sizes = ", ".join(f"{pool} {size}" for pool, size in pools.items())
        raise ValueError(
            f"config key evaluate.distractors: {wanted} per pool, but the pools hold about "
            f"{sizes} rows (from {source}); use at most {min(pools.values())}"
        )


def coerce_command_line(config: dict, command_line: dict, schema: dict) -> None:
    """Snakemake parses a nested ``--config key={...}`` value with YAML's BaseLoader, so every
    scalar inside it is a string (``unlearn={budgets: [5]}`` gives ``['5']``). Where the schema
    wants a number, boolean or null, such a string from the command line is parsed as YAML."""
    for path, value in _leaves(command_line):
        if not isinstance(value, str) or len(path) < 2:
            continue  # top-level values Snakemake already parsed as numbers
        types = _schema_types(schema, path)
        if "string" in types or not types:
            continue
        parsed = yaml.safe_load(value)
        if _json_type(parsed) in types or (_json_type(parsed) == "integer" and "number" in types):
            target = config
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = parsed


def _leaves(value, path=()):
    if hasattr(value, "items"):  # dicts, and Snakemake's immutable maps
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    else:
        yield path, value


def _schema_types(schema: dict, path: tuple) -> set[str]:
    nodes = _alternatives(schema, schema)
    for key in path:
        nodes = [
            alt
            for node in nodes
            for child in _children(node, key)
            for alt in _alternatives(schema, child)
        ]
    types: set[str] = set()
    for node in nodes:
        declared = node.get("type", [])
        types |= {declared} if isinstance(declared, str) else set(declared)
    return types


def _alternatives(schema: dict, node: dict) -> list[dict]:
    """``node`` with its ``$ref`` resolved and its ``oneOf`` / ``anyOf`` branches spread out."""
    while "$ref" in node:
        target = schema
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    branches = node.get("oneOf", node.get("anyOf"))
    if branches is None:
        return [node]
    return [alt for branch in branches for alt in _alternatives(schema, branch)]


def _children(node: dict, key) -> list[dict]:
    if isinstance(key, int):
        return [node["items"]] if isinstance(node.get("items"), dict) else []
    if key in node.get("properties", {}):
        return [node["properties"][key]]
    extra = node.get("additionalProperties")
    return [extra] if isinstance(extra, dict) else []


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


# --- `salmu check-config`: what Snakemake cannot say about a broken overlay --------------------


def configure_parser(parser) -> None:
    parser.add_argument(
        "configfiles", nargs="+", help="overlays, as given to snakemake --configfile"
    )


def run(args) -> None:
    """Snakemake reads ``--configfile`` before it loads the workflow and drops the YAML parser's
    message ("Config file is not valid JSON or YAML"), so no workflow code can name the file or
    line. Parse the overlays here first (file:line:column), then let the workflow itself check
    the merged configuration: listing its rules loads it (and so runs every check) without
    planning jobs, so the state of results/ does not matter."""
    import subprocess
    import sys

    from salmu.io import read_yaml

    for path in args.configfiles:
        if not isinstance(read_yaml(path, "config file") or {}, dict):
            raise ValueError(f"{path}: expected a YAML mapping of config keys")
    overlays = [flag for path in args.configfiles for flag in ("--configfile", path)]
    command = [sys.executable, "-m", "snakemake", "--list-rules", *overlays]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).splitlines()
        # The error and its message, without traceback frames and Snakemake's progress lines.
        lines = [
            line
            for line in output
            if line and not line.startswith((" ", "Config file ", "Building DAG"))
        ]
        raise ValueError("the workflow refuses this configuration:\n" + "\n".join(lines[-5:]))
    print(f"{', '.join(args.configfiles)}: valid")
