# Attacks on forgetting (ours): one job per attacked model, then the table of recovered gaps.
rule attack:
    input:
        checkpoint="results/{run}/models/{state}/checkpoint.pt",
        splits=[split_parquet(s) for s in SPLIT_NAMES],
        metadata=expand("results/{{run}}/benchmark/{name}", name=BENCHMARK_JSONS),
        retain=attack_retain_shards,
        model_config=model_config,
    output:
        "results/{run}/attacks/{state}/attacks.json",
    log:
        "results/{run}/logs/attack/{state}.log",
    benchmark:
        "results/{run}/benchmarks/attack/{state}.tsv"
    conda:
        SALMU_ENV
    threads: SETTINGS["evaluate"].threads
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=gpus(SETTINGS["evaluate"].device),
    params:
        benchmark_dir=benchmark_dir,
        # The evaluator's pools, seed, batch and device: a change of another evaluate.* key
        # (bootstrap, prompts) does not rerun the attacks.
        settings=section_flags(
            "attacks", "evaluate", exclude=ATTACK_UNUSED_EVALUATE_KEYS
        ),
        model_dir=lambda wildcards, input: Path(input.model_config).parent,
        retain=attack_retain_flag,
    shell:
        recorded(
            "attack",
            "salmu attack --benchmark {params.benchmark_dir} --model-dir {params.model_dir}"
            " --checkpoint {input.checkpoint} --state {wildcards.state}"
            " {params.retain} --out {output} {params.settings}"
            " --threads {threads} > {log} 2>&1",
        )


rule attack_table:
    input:
        attacks=attack_jsons,
        # The association-inference attack's shadow references (attacks.shadow_pairs).
        shadows=shadow_attack_jsons,
    output:
        multiext("results/{run}/attacks", ".parquet", ".csv", ".md"),
        report(
            multiext("results/{run}/plots/recovered_gap", ".png", ".svg"),
            caption="../report/attacks.rst",
            category="Results",
        ),
    log:
        "results/{run}/logs/attack_table.log",
    benchmark:
        "results/{run}/benchmarks/attack_table.tsv"
    conda:
        SALMU_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        prefix="results/{run}/attacks",
        plots_dir=plots_dir,
        shadows=lambda wildcards, input: (
            f" --shadows {' '.join(input.shadows)}" if input.shadows else ""
        ),
        max_recovered=config["report"]["diagnosis"]["max_recovered"],
        min_gap=config["report"]["diagnosis"]["min_reference_gap"],
    shell:
        recorded(
            "attack_table",
            "salmu attack-table --attacks {input.attacks} --out-prefix {params.prefix}"
            " --max-recovered {params.max_recovered} --min-gap {params.min_gap}"
            " --plots-dir {params.plots_dir}{params.shadows} > {log} 2>&1",
        )
