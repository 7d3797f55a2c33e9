rule table:
    input:
        evals=evaluation_jsons,
        sources=reference_sources,
        attacks=attack_table_input,
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
        sources=lambda wildcards, input: (
            " --sources " + " ".join(input.sources) if input.sources else ""
        ),
        attacks=lambda wildcards, input: (
            f" --attacks {input.attacks}" if input.attacks else ""
        ),
    shell:
        recorded(
            "table",
            "salmu table --evals {input.evals} --out-prefix {params.prefix}"
            " {params.settings}{params.sources}{params.attacks} > {log} 2>&1",
        )
