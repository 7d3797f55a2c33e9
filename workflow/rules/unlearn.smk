rule unlearn:
    input:
        compromised="results/{run}/models/compromised/checkpoint.pt",
        forget="results/{run}/shards/forget",
        retain=retain_shard_dirs,
        model_config=model_config,
        # Fails the workflow, before any unlearning, if a holdout sample reached these inputs.
        audit="results/{run}/audits/unlearning_has_no_holdout.json",
    output:
        checkpoint="results/{run}/models/unlearned/{method}/x{budget}/seed{seed}/checkpoint.pt",
        report="results/{run}/models/unlearned/{method}/x{budget}/seed{seed}/unlearn.json",
    log:
        "results/{run}/logs/unlearn/{method}_x{budget}_seed{seed}.log",
    benchmark:
        "results/{run}/benchmarks/unlearn/{method}_x{budget}_seed{seed}.tsv"
    conda:
        SALMU_ENV
    threads: SETTINGS["unlearn"].threads
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=gpus(SETTINGS["unlearn"].device),
    params:
        method=method_flags,
        settings=section_flags("unlearn"),
        model_dir=lambda wildcards, input: Path(input.model_config).parent,
    shell:
        recorded(
            "unlearn",
            "salmu unlearn --method {wildcards.method} --budget {wildcards.budget}"
            " --seed {wildcards.seed} --model-dir {params.model_dir}"
            " --checkpoint {input.compromised} --forget-shards {input.forget}"
            " --retain-shards {input.retain:q} {params.method} {params.settings}"
            " --threads {threads} --out {output.checkpoint} --report {output.report} > {log} 2>&1",
        )
