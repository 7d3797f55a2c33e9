rule card:
    input:
        splits=[split_parquet(s) for s in SPLIT_NAMES],
        metadata=expand("results/{{run}}/benchmark/{name}", name=BENCHMARK_JSONS),
        config="results/{run}/config.data.json",
        face_report="results/{run}/data/face_filter_report.json",
    output:
        "results/{run}/benchmark/README.md",
    log:
        "results/{run}/logs/card.log",
    benchmark:
        "results/{run}/benchmarks/card.tsv"
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
            "card",
            "salmu card --benchmark {params.benchmark_dir} --config {input.config}"
            " --face-report {input.face_report} --out {output} > {log} 2>&1",
        )
