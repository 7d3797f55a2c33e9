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
