rule captions:
    input:
        personas="results/{run}/data/personas.parquet",
        faces="results/{run}/data/faces.parquet",
        templates=config["captions"]["templates"],
    output:
        "results/{run}/data/captions.parquet",
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
        attributes=config["captions"]["attributes"],
        paraphrase=config["captions"]["paraphrase"],
        seed=config["seed"],
    shell:
        "salmu captions --personas {input.personas} --faces {input.faces}"
        " --templates {input.templates} --attributes {params.attributes}"
        " --paraphrase {params.paraphrase} --seed {params.seed} --out {output} > {log} 2>&1"
