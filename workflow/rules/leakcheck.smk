rule leakcheck_clean:
    input:
        train=retain_shard_dirs,
        forbidden="results/{run}/shards/sensitive",
    output:
        "results/{run}/audits/clean_has_no_sensitive.json",
    log:
        "results/{run}/logs/leakcheck_clean.log",
    benchmark:
        "results/{run}/benchmarks/leakcheck_clean.tsv"
    conda:
        SALMU_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        recorded(
            "leakcheck_clean",
            "salmu leakcheck --train {input.train} --forbidden {input.forbidden}"
            " --out {output} > {log} 2>&1",
        )


rule leakcheck_unlearn:
    input:
        train=unlearning_shard_dirs,
        forbidden=holdout_splits,
    output:
        "results/{run}/audits/unlearning_has_no_holdout.json",
    log:
        "results/{run}/logs/leakcheck_unlearn.log",
    benchmark:
        "results/{run}/benchmarks/leakcheck_unlearn.tsv"
    conda:
        SALMU_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        recorded(
            "leakcheck_unlearn",
            "salmu leakcheck --train {input.train:q} --forbidden {input.forbidden}"
            " --out {output} > {log} 2>&1",
        )
