rule retain:
    output:
        pairs="results/{run}/data/retain.parquet",
        genknow="results/{run}/data/genknow.parquet",
    log:
        "results/{run}/logs/retain.log",
    benchmark:
        "results/{run}/benchmarks/retain.tsv"
    conda:
        SALMU_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        settings=section_flags("retain"),
        seed=config["seed"],
    shell:
        recorded(
            "retain",
            "salmu retain {params.settings} --seed {params.seed} --out-pairs {output.pairs} --out-genknow {output.genknow}"
            " > {log} 2>&1",
        )
