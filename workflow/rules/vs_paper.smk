rule vs_paper:
    input:
        summary="results/{run}/benchmark_summary.parquet",
        sources=reference_sources,
    output:
        parquet="results/{run}/vs_paper.parquet",
        csv="results/{run}/vs_paper.csv",
        md=report(
            "results/{run}/vs_paper.md",
            caption="../report/vs_paper.rst",
            category="Results",
        ),
    log:
        "results/{run}/logs/vs_paper.log",
    benchmark:
        "results/{run}/benchmarks/vs_paper.tsv"
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
            "vs_paper",
            "salmu vs-paper --summary {input.summary} --sources {input.sources}"
            " --out-prefix {params.prefix} > {log} 2>&1",
        )
