rule table:
    input:
        evaluation_jsons,
    output:
        parquet="results/{run}/benchmark.parquet",
        csv=report(
            "results/{run}/benchmark.csv",
            caption="../report/table.rst",
            category="Results",
        ),
        md="results/{run}/benchmark.md",
        summary=multiext("results/{run}/benchmark_summary", ".parquet", ".csv"),
    log:
        "results/{run}/logs/table.log",
    benchmark:
        "results/{run}/benchmarks/table.tsv"
    conda:
        SALMU_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        prefix=subpath(output.parquet, strip_suffix=".parquet"),
        settings=section_flags("report", "report.diagnosis"),
    shell:
        recorded(
            "table",
            "salmu table --evals {input} --out-prefix {params.prefix}"
            " {params.settings} > {log} 2>&1",
        )
