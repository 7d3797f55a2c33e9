# SALMUBench reproduction pipeline. `snakemake --cores 2` runs the tiny tier from config.yaml.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


# Every job's provenance record gets the resolved config from a file named by its content,
# exported here rather than written in any rule: a config change reruns only what it affects.
shell.prefix(
    "set -euo pipefail; "
    f"export SALMU_CONFIG_FILE={store_resolved_config(config, '.snakemake/salmu')}; "
)


include: "workflow/rules/personas.smk"
include: "workflow/rules/faces.smk"
include: "workflow/rules/face_filter.smk"
include: "workflow/rules/captions.smk"


if RELEASED:

    include: "workflow/rules/import_benchmark.smk"

else:

    include: "workflow/rules/splits.smk"


include: "workflow/rules/import_model.smk"
include: "workflow/rules/card.smk"
include: "workflow/rules/config.smk"
include: "workflow/rules/retain.smk"
include: "workflow/rules/commonpool.smk"
include: "workflow/rules/shards.smk"
include: "workflow/rules/leakcheck.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/unlearn.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/attack.smk"
include: "workflow/rules/table.smk"
include: "workflow/rules/fidelity.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/provenance_summary.smk"
include: "workflow/rules/vs_paper.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/external.smk"
include: "workflow/rules/throughput.smk"


# A damaged input stops the run before any job deletes its old outputs (salmu.preflight).
onstart:
    check_planned_inputs()


rule all:
    default_target: True
    input:
        results_table(config["run"]),
        f"results/{config['run']}/fidelity.md",
        f"results/{config['run']}/comparisons.md",
        f"results/{config['run']}/vs_paper.md",
        # Relearning and precision attacks on the models (attacks.seeds; [] turns them off).
        f"results/{config['run']}/attacks.md" if attacked_states() else [],
        # The dataset card describes a benchmark this run made (an outside one has its own).
        [] if RELEASED else f"results/{config['run']}/benchmark/README.md",
        # Every rendered face before the filter, joined from the faces jobs, and its contact sheet.
        [] if RELEASED else f"results/{config['run']}/data/faces_contact_sheet.png",
        f"results/{config['run']}/plots/retfail_vs_genknow.png",
        f"results/{config['run']}/config.resolved.json",
        f"results/{config['run']}/provenance.html",
