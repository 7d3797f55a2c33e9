rule splits:
    input:
        faces="results/{run}/data/faces_kept.parquet",
        captions="results/{run}/data/captions.parquet",
        identities="results/{run}/data/identities_metadata.json",
    output:
        splits=[split_parquet(s) for s in SPLIT_NAMES],
        metadata=expand("results/{{run}}/benchmark/{name}", name=BENCHMARK_JSONS),
    log:
        "results/{run}/logs/splits.log",
    benchmark:
        "results/{run}/benchmarks/splits.tsv"
    conda:
        SALMU_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        settings=section_flags("splits"),
        seed=config["seed"],
        out_dir=benchmark_dir,
    shell:
        recorded(
            "splits",
            "salmu splits --faces {input.faces} --captions {input.captions}"
            " --identities {input.identities} {params.settings} --seed {params.seed} --out-dir {params.out_dir} > {log} 2>&1",
        )
