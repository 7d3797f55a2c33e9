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
        holdout=config["splits"]["holdout_identity_fraction"],
        partial=config["splits"]["partial_forget_fraction"],
        fragile=config["splits"]["fragile_fraction"],
        seed=config["seed"],
        out_dir=benchmark_dir,
    shell:
        recorded(
            "splits",
            "salmu splits --faces {input.faces} --captions {input.captions}"
            " --identities {input.identities} --holdout-identity-fraction {params.holdout}"
            " --partial-forget-fraction {params.partial} --fragile-fraction {params.fragile}"
            " --seed {params.seed} --out-dir {params.out_dir} > {log} 2>&1",
        )


rule resolved_config:
    output:
        "results/{run}/config.{part}.json",
    log:
        "results/{run}/logs/config_{part}.log",
    benchmark:
        "results/{run}/benchmarks/config_{part}.tsv"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        config=config_part,
    run:
        from salmu.provenance import write_recorded_json

        write_recorded_json(params.config, output[0], rule)


rule dataset_card:
    input:
        splits=[split_parquet(s) for s in SPLIT_NAMES],
        metadata=expand("results/{{run}}/benchmark/{name}", name=BENCHMARK_JSONS),
        config="results/{run}/config.data.json",
        face_report="results/{run}/data/face_filter_report.json",
    output:
        "results/{run}/benchmark/README.md",
    log:
        "results/{run}/logs/dataset_card.log",
    benchmark:
        "results/{run}/benchmarks/dataset_card.tsv"
    conda:
        SALMU_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        benchmark_dir=benchmark_dir,
    shell:
        recorded(
            "dataset_card",
            "salmu card --benchmark {params.benchmark_dir} --config {input.config}"
            " --face-report {input.face_report} --out {output} > {log} 2>&1",
        )
