rule evaluate_external:
    input:
        unpack(external_inputs),
    output:
        "results/{run}/eval/external/{name}/evaluation.json",
    log:
        "results/{run}/logs/evaluate/external/{name}.log",
    benchmark:
        "results/{run}/benchmarks/evaluate/external/{name}.tsv"
    conda:
        SALMU_ENV
    threads: SETTINGS["evaluate"].threads
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=gpus(SETTINGS["evaluate"].device),
    params:
        flags=external_flags,
        cache_dir=external_cache_dir,
        settings=section_flags("evaluate"),
    shell:
        recorded(
            "evaluate_external",
            "salmu evaluate {params.flags} --state external/{wildcards.name} --out {output}"
            " --cache-dir {params.cache_dir} {params.settings} --threads {threads} > {log} 2>&1",
        )


rule external:
    # The evaluate-only target: `snakemake external --configfile mine.yaml`.
    input:
        multiext(f"results/{config['run']}/external", ".parquet", ".csv", ".md"),


rule external_table:
    input:
        external_jsons,
    output:
        parquet="results/{run}/external.parquet",
        csv="results/{run}/external.csv",
        md="results/{run}/external.md",
    log:
        "results/{run}/logs/external_table.log",
    benchmark:
        "results/{run}/benchmarks/external_table.tsv"
    conda:
        SALMU_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        prefix=subpath(output.parquet, strip_suffix=".parquet"),
    shell:
        recorded(
            "external_table",
            "salmu table --evals {input} --out-prefix {params.prefix} > {log} 2>&1",
        )
