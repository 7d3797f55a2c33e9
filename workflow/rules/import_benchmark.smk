# Released-artifacts mode only (artifacts.benchmark): the outside benchmark stands in for `splits`.
rule import_benchmark:
    input:
        source=outside_benchmark_files,
    output:
        splits=[split_parquet(s) for s in SPLIT_NAMES],
        metadata=expand("results/{{run}}/benchmark/{name}", name=BENCHMARK_JSONS),
    log:
        "results/{run}/logs/import_benchmark.log",
    benchmark:
        "results/{run}/benchmarks/import_benchmark.tsv"
    conda:
        SALMU_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        source=outside_benchmark_folder,
        out_dir=benchmark_dir,
    shell:
        recorded(
            "import_benchmark",
            "salmu import-benchmark --benchmark {params.source:q} --out-dir {params.out_dir}"
            " > {log} 2>&1",
        )
