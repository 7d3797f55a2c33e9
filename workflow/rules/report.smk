rule results_table:
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
    log:
        "results/{run}/logs/results_table.log",
    benchmark:
        "results/{run}/benchmarks/results_table.tsv"
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
            "results_table",
            "salmu table --evals {input} --out-prefix {params.prefix} > {log} 2>&1",
        )


rule plots:
    input:
        "results/{run}/benchmark.parquet",
    output:
        report(
            multiext("results/{run}/plots/retfail_vs_genknow", ".png", ".svg"),
            caption="../report/plots.rst",
            category="Results",
        ),
        report(
            multiext("results/{run}/plots/retfail_vs_intraidsim", ".png", ".svg"),
            caption="../report/plots.rst",
            category="Results",
        ),
    log:
        "results/{run}/logs/plots.log",
    benchmark:
        "results/{run}/benchmarks/plots.tsv"
    conda:
        SALMU_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        out_dir=plots_dir,
    shell:
        recorded(
            "plots",
            "salmu plots --table {input} --out-dir {params.out_dir} > {log} 2>&1",
        )


rule provenance_summary:
    input:
        # Last in the run: after the table and the plots, every job has its record.
        table="results/{run}/benchmark.parquet",
        plot="results/{run}/plots/retfail_vs_genknow.png",
    output:
        report(
            "results/{run}/provenance.html",
            caption="../report/provenance.rst",
            category="Provenance",
        ),
    log:
        "results/{run}/logs/provenance_summary.log",
    benchmark:
        "results/{run}/benchmarks/provenance_summary.tsv"
    conda:
        SALMU_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        run_dir=lambda wildcards: f"results/{wildcards.run}",
    shell:
        recorded(
            "provenance_summary",
            "salmu provenance-summary --run-dir {params.run_dir} --out {output} > {log} 2>&1",
        )
