rule captions:
    input:
        personas="results/{run}/data/personas.parquet",
        faces="results/{run}/data/faces_kept.parquet",
        templates=config["captions"]["templates"],
    output:
        captions="results/{run}/data/captions.parquet",
        report="results/{run}/data/paraphrase_report.json",
    log:
        "results/{run}/logs/captions.log",
    benchmark:
        "results/{run}/benchmarks/captions.tsv"
    conda:
        SALMU_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        settings=section_flags("captions"),
        seed=config["seed"],
    shell:
        recorded(
            "captions",
            "salmu captions --personas {input.personas} --faces {input.faces}"
            " {params.settings} --paraphrase-threads {threads}"
            " --paraphrase-report {output.report} --seed {params.seed} --out {output.captions}"
            " > {log} 2>&1",
        )
