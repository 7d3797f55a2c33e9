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
        n=config["personas"]["n_identities"],
        locales=config["personas"]["locales"],
        locales_table=config["personas"]["locales_table"],
        domains=config["personas"]["email_domains"],
        seed=config["seed"],
    shell:
        recorded(
            "personas",
            "salmu personas --n-identities {params.n} --locales {params.locales}"
            " --locales-table {params.locales_table} --email-domains {params.domains}"
            " --seed {params.seed} --out-parquet {output.parquet} --out-metadata {output.metadata}"
            " > {log} 2>&1",
        )
