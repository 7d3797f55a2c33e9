# Config validation, path helpers and input functions shared by every rule file.
import os
import sys
from pathlib import Path

import shlex

from snakemake.utils import validate

from salmu.config_checks import (
    check_config,
    coerce_command_line,
    data_config,
    selected_methods,
)
from salmu.sections import from_config
from salmu.sections.faces import renderer_flags
from salmu.sections.unlearn import method_flags as unlearn_method_flags
from salmu.io import read_yaml
from salmu.provenance import store_resolved_config
from salmu.released_layout import (
    GENERIC_CAPTIONS_JSON,
    METADATA_JSONS,
    REQUIRED_JSONS,
    SPLITS,
)
from salmu.artifacts import (
    REFERENCE_ROLES,
    benchmark_folder,
    checkpoint_file,
    imported_roles,
    released_mode,
)

# Nested --config values arrive as strings; parse those the schema types as numbers first.
coerce_command_line(
    config,
    workflow.config_settings.config,
    read_yaml(Path(workflow.current_basedir, "../schemas/config.schema.yaml")),
)
validate(config, "../schemas/config.schema.yaml")
# Everything a schema cannot say (salmu.config_checks): before any job, naming the key.
check_config(
    config,
    overlays=workflow.overwrite_configfiles,
    defaults=read_yaml(Path(workflow.basedir, "config.yaml")),
)


# Every section's settings (salmu.sections): the one source of each default, and of the flags a
# rule passes for its whole section.
SETTINGS = from_config(config)


def job_parts(folder, parts, suffix=""):
    """The paths of a stage's ``parts`` parts in ``folder`` (``{run}`` left as a wildcard), in
    part order, each named by its ``{job_part}`` label (``K-of-N``)."""
    return [f"{folder}/{k:03d}-of-{parts:03d}{suffix}" for k in range(parts)]


def faces_parts(folder):
    """The faces parts' files, in identity order (config faces.jobs)."""
    return job_parts(folder, config["faces"]["jobs"], ".parquet")


def commonpool_parts(folder):
    """The CommonPool download's parts, in metadata order (config retain.commonpool.jobs)."""
    return job_parts(folder, config["retain"]["commonpool"]["jobs"])


def part_flags(wildcards):
    """``--part K --parts N`` of a part's job, from its ``{job_part}`` label."""
    part, parts = (int(n) for n in wildcards.job_part.split("-of-"))
    return f"--part {part} --parts {parts}"


def section_flags(*sections, exclude=("threads",)):
    """A params function giving the sections' settings as flags. A function, not a string:
    Snakemake would read the braces of a prompt template ("a photo of {name}.") in a params
    string as wildcards. Threads are left out: each job passes its own."""
    flags = " ".join(SETTINGS[s].to_flags(exclude=exclude) for s in sections)

    def params(wildcards):
        return flags

    return params


# Released-artifacts mode (salmu.artifacts): what comes from outside instead of being made here.
RELEASED = released_mode(config)
OUTSIDE_BENCHMARK = benchmark_folder(config) if RELEASED else None
IMPORTED = imported_roles(config)
# A role is either imported or trained; "(?!)" matches nothing.
IMPORTED_PATTERN = "|".join(IMPORTED) or "(?!)"
TRAINED_PATTERN = "|".join(r for r in REFERENCE_ROLES if r not in IMPORTED) or "(?!)"
# Shadow Clean / Compromised models of the association-inference attack (attacks.shadow_pairs):
# the same data and schedule, another training seed. Only a run that trains its references has
# them.
SHADOW_PATTERN = r"shadow[0-9]+/(?:clean|compromised)"
UNLEARNED_PATTERN = r"unlearned/[A-Za-z0-9_]+/x[0-9.]+/seed[0-9]+"
if not IMPORTED:
    TRAINED_PATTERN = f"{TRAINED_PATTERN}|{SHADOW_PATTERN}"


def role(base):
    """The reference role of a trained model: ``shadow2/clean`` is a Clean."""
    return base.rsplit("/", 1)[-1]


def training_seed(base):
    """The seed of a training: the run's, plus k for shadow k."""
    shadow = base.split("/", 1)[0]
    return config["seed"] + (int(shadow[len("shadow") :]) if "/" in base else 0)


def shadow_states():
    """shadow1/clean, shadow1/compromised, ... (none when a reference model is imported: the
    config check refuses attacks.shadow_pairs there)."""
    if RELEASED or IMPORTED:
        return []
    pairs = config["attacks"]["shadow_pairs"]
    return [
        f"shadow{k}/{r}" for k in range(1, pairs + 1) for r in ("clean", "compromised")
    ]


def face_renderer_flags(wildcards):
    return renderer_flags(SETTINGS["faces"], SETTINGS["faces.diffusers"])


envvars:
    "PATH",


# Rules call the `salmu` CLI installed beside the Python that runs Snakemake, so the workflow works
# whether or not that environment is activated (e.g. `.venv/bin/snakemake`, or under SLURM).
os.environ["PATH"] = (
    f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
)


def config_part(wildcards):
    """config.resolved.json: the whole run's config; config.data.json: the dataset's part."""
    if wildcards.part == "data":
        return data_config(config)
    return config


def gpus(device):
    """GPUs a job asks the scheduler for: one unless it is pinned to the CPU."""
    return 0 if device == "cpu" else 1


def check_planned_inputs():
    """Every existing file the planned jobs read must be readable (salmu.preflight)."""
    from salmu.preflight import check_inputs, existing_inputs

    check_inputs(existing_inputs(workflow.dag.needrun_jobs()))


# One environment for every rule (relative to the rule files).
SALMU_ENV = "../../envs/salmu.yaml"


def recorded(rule_name, command):
    """``command`` run through `salmu record`, which writes the job's provenance record once the
    stage succeeded (salmu.provenance). The rule's name is written out: Snakemake's own {rule}
    works in a shell command, but `snakemake --lint` flags it; a test checks the two agree.
    """
    return (
        f"salmu record --rule={rule_name} --inputs {{input:q}} --outputs {{output:q}} -- "
        + command
    )


SPLIT_NAMES = list(SPLITS)
BENCHMARK_JSONS = list(METADATA_JSONS)


wildcard_constraints:
    run=r"[A-Za-z0-9_.-]+",
    base=f"clean|compromised|{SHADOW_PATTERN}",
    method=r"[A-Za-z0-9_]+",
    budget=r"[0-9.]+",
    seed=r"[0-9]+",
    source="retain|sensitive|forget",
    state=f"clean|compromised|{UNLEARNED_PATTERN}|{SHADOW_PATTERN}",
    name=r"[A-Za-z0-9_.-]+",
    part="resolved|data",
    job_part=r"[0-9]{3}-of-[0-9]{3}",


def budget_label(budget):
    """Budgets as they appear in paths: 5 -> '5', 0.5 -> '0.5'."""
    return f"{budget:g}"


def benchmark_dir(wildcards):
    """The benchmark in the released Hugging Face layout."""
    return f"results/{wildcards.run}/benchmark"


def open_clip_run_dir(wildcards):
    """open_clip_train's own run directory: undeclared, so a killed job can resume from it."""
    return f"results/{wildcards.run}/models/{wildcards.base}/open_clip"


def plots_dir(wildcards):
    return f"results/{wildcards.run}/plots"


def external_cache_dir(wildcards):
    return f"results/{wildcards.run}/eval/external/{wildcards.name}/cache"


def evaluation_cache_dir(wildcards):
    return f"results/{wildcards.run}/eval/{wildcards.state}/cache"


def split_parquet(split):
    return f"results/{{run}}/benchmark/data/{split}-00000-of-00001.parquet"


def shard_inputs(wildcards):
    """Parquet files that make up one training source."""
    benchmark = f"results/{wildcards.run}/benchmark/data/{{}}-00000-of-00001.parquet"
    if wildcards.source == "retain" and RELEASED:
        return [benchmark.format("retain_synth")]
    if wildcards.source == "retain":
        retain = []
        if config["retain"]["backend"] == "synthetic":
            retain.append(f"results/{wildcards.run}/data/retain.parquet")
        if config["train"]["include_retain_synth"]:
            retain.append(benchmark.format("retain_synth"))
        return retain
    if wildcards.source == "sensitive":
        return [
            benchmark.format(s)
            for s in ("forget", "holdout_association", "holdout_identity")
        ]
    return [benchmark.format("forget")]


def generic_captions(wildcards):
    """Forget shards carry each image's generic caption (the Generic Captions baseline's target)."""
    if wildcards.source != "forget":
        return []
    # An outside benchmark may have none (the config check then refuses Generic Captions).
    if RELEASED and not Path(OUTSIDE_BENCHMARK, GENERIC_CAPTIONS_JSON).is_file():
        return []
    return [f"results/{wildcards.run}/benchmark/{GENERIC_CAPTIONS_JSON}"]


def train_sources(wildcards):
    """Clean trains on retain only; Compromised on retain + the whole sensitive set."""
    if role(wildcards.base) == "clean":
        return retain_shard_dirs(wildcards)
    return [*retain_shard_dirs(wildcards), f"results/{wildcards.run}/shards/sensitive"]


def retain_shard_dirs(wildcards):
    """Every shard directory of retain data: our own shards (synthetic scenes and/or
    retain_synth) plus the CommonPool download with that backend; in released-artifacts mode,
    retain_synth plus the folders of artifacts.retain_shards."""
    if RELEASED:
        return [
            f"results/{wildcards.run}/shards/retain",
            *config["artifacts"]["retain_shards"],
        ]
    commonpool = config["retain"]["backend"] == "commonpool"
    own = not commonpool or config["train"]["include_retain_synth"]
    sources = (["retain"] if own else []) + (["commonpool"] if commonpool else [])
    return [f"results/{wildcards.run}/shards/{s}" for s in sources]


def attack_retain_shards(wildcards):
    """The benign attacker's retain data; none when it is not among attacks.relearn."""
    return (
        retain_shard_dirs(wildcards) if "benign" in config["attacks"]["relearn"] else []
    )


def attack_retain_flag(wildcards, input):
    return f"--retain-shards {shlex.join(input.retain)}" if input.retain else ""


def training_allocation(train):
    """Scheduler resources of a training job. One GPU or none: a plain job. More: one SLURM task
    per GPU over train.nodes nodes (``mpi``: the rule's shell runs once and its launcher is srun,
    which starts open_clip_train on every task; ranks come from SLURM_PROCID / SLURM_LOCALID).
    """
    nodes, per_node = train["nodes"], train["gpus_per_node"]
    if train["device"] == "cpu" or nodes * per_node <= 1:
        return {"gpu": gpus(train["device"]) if per_node else 0}
    return {
        "nodes": nodes,
        "mpi": "srun",
        "tasks_per_node": per_node,
        "gres": f"gpu:{per_node}",
        "cpus_per_task": train["threads"],
    }


def upsampling_flag(wildcards):
    """Compromised draws sensitive samples train.sensitive_upsampling times as often as retain:
    one weight per training source, in train_sources' order."""
    factor = config["train"]["sensitive_upsampling"]
    if role(wildcards.base) == "clean" or factor == 1:
        return ""
    sensitive = f"results/{wildcards.run}/shards/sensitive"
    weights = [factor if d == sensitive else 1 for d in train_sources(wildcards)]
    return "--upsampling " + " ".join(map(str, weights))


def unlearning_shard_dirs(wildcards):
    """Everything an unlearning method may read: the forget shards and the retain data."""
    return [f"results/{wildcards.run}/shards/forget", *retain_shard_dirs(wildcards)]


def holdout_splits(wildcards):
    """What unlearning must never see: both holdout splits (the released parquets)."""
    return [
        split_parquet(split).format(run=wildcards.run)
        for split in ("holdout_association", "holdout_identity")
    ]


def train_inputs(wildcards):
    inputs = {"shards": train_sources(wildcards)}
    if role(wildcards.base) == "clean":
        inputs["leakcheck"] = (
            f"results/{wildcards.run}/audits/clean_has_no_sensitive.json"
        )
    return inputs


def base_model_config(run, base):
    """The open_clip config of a reference model: an imported one's own, else train.model_dir's."""
    if base in IMPORTED:
        return f"results/{run}/models/{base}/open_clip_config.json"
    return str(Path(config["train"]["model_dir"], "open_clip_config.json"))


def state_model_config(run, state):
    """The open_clip config a state's checkpoint loads into (unlearned models: Compromised's)."""
    clean = state is not None and role(state) == "clean"
    return base_model_config(run, "clean" if clean else "compromised")


def model_config(wildcards):
    return state_model_config(wildcards.run, wildcards.get("state"))


def genknow_input(wildcards):
    """The GenKnow set: this run's own, or artifacts.genknow in released mode (may be none)."""
    if not RELEASED:
        return [f"results/{wildcards.run}/data/genknow.parquet"]
    return [config["artifacts"]["genknow"]] if config["artifacts"]["genknow"] else []


def genknow_flag(wildcards, input):
    return f"--genknow {shlex.quote(input.genknow[0])}" if input.genknow else ""


def outside_benchmark_folder(wildcards):
    return str(OUTSIDE_BENCHMARK)


def outside_benchmark_files(wildcards):
    """The outside benchmark's shards and required metadata (a change there reruns the import)."""
    shards = sorted(str(p) for p in Path(OUTSIDE_BENCHMARK, "data").glob("*.parquet"))
    return shards + [str(Path(OUTSIDE_BENCHMARK, name)) for name in REQUIRED_JSONS]


def outside_model_inputs(wildcards):
    inputs = {}
    weights = checkpoint_file(config, wildcards.base)
    if weights is not None:
        inputs["checkpoint"] = str(weights)
    model = config["artifacts"][wildcards.base]["model"]
    if Path(model).is_dir():
        inputs["model"] = model
    return inputs


def outside_model_flags(wildcards):
    """--model / --checkpoint of one imported reference model (hub files resolved to the cache)."""
    pairs = [
        ("--model", config["artifacts"][wildcards.base]["model"]),
        ("--checkpoint", checkpoint_file(config, wildcards.base)),
    ]
    return " ".join(
        f"{flag} {shlex.quote(str(value))}" for flag, value in pairs if value
    )


def reference_sources(wildcards):
    """source.json of every imported reference model (what vs_paper names them by)."""
    return [f"results/{wildcards.run}/models/{role}/source.json" for role in IMPORTED]


def export_states():
    """This run's own models: Clean and Compromised unless imported (the authors' weights are
    theirs to publish), plus every unlearned state with export.unlearned."""
    states = model_states()
    own = [s for s in states[:2] if s not in IMPORTED]
    return own + states[2:] if config["export"]["unlearned"] else own


def export_inputs(wildcards):
    run = f"results/{wildcards.run}"
    inputs = {
        "checkpoints": [f"{run}/models/{s}/checkpoint.pt" for s in export_states()],
        "evaluations": [f"{run}/eval/{s}/evaluation.json" for s in export_states()],
        "configs": [state_model_config(wildcards.run, s) for s in export_states()],
        "sources": reference_sources(wildcards),
    }
    if not RELEASED:  # an outside benchmark is not this run's to publish
        inputs["splits"] = [
            split_parquet(s).format(run=wildcards.run) for s in SPLIT_NAMES
        ]
        inputs["card"] = f"{run}/benchmark/README.md"
    return inputs


def method_settings(wildcards):
    return config["unlearn"]["methods"][wildcards.method]


def method_flags(wildcards):
    """--lr / --param / --import-path of one method (salmu.sections.unlearn)."""
    return unlearn_method_flags(method_settings(wildcards))


def model_states():
    states = ["clean", "compromised"]
    unlearn = config["unlearn"]
    for method in selected_methods(unlearn):
        for budget in unlearn["budgets"]:
            for seed in unlearn["seeds"]:
                states.append(f"unlearned/{method}/x{budget_label(budget)}/seed{seed}")
    return states


# evaluate.* keys the attacks do not read (salmu attack scores RetFail and AssocStr only).
ATTACK_UNUSED_EVALUATE_KEYS = (
    *("threads", "imagenet_path", "imagenet_templates", "imagenet_limit", "bootstrap"),
    *("ci_level", "acs_test_fraction", "acs_c", "idzsc_template", "genknow_templates"),
)


def attacked_states():
    """Clean, Compromised and, for each seed of attacks.seeds that unlearning ran, every
    method's model at report.main_budget; none when attacks.seeds is empty."""
    seeds = [s for s in config["attacks"]["seeds"] if s in config["unlearn"]["seeds"]]
    if not seeds:
        return []
    main = budget_label(config["report"]["main_budget"])
    unlearned = [
        s
        for s in model_states()
        if s.startswith("unlearned/")
        and f"/x{main}/" in s
        and int(s.rsplit("seed", 1)[1]) in seeds
    ]
    return ["clean", "compromised", *unlearned]


def attack_json_paths(run, states):
    return [f"results/{run}/attacks/{state}/attacks.json" for state in states]


def attack_jsons(wildcards):
    return attack_json_paths(wildcards.run, attacked_states())


def shadow_attack_jsons(wildcards):
    return attack_json_paths(wildcards.run, shadow_states())


def attack_table_input(wildcards):
    """attacks.parquet for the results table, when any model is attacked."""
    return [f"results/{wildcards.run}/attacks.parquet"] if attacked_states() else []


def evaluation_jsons(wildcards):
    return [
        f"results/{wildcards.run}/eval/{state}/evaluation.json"
        for state in model_states()
    ]


def main_budget_evaluations(wildcards):
    """Evaluation JSONs of every unlearned model at report.main_budget (every method, seed)."""
    main = budget_label(config["report"]["main_budget"])
    return [
        f"results/{wildcards.run}/eval/{state}/evaluation.json"
        for state in model_states()
        if state.startswith("unlearned/") and f"/x{main}/" in state
    ]


def results_table(run):
    return multiext(f"results/{run}/benchmark", ".parquet", ".csv", ".md")


def external_model(wildcards):
    settings = config["external"]["models"].get(wildcards.name)
    if settings is None:
        raise ValueError(
            f"config key external.models.{wildcards.name}: no such model; "
            f"configured: {sorted(config['external']['models'])}"
        )
    return settings


def external_inputs(wildcards):
    """The benchmark (released layout) and, when it is a file, the checkpoint of one model."""
    benchmark = config["external"]["benchmark"]
    if benchmark is None:
        inputs = {
            "splits": [split_parquet(s).format(run=wildcards.run) for s in SPLIT_NAMES],
            "genknow": genknow_input(wildcards),
        }
    else:
        inputs = {
            "splits": sorted(str(p) for p in Path(benchmark, "data").glob("*.parquet"))
        }
        if not inputs["splits"]:
            raise ValueError(
                f"config key external.benchmark: no data/*.parquet in {benchmark}"
            )
    weights = external_model(wildcards).get("checkpoint")
    if weights:
        inputs["checkpoint"] = weights
    return inputs


def external_flags(wildcards):
    """--benchmark/--genknow/--model-dir/--checkpoint of one evaluate-only model."""
    settings = external_model(wildcards)
    benchmark = config["external"]["benchmark"]
    pairs = [
        ("--model-dir", settings["model"]),
        ("--checkpoint", settings.get("checkpoint")),
    ]
    if benchmark is None:
        genknow = genknow_input(wildcards)
        pairs += [
            ("--benchmark", f"results/{wildcards.run}/benchmark"),
            ("--genknow", genknow[0] if genknow else None),
        ]
    else:
        pairs.append(("--benchmark", benchmark))
    return " ".join(
        f"{flag} {shlex.quote(str(value))}" for flag, value in pairs if value
    )


def external_jsons(wildcards):
    return [
        f"results/{wildcards.run}/eval/external/{name}/evaluation.json"
        for name in sorted(config["external"]["models"])
    ]
