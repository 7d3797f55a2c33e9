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
