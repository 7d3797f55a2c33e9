rule personas:
    output:
        parquet="results/{run}/data/personas.parquet",
        metadata="results/{run}/data/identities_metadata.json",
    log:
        "results/{run}/logs/personas.log",
    benchmark:
        "results/{run}/benchmarks/personas.tsv"
    conda:
        SALMU_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        settings=section_flags("personas"),
        seed=config["seed"],
    shell:
        recorded(
            "personas",
            "salmu personas {params.settings} --seed {params.seed} --out-parquet {output.parquet} --out-metadata {output.metadata}"
            " > {log} 2>&1",
        )
